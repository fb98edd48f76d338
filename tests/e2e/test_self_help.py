"""Issue 17, acceptance 2, end to end on loopback: self-help first.

A real relay delivering to a real Request Tracker, the organisation's signed fixes
and rule book published with ``puente-relay fixes publish``, past cases recorded
through the relay's API, and a problem planted for real: an ext4 file system on a
loop device, mounted and filled past 90 %. The customer's real agent files a help
request; while it waits, it finds the full disk, offers the organisation's signed
fix ranked by past outcomes (a tampered and an unsigned bundle the relay also
serves are never offered), runs it with the customer's consent, and "That fixed it"
closes the request with the outcome on the RT ticket, which is resolved, without a
technician. "Still broken" keeps the customer's place; a fix that fails offers its
undo and keeps the place too. No technician is ever available in these tests.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.fixbundle import make_bundle
from relay.self_help_sql import PublishedFix
from relay.sqlite_store import SQLiteStore
from tests.support.customer import ScriptedCustomer
from tests.support.device_fixtures import request_tracker  # noqa: F401  (fixture)
from tests.support.helpdesk import RequestTracker, wait_until
from tests.support.relay import RelayProcess, start_relay
from tests.support.timeouts import scaled
from tests.support.trust_fixtures import Organisation, make_organisation, tech_cli

DESCRIPTION = "My computer says the disk is full"
FILLER = "filler.bin"

CLEAR = {
    "manifest.toml": """
id = "clear-test-disk"
version = "1.0.0"
title = "Clear the full test disk"
description = "Deletes the large filler file that fills the disk."
platforms = ["linux"]
interpreter = "sh"
script = "fix.sh"
timeout = 30
needs_admin = false
risk = "low"

[parameters.mountpoint]
type = "string"
description = "The disk that is full"
max_length = 4096
""",
    "fix.sh": """
#!/bin/sh
rm -f -- "$1/filler.bin" && echo "removed the filler from $1"
""",
}
TRASH = {
    "manifest.toml": """
id = "empty-test-trash"
version = "1.0.0"
title = "Empty the trash"
description = "Empties your trash folder."
platforms = ["linux"]
interpreter = "sh"
script = "fix.sh"
timeout = 30
needs_admin = false
risk = "low"
""",
    "fix.sh": """
#!/bin/sh
echo "the trash is empty"
""",
}
BROKEN = {
    "manifest.toml": """
id = "broken-test-fix"
version = "1.0.0"
title = "Repair the disk index"
description = "Rebuilds the disk's index."
platforms = ["linux"]
interpreter = "sh"
script = "fix.sh"
undo = "undo.sh"
timeout = 30
needs_admin = false
risk = "low"

[parameters.mountpoint]
type = "string"
description = "The disk that is full"
max_length = 4096
""",
    "fix.sh": """
#!/bin/sh
touch "$1/half-done" && echo "could not rebuild the index" >&2 && exit 3
""",
    "undo.sh": """
