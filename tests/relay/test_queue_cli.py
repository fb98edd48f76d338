"""``puente-relay technician add|update --skills --capacity`` and ``categories set``:
what an operator types, what is stored, and the sentences for mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.categories import Category, issue_category_list
from protocol.identity import OrganisationSecret
from relay.routing import Availability
from relay.sqlite_store import SQLiteStore


def relay_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_skills_capacity_and_availability_are_set_and_changed(tmp_path: Path) -> None:
    data = str(tmp_path / "relay")
    done = relay_cli(
        "technician",
        "add",
        "Bo Diaz",
        "--skills",
        "printing,network,es",
        "--capacity",
        "2",
        "--data-dir",
        data,
    )
    assert done.returncode == 0, done.stderr
    assert "Help queue: Bo Diaz: skills printing,network,es, capacity 2, away" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("pt_")  # the token stays last
    done = relay_cli(
        "technician",
        "update",
        "Bo Diaz",
        "--capacity",
        "3",
        "--availability",
        "available",
        "--data-dir",
        data,
    )
    assert done.returncode == 0, done.stderr
    assert "Updated Bo Diaz: skills printing,network,es, capacity 3, available" in done.stdout
    store = SQLiteStore(data)
    try:
        [profile] = store.list_profiles()
        assert (profile.skills, profile.capacity, profile.availability) == (
            ("printing", "network", "es"),
            3,
            Availability.AVAILABLE,
        )
    finally:
        store.close()


def test_operator_mistakes_get_a_sentence(tmp_path: Path) -> None:
    data = str(tmp_path / "relay")
    bad = relay_cli("technician", "add", "Al", "--skills", "Printing Stuff", "--data-dir", data)
    assert bad.returncode == 2 and "is not a skill" in bad.stderr
    bad = relay_cli("technician", "add", "Al", "--capacity", "0", "--data-dir", data)
    assert bad.returncode == 2 and "1 to 20" in bad.stderr
    assert relay_cli("technician", "add", "Al", "--data-dir", data).returncode == 0
    nobody = relay_cli("technician", "update", "Zed", "--capacity", "2", "--data-dir", data)
    assert nobody.returncode == 2 and "No active technician is named 'Zed'" in nobody.stderr
    nothing = relay_cli("technician", "update", "Al", "--data-dir", data)
    assert nothing.returncode == 2 and "Say what to change" in nothing.stderr


def test_categories_must_be_signed_by_the_key_they_name(tmp_path: Path) -> None:
    data = str(tmp_path / "relay")
    org = OrganisationSecret("Org", Ed25519PrivateKey.generate())
    listing = tmp_path / "categories.json"
    listing.write_bytes(issue_category_list(org, 1, 0, [Category("printing", "Printers")]))
    done = relay_cli("categories", "set", str(listing), "--data-dir", data)
    assert done.returncode == 0 and "Kept 1 categories (printing)" in done.stdout
    document = json.loads(listing.read_text())
    document["categories"]["categories"][0]["title"] = "Anything"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    refused = relay_cli("categories", "set", str(tampered), "--data-dir", data)
    assert refused.returncode == 2
    assert "is not a signed category list" in refused.stderr and "altered" in refused.stderr
    missing = relay_cli("categories", "set", str(tmp_path / "nope.json"), "--data-dir", data)
    assert missing.returncode == 2 and "Cannot read" in missing.stderr


def test_the_operator_sees_and_reassigns_the_queue(tmp_path: Path) -> None:
    data = tmp_path / "relay"
    for name in ("Ana", "Bo"):
        done = relay_cli(
            "technician", "add", name, "--skills", "printing,es", "--data-dir", str(data)
        )
        assert done.returncode == 0, done.stderr
    store = SQLiteStore(data)
    try:
        request = store.add_help_request(
            "token", "ab" * 32, "Printer jams", "printing", "es", None, "10.0.0.1", 1.0
        )
    finally:
        store.close()
    listed = relay_cli("queue", "list", "--json", "--data-dir", str(data))
    assert listed.returncode == 0, listed.stderr
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["request_id"], row["state"], row["description"]) == (
        request.id,
        "waiting",
        "Printer jams",
    )
    done = relay_cli("queue", "assign", request.id, "Bo", "--data-dir", str(data))
    assert done.returncode == 0 and "assigned to Bo" in done.stdout
    store = SQLiteStore(data)
    try:
        assigned = store.get_help_request(request.id)
        bo = next(p for p in store.list_profiles() if p.name == "Bo")
        assert assigned is not None and assigned.direct_to == bo.technician_id
    finally:
        store.close()
    wrong = relay_cli("queue", "assign", "f" * 32, "Bo", "--data-dir", str(data))
    assert wrong.returncode == 2 and "No waiting help request" in wrong.stderr
    nobody = relay_cli("queue", "assign", request.id, "Zed", "--data-dir", str(data))
    assert nobody.returncode == 2 and "No technician with a routing profile" in nobody.stderr
