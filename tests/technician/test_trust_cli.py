"""The organisation's command line: clear errors that lose nothing, and the fix library.

Real key files, real scrypt-encrypted organisation key, real signatures.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.support.trust_fixtures import (
    MARKER,
    Organisation,
    make_organisation,
    tech_cli,
    write_fix,
)


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Organisation:
    return make_organisation(tmp_path_factory.mktemp("acme"), "Acme IT")


def test_key_files_and_their_modes(acme: Organisation) -> None:
    assert stat.S_IMODE(acme.key.stat().st_mode) == 0o600
    assert b"PRIVATE" not in acme.key.read_bytes()  # encrypted, not PEM in the clear
    assert acme.public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    again = tech_cli("org", "init", "--out", str(acme.directory), "--name", "Acme IT")
    assert again.returncode == 1 and "already exists; nothing was overwritten" in again.stderr


def test_wrong_passphrase_is_a_clear_error(acme: Organisation, tmp_path: Path) -> None:
    done = tech_cli(
        "fix",
        "sign",
        str(write_fix(tmp_path / "m", MARKER)),
        "--org-key",
        str(acme.key),
        "--out",
        str(tmp_path / "m.puentefix"),
        env={"PUENTE_ORG_PASSPHRASE": "not the passphrase"},
    )
    assert done.returncode == 1
    assert "Wrong passphrase for the organisation key" in done.stderr
    assert not (tmp_path / "m.puentefix").exists()


def test_technician_key_must_be_private(acme: Organisation, tmp_path: Path) -> None:
    cert, key = acme.technician("Ana Lopez", "loose")
    os.chmod(key, 0o644)
    done = tech_cli(
        "--relay",
        "ws://127.0.0.1:9",
        "--token",
        "t",
        "--cert",
        str(cert),
        "--key",
        str(key),
        "session",
        "--ticket",
        "T",
    )
    assert done.returncode == 2
    assert f"chmod 600 {key}" in done.stderr
    os.chmod(key, 0o600)
    other_cert, _ = acme.technician("Bea Ruiz", "bea")
    done = tech_cli(
        "--relay",
        "ws://127.0.0.1:9",
        "--token",
        "t",
        "--cert",
        str(other_cert),
        "--key",
        str(key),
        "session",
        "--ticket",
        "T",
    )
    assert done.returncode == 2 and "does not belong to the certificate" in done.stderr


def test_fix_list_shows_what_agents_would_accept(acme: Organisation, tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    source = write_fix(tmp_path / "marker", MARKER)
    done = tech_cli("fix", "sign", str(source), "--org-key", str(acme.key), "--out", str(library))
    assert done.returncode == 0, done.stderr
    other = make_organisation(tmp_path / "other", "Scam Support Ltd")
    other.sign(other.secret(), MARKER, library / "foreign.puentefix")
    (library / "junk.puentefix").write_text("not a bundle")
    done = tech_cli("fix", "list", "--fixes", str(library), "--org-key", str(acme.public))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(
        line.startswith(
            "marker 1.0.0  Leave a marker  [linux, macos; risk low]  signed by Acme IT until"
        )
        for line in lines
    )
    assert "    agents pinning " + str(acme.public) + ": accepted" in lines
    assert any(
        "REFUSED: The fix 'marker' was signed by another organisation (Scam Support Ltd" in line
        for line in lines
    )
    assert any("junk.puentefix: NOT A BUNDLE" in line for line in lines)
    as_json = tech_cli(
        "--json", "fix", "list", "--fixes", str(library), "--org-key", str(acme.public)
    )
    fixes = json.loads(as_json.stdout)["fixes"]
    assert sorted(f.get("accepted") for f in fixes if "id" in f) == [False, True]
    missing = tech_cli("fix", "list")
    assert missing.returncode == 2 and "pass --fixes DIR or set PUENTE_FIXES" in missing.stderr


def test_certify_with_roles_and_a_bad_role_is_a_clear_error(
    acme: Organisation, tmp_path: Path
) -> None:
    """Roles (for example ``unattended``) are signed into the certificate; ``org show``
    lists them; a role that is not a plain name is refused and nothing is written."""
    key = tmp_path / "bo.key"
    assert tech_cli("org", "keygen", "--out", str(key)).returncode == 0
    cert = tmp_path / "bo.cert"
    common = ["--org-key", str(acme.key), "--technician-key", str(key.with_suffix(".pub"))]
    done = tech_cli(
        "--json",
        "org",
        "certify",
        "Bo Unattended",
        *common,
        "--valid-days",
        "5",
        "--role",
        "unattended",
        "--out",
        str(cert),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["roles"] == ["unattended"]
    shown = tech_cli("org", "show", str(cert))
    assert "roles unattended" in shown.stdout
    bad = tmp_path / "bad.cert"
    done = tech_cli(
        "org", "certify", "Bo", *common, "--valid-days", "5", "--role", "Root!", "--out", str(bad)
    )
    assert done.returncode == 1
    assert (
        "lowercase letters, digits or dashes" in done.stderr
        and "Nothing was written" in done.stderr
    )
    assert not bad.exists()