#!/bin/sh
rm -f -- "$1/half-done" && echo "undone"
""",
}
TAMPERED_ID, UNSIGNED_ID = "wipe-test-disk", "unsigned-test-fix"
RULES = f"""
[[rule]]
problem = "disk-nearly-full"
title = "A disk is nearly full"
severity = "high"
for_each = "disks"
when = {{ path = "mountpoint", op = "==", value = "{{disk}}" }}
evidence = "{{mountpoint}} is {{percent|percent}} full"
advice = "Free space."
fixes = [
    {{ id = "broken-test-fix", params = {{ mountpoint = "{{mountpoint}}" }} }},
    {{ id = "{TAMPERED_ID}", params = {{ mountpoint = "{{mountpoint}}" }} }},
    "{UNSIGNED_ID}",
    "empty-test-trash",
    {{ id = "clear-test-disk", params = {{ mountpoint = "{{mountpoint}}" }} }},
]
"""


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Organisation:
    return make_organisation(tmp_path_factory.mktemp("acme"), "Acme IT")


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB ext4 file system on a loop device, mounted and filled past 90 %."""
    missing = [tool for tool in ("mount", "umount", "mkfs.ext4") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        pytest.skip(f"a loop mount needs root and mount, mkfs.ext4 (missing: {missing})")
    image, mount = tmp_path / "disk.img", tmp_path / "full-disk"
    mount.mkdir()
    with image.open("wb") as file:
        file.truncate(8 * 1024 * 1024)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"mkfs.ext4 failed here: {made.stderr.strip()}")
    mounted = subprocess.run(
        ["mount", "-o", "loop", str(image), str(mount)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"this machine cannot loop-mount: {mounted.stderr.strip()}")
    try:
        free = shutil.disk_usage(mount).free
        (mount / FILLER).write_bytes(b"\0" * (free - 200 * 1024))
        usage = shutil.disk_usage(mount)
        assert usage.used / (usage.used + usage.free) > 0.9
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def relay_cli(relay: RelayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay.cli", *args, "--data-dir", str(relay.data_dir)],
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )


def api(relay: RelayProcess, token: str, method: str, path: str, body: object = None) -> object:
    """One call to the relay's REST API with a technician's token."""
    request = urllib.request.Request(
        relay.http_url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=scaled(10)) as answer:
        return json.loads(answer.read())


def sign(org: Organisation, files: dict[str, str], out: Path) -> Path:
    now = int(time.time())
    out.write_bytes(
        make_bundle(
            files["manifest.toml"].lstrip("\n").encode(),
            files["fix.sh"].lstrip("\n").encode(),
            files["undo.sh"].lstrip("\n").encode() if "undo.sh" in files else None,
            signer=org.secret(),
            signed_at=now - 60,
            expires_at=now + 86400,
        )
    )
    return out


def set_up(relay: RelayProcess, org: Organisation, tmp_path: Path, disk: Path) -> str:
    """The organisation's categories, fixes, rule book and past cases at the relay, a
    compromised relay's extra bundles, and a technician who stays away; their token."""
    listing = tmp_path / "categories.json"
    done = tech_cli("org", "categories", "storage=Disks and storage", "--org-key", str(org.key),
                    "--out", str(listing))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert relay_cli(relay, "categories", "set", str(listing)).returncode == 0
    bundles = [sign(org, fix, tmp_path / f"{name}.puentefix")
               for name, fix in (("clear", CLEAR), ("trash", TRASH), ("broken", BROKEN))]  # fmt: skip
    rules = tmp_path / "rules.toml"
    # This test's disk only: tests running at the same time mount theirs too.
    rules.write_text(RULES.replace("{disk}", json.dumps(str(disk))[1:-1]))
    book = tmp_path / "rules.signed"
    done = tech_cli("org", "rules", str(rules), "--org-key", str(org.key), "--out", str(book))
    assert done.returncode == 0, done.stderr
    assert "Signed 1 rules into rule book number 1" in done.stdout
    published = relay_cli(relay, "fixes", "publish", *map(str, bundles), str(book))
    assert published.returncode == 0, published.stderr
    assert "Offered clear-test-disk 1.0.0 (linux)" in published.stdout
    assert "Kept rule book number 1" in published.stdout
    # The relay refuses an unsigned fix with a sentence...
    unsigned = tmp_path / "unsigned.puentefix"
    unsigned.write_bytes(
        make_bundle(
            CLEAR["manifest.toml"].replace("clear-test-disk", UNSIGNED_ID).lstrip("\n").encode(),
            b"echo unsigned\n",
        )
    )
    refused = relay_cli(relay, "fixes", "publish", str(unsigned))
    assert refused.returncode == 2 and "is not signed" in refused.stderr
    # ... but a compromised relay serves whatever it likes: a signed fix whose script
    # was changed afterwards, and the unsigned one. Agents must offer neither.
    tampered = json.loads(sign(org, CLEAR, tmp_path / "wipe.puentefix").read_bytes())
    tampered["manifest"] = base64.b64encode(
        base64.b64decode(tampered["manifest"]).replace(b"clear-test-disk", TAMPERED_ID.encode())
    ).decode()
    tampered["script"] = base64.b64encode(b'rm -rf -- "$1"\n').decode()
    store = SQLiteStore(relay.data_dir)
    try:
        for fix_id, text in (
            (TAMPERED_ID, json.dumps(tampered)),
            (UNSIGNED_ID, unsigned.read_text()),
        ):
            store.publish_fix(
                PublishedFix(org.secret().key_id, fix_id, ("linux",), "9.0.0", "X", text, 0.0)
            )
    finally:
        store.close()
    listed = relay_cli(relay, "fixes", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {json.loads(line)["fix"] for line in listed.stdout.splitlines()} >= {
        "clear-test-disk",
        "empty-test-trash",
        "broken-test-fix",
    }
    added = relay_cli(relay, "technician", "add", "Sam Storage", "--skills", "storage,en")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    # Past cases, reported by a technician after runs in a session: clearing the disk
    # solved 3 of 4, emptying the trash 0 of 3 (the rule lists the trash first).
    session = api(relay, token, "POST", "/api/sessions", {"ticket_id": "RT-1"})
    assert isinstance(session, dict)
    for fix, exits in (("clear-test-disk", [0, 0, 0, 1]), ("empty-test-trash", [1, 1, 1])):
        for exit_status in exits:
            api(relay, token, "POST", "/api/outcomes", {
                "session_id": session["session_id"], "problems": ["disk-nearly-full"],
                "fix": fix, "version": "1.0.0", "exit_status": exit_status,
            })  # fmt: skip
    return token


def customer(
    relay: RelayProcess, org: Organisation, logs: Path, **script: object
) -> ScriptedCustomer:
    return ScriptedCustomer(
        relay.ws_url,
        "",
        logs,
        after={r"^Attach this summary to your request\?": "n"},
        code_via="none",
        extra=["--org-key", str(org.public), "--request", DESCRIPTION, "--category", "storage"],
        **script,  # type: ignore[arg-type]
    )


def offers(agent: ScriptedCustomer) -> list[str]:
    """The offers shown, after the prompt to choose appeared."""
    agent.expect(r"^Type the number of a fix to try it", timeout=60)
    start = max(i for i, line in enumerate(agent.lines) if "You can try one yourself" in line)
    return [line for line in agent.lines[start:] if line.startswith("  ") and ". " in line[:6]]


def test_the_signed_fix_ranked_by_past_cases_fixes_it_and_closes_the_ticket(
    org: Organisation,
    request_tracker: RequestTracker,  # noqa: F811
    full_disk: Path,
    tmp_path: Path,
) -> None:
    rt = request_tracker
    relay = start_relay(
        tmp_path / "relay", "--rt-url", rt.url, "--rt-user", rt.user,
        env={"PUENTE_RT_PASSWORD": rt.password},
    )  # fmt: skip
    try:
        token = set_up(relay, org, tmp_path, full_disk)
        agent = customer(
            relay,
            org,
            tmp_path / "logs",
            answers={"Fix: Clear the full test disk": ["script", "y"]},
        )
        filed = agent.expect(r"^Your request for help was sent \(reference ([0-9a-f]{8})\)")
        shown = offers(agent)
        # Ranked by the organisation's past cases, not the rule's order; the tampered
        # and the unsigned bundle are not offered at all.
        assert len(shown) == 3, agent.output
        assert shown[0].startswith("  1. Clear the full test disk (for: a disk is nearly full)")
        assert "Empty the trash" in shown[2]
        text = agent.output
        assert "solved 3 of 4 past cases" in text and "solved 0 of 3 past cases" in text
        assert "not tried before" in text  # the broken one has no history
        assert f"{full_disk} is" in text  # the evidence: this disk
        assert TAMPERED_ID not in text and UNSIGNED_ID not in text
        assert text.index("solved 3 of 4") < text.index("not tried before")
        agent.send("1")
        # The same per-run consent as a technician's fix: the customer reads the script.
        agent.expect(r"^\s+1 \| #!/bin/sh")
        agent.expect(r"removed the filler from ")
        agent.expect(r'^Did "Clear the full test disk" fix your problem\?')
        assert not (full_disk / FILLER).exists()
        agent.send("y")
        agent.expect(r"^Glad it is fixed")
        assert agent.wait(30) == 0, agent.output + agent.read_stderr()
        # One question, shown twice: "script" to read it first, then yes.
        assert agent.questions == ["Fix: Clear the full test disk"] * 2
        # The outcome counts for the organisation's past cases: 4 of 5 now.
        figures = api(relay, token, "GET", "/api/outcomes")
        assert isinstance(figures, dict)
        assert figures["problems"]["disk-nearly-full"]["clear-test-disk"] == {
            "solved": 4,
            "runs": 5,
        }
        # No technician took part: nothing waits in the queue.
        queue = api(relay, token, "GET", "/api/queue")
        assert isinstance(queue, dict) and queue["requests"] == []
        # The customer's own log says what ran and what was not offered, and why.
        log = "\n".join(p.read_text() for p in (tmp_path / "logs").glob("*self-help*.log"))
        assert "You allowed (this run only): Fix: Clear the full test disk" in log
        assert "not offered" in log and "is not signed" in log and "changed after" in log
        # The ticket: opened for the request, then the outcome, then resolved.
        prefix = filed.group(1)
        wait_until(
            lambda: any(
                "Solved by self-help" in c["text"]
                for t in _tickets_of(rt, prefix)
                for c in rt.comments(t)
            ),
            60,
            "the self-help outcome on the RT ticket",
            0.5,
        )
        [ticket] = _tickets_of(rt, prefix)
        [comment] = [c for c in rt.comments(ticket) if "Solved by self-help" in c["text"]]
        assert "clear-test-disk 1.0.0 (Clear the full test disk)" in comment["text"]
        assert "disk-nearly-full" in comment["text"] and '"That fixed it"' in comment["text"]
        wait_until(lambda: _status(rt, ticket) == "resolved", 30, "the ticket resolved", 0.5)
    finally:
        relay.stop()


def _tickets_of(rt: RequestTracker, prefix: str) -> list[int]:
    """RT tickets of the help request whose id starts with ``prefix``."""
    query = urllib.parse.quote(f"Subject LIKE 'puente request {prefix}'")
    status, found = rt.rest("GET", f"/tickets?query={query}")
    return [int(i["id"]) for i in (found.get("items") or [])] if status == 200 else []


def _status(rt: RequestTracker, ticket: int) -> str:
    status, body = rt.rest("GET", f"/ticket/{ticket}")
    assert status == 200, body
    return str(body["Status"])


def test_a_failed_fix_is_undone_and_still_broken_keeps_the_place(
    org: Organisation, full_disk: Path, tmp_path: Path
) -> None:
    relay = start_relay(tmp_path / "relay")
    try:
        token = set_up(relay, org, tmp_path, full_disk)
        agent = customer(
            relay,
            org,
            tmp_path / "logs",
            answers={
                "Fix: Repair the disk index": "y",
                "Undo fix: Repair the disk index": "y",
                "Fix: Empty the trash": "y",
            },
        )
        agent.expect(r"^Your request for help was sent")
        assert "Repair the disk index" in offers(agent)[1]
        agent.send("2")
        # It fails: the customer is told, its undo is offered with the same consent
        # and run, and the place in the queue is kept.
        agent.expect(r"could not rebuild the index")
        agent.expect(r"^Repair the disk index did not finish successfully")
        agent.expect(r"^\s*\[broken-test-fix\] undone")
        assert not (full_disk / "half-done").exists()
        assert (full_disk / FILLER).exists()
        shown = offers(agent)
        assert [line.split(". ", 1)[1].split(" (for")[0] for line in shown] == [
            "Clear the full test disk",
            "Empty the trash",
        ]
        agent.send("2")
        agent.expect(r"the trash is empty")
        agent.expect(r'^Did "Empty the trash" fix your problem\?')
        agent.send("n")
        agent.expect(r"^Sorry it is still broken\. You keep your place in the queue")
        offers(agent)
        agent.send("")  # wait for a technician
        agent.expect(r"^All right: you keep your place in the queue\.")
        agent.expect(r"^You are number 1 in the queue")
        assert agent.questions == [
            "Fix: Repair the disk index",
            "Undo fix: Repair the disk index",
            "Fix: Empty the trash",
        ]
        queue = api(relay, token, "GET", "/api/queue")
        assert isinstance(queue, dict)
        [waiting] = queue["requests"]
        assert (waiting["state"], waiting["position"]) == ("waiting", 1)
        figures = api(relay, token, "GET", "/api/outcomes")
        assert isinstance(figures, dict)
        problem = figures["problems"]["disk-nearly-full"]
        assert problem["broken-test-fix"] == {"solved": 0, "runs": 1}
        assert problem["empty-test-trash"] == {"solved": 0, "runs": 4}
        agent.proc.send_signal(signal.SIGTERM)
        agent.expect(r"^You left the queue")
        assert agent.wait(20) == 0
    finally:
        relay.stop()
