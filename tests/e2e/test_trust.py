"""Organisation trust end to end: a real relay process, the real agent (scripted customer)
pinning a real organisation key, the real technician console, real signatures.

Acceptance (issue 4): 1 a signed fix runs after consent, output streams, exit status
returns; 2 tampered, unsigned and foreign fixes are refused before anything runs, on
both sides; 3 a pinned agent refuses technicians without a valid certificate and shows
the verified name; 5 a parameter like ``; rm -rf ~`` arrives literally.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from link.errors import SessionLost
from protocol.code import SessionCode
from protocol.identity import issue_certificate, parse_certificate
from technician.client import RelayAPI, TechnicianSession
from technician.credentials import TechnicianCredentials, read_private_key
from technician.fixlib import sign_fix_directory
from tests.relay.test_cli import rest
from tests.support.customer import Process, ScriptedCustomer
from tests.support.relay import RelayProcess
from tests.support.timeouts import scaled
from tests.support.trust_fixtures import (
    ECHO_ARGS,
    MARKER,
    STREAM_TEST,
    Organisation,
    make_organisation,
    tech_cli,
    write_fix,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "fixes"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the test fixes are sh scripts")


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Organisation]:
    yield make_organisation(tmp_path_factory.mktemp("acme"), "Acme IT")


@pytest.fixture(scope="module")
def ana(acme: Organisation) -> tuple[Path, Path]:
    return acme.technician("Ana Lopez", "ana")


@pytest.fixture(scope="module")
def library(acme: Organisation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fix library: test fixes signed by Acme, one of them through ``fix sign``."""
    root = tmp_path_factory.mktemp("library")
    sources = root / "sources"
    library = root / "library"
    library.mkdir()
    done = tech_cli(
        "fix",
        "sign",
        str(write_fix(sources / "stream-test", STREAM_TEST)),
        "--org-key",
        str(acme.key),
        "--out",
        str(library),
        "--valid-days",
        "2",
    )
    assert done.returncode == 0, done.stderr
    secret = acme.secret()
    acme.sign(secret, ECHO_ARGS, library / "echo-args.puentefix")
    acme.sign(secret, MARKER, library / "marker.puentefix")
    now = int(time.time())
    for variant in ("unix", "windows"):  # the console picks the customer's platform
        bundle = sign_fix_directory(EXAMPLES / "disk-cleanup" / variant, secret, 2, now)
        (library / f"disk-cleanup-{variant}.puentefix").write_bytes(bundle)
    return library


def console(
    relay: RelayProcess,
    token: str,
    *extra: str,
    credentials: tuple[Path, Path] | None = None,
    outcomes: Path | None = None,
) -> tuple[Process, str]:
    """``puente-tech session`` reading commands from stdin; returns it and the code."""
    identity = ["--cert", str(credentials[0]), "--key", str(credentials[1])] if credentials else []
    tech = Process(
        [
            sys.executable,
            "-m",
            "technician.cli",
            "--relay",
            relay.ws_url,
            "--token",
            token,
            *identity,
            "session",
            "--ticket",
            "HD-77",
            *extra,
        ],
        stdin=True,
        env={"PUENTE_OUTCOMES": str(outcomes or Path("/nonexistent/outcomes.sqlite3"))},
    )
    return tech, tech.expect(r"^code: (\S+)$").group(1)


def customer_env(tmp_path: Path) -> dict[str, str]:
    """A customer's own HOME (and cache, data and temporary folders inside it), so no
    fix in a test can touch the real ones."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "canary.txt").write_text("still here")
    (home / "tmp").mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "TMPDIR": str(home / "tmp"),
    }


# Acceptance 1 and 3 (positive): a verified technician runs a signed fix ------------------


def test_signed_fix_streams_output_and_returns_exit_status(
    relay_process: RelayProcess,
    acme: Organisation,
    ana: tuple[Path, Path],
    library: Path,
    tmp_path: Path,
) -> None:
    token = relay_process.add_technician()
    tech, code = console(relay_process, token, "--fixes", str(library), credentials=ana)
    customer = ScriptedCustomer(
        relay_process.ws_url,
        code,
        tmp_path / "logs",
        answers={"Fix: Stream test": "y"},
        extra=["--org-key", str(acme.public)],
        env=customer_env(tmp_path),
    )
    customer.expect(r"^Verified: Ana Lopez, Acme IT$")
    tech.expect(r"Check code")
    go = tmp_path / "go"
    tech.send(f"fix stream-test go={go}")
    # The first line arrives while the script is still waiting: output streams.
    tech.expect(r"^  stdout\| started$")
    assert not go.exists()
    assert not any("stream-test" in line and "status" in line for line in tech.lines)
    go.write_text("go")
    tech.expect(r"^  stderr\| a warning$")
    tech.expect(r"^  stdout\| done$")
    tech.expect(
        r"^error fix: stream-test 1\.0\.0 finished with exit status 3 \(3 lines of output\)$"
    )
    tech.send("end")
    assert tech.wait() == 0, tech.output + tech.stderr
    assert customer.wait() == 0, customer.output + customer.stderr

    # The customer was asked for this run, saw who signed it, and saw the result.
    assert customer.questions == ["Fix: Stream test"]
    assert "  Signed by Acme IT (fix stream-test, version 1.0.0;" in customer.output
    assert f"    go = {go}   (File whose appearance lets the script go on)" in customer.output
    assert "Stream test (run) finished: exit status 3." in customer.output
    assert "NOT verified" not in customer.output

    # The agent's audit log is intact and records the run.
    [log] = (tmp_path / "logs").glob("session-*.log")
    text = log.read_text()
    assert "Technician Ana Lopez (verified: Acme IT, certificate" in text
    assert "You allowed (this run only): Fix: Stream test." in text
    assert "Fix stream-test 1.0.0 (run) finished: exit status 3." in text
    verify = Process([sys.executable, "-m", "agent.cli", "audit", "verify", str(log)])
    assert verify.wait() == 0
    assert verify.output.startswith(f"OK: {log} is intact")


# Acceptance 5: parameters never pass through a shell -------------------------------------


def test_parameter_reaches_script_literally(
    relay_process: RelayProcess,
    acme: Organisation,
    ana: tuple[Path, Path],
    library: Path,
    tmp_path: Path,
) -> None:
    token = relay_process.add_technician()
    tech, code = console(relay_process, token, "--fixes", str(library), credentials=ana)
    env = customer_env(tmp_path)
    customer = ScriptedCustomer(
        relay_process.ws_url,
        code,
        tmp_path / "logs",
        answers={"Fix: Echo arguments": ["y", "y"]},
        extra=["--org-key", str(acme.public)],
        env=env,
    )
    tech.expect(r"Check code")
    tech.send("fix echo-args 'text=; rm -rf ~'")
    tech.expect(r"^ok fix: echo-args 1\.0\.0 finished with exit status 0")
    pwned = tmp_path / "pwned"
    # Console words are shell-like: this sends  $(touch …) `touch …` " '  as the value.
    tech.send(f'fix echo-args "text=$(touch {pwned}) `touch {pwned}` \\" \'"')
    tech.expect(r"^ok fix: echo-args 1\.0\.0 finished with exit status 0")
    tech.send("end")
    assert tech.wait() == 0, tech.output + tech.stderr
    assert customer.wait() == 0

    assert "  stdout| arg:; rm -rf ~" in tech.lines
    assert "  stdout| env:; rm -rf ~" in tech.lines
    assert f"  stdout| arg:$(touch {pwned}) `touch {pwned}` \" '" in tech.lines
    assert f"  stdout| env:$(touch {pwned}) `touch {pwned}` \" '" in tech.lines
    assert not pwned.exists()
    assert (Path(env["HOME"]) / "canary.txt").read_text() == "still here"
    # The script ran from the agent's private folder, which is gone afterwards.
    cwd = next(line for line in tech.lines if line.startswith("  stdout| cwd:"))
    run_dir = Path(cwd.removeprefix("  stdout| cwd:"))
    assert run_dir.parent == tmp_path / "state" / "puente" / "fix-runs"
    assert (run_dir.parent.stat().st_mode & 0o777) == 0o700
    assert not run_dir.exists()
    # The customer saw the value exactly as it will arrive.
    assert "    text = ; rm -rf ~   (Any text)" in customer.output


# Acceptance 2: refused before anything runs, reason on both sides ---------------------------


def tampered(bundle: Path, field: str, out: Path) -> Path:
    document = json.loads(bundle.read_bytes())
    data = bytearray(base64.b64decode(document[field]))
    data[-3] ^= 0x01  # one byte
    document[field] = base64.b64encode(bytes(data)).decode()
    out.write_text(json.dumps(document))
    return out


def test_tampered_unsigned_and_foreign_fixes_are_refused(
    relay_process: RelayProcess,
    acme: Organisation,
    ana: tuple[Path, Path],
    library: Path,
    tmp_path: Path,
) -> None:
    other = make_organisation(tmp_path / "other-org", "Scam Support Ltd")
    now = int(time.time())
    secret = acme.secret()
    marker = library / "marker.puentefix"
    cases = {
        "script": tampered(marker, "script", tmp_path / "t-script.puentefix"),
        "manifest": tampered(marker, "manifest", tmp_path / "t-manifest.puentefix"),
        "unsigned": write_fix(tmp_path / "marker-src", MARKER),
        "foreign": other.sign(other.secret(), MARKER, tmp_path / "foreign.puentefix"),
        "expired": acme.sign(
            secret,
            MARKER,
            tmp_path / "expired.puentefix",
            signed_at=now - 2 * 86400,
            expires_at=now - 86400,
        ),
        "platform": acme.sign(
            secret,
            {
                **MARKER,
                "manifest.toml": MARKER["manifest.toml"].replace('"linux", "macos"', '"windows"'),
            },
            tmp_path / "windows.puentefix",
        ),
    }
    reasons = {
        "script": r"changed after it was signed \(its script differs\)",
        "manifest": r"changed after it was signed \(its manifest differs\)",
        "unsigned": r"is not signed\. This computer only runs fixes signed by its organisation",
        "foreign": r"signed by another organisation \(Scam Support Ltd, key",
        "expired": r"expired on",
        "platform": r"made for windows, not for",
    }
    token = relay_process.add_technician()
    tech, code = console(relay_process, token, "--fixes", str(library), credentials=ana)
    customer = ScriptedCustomer(
        relay_process.ws_url,
        code,
        tmp_path / "logs",
        answers={"Fix: Leave a marker": "y"},
        extra=["--org-key", str(acme.public)],
        env=customer_env(tmp_path),
    )
    tech.expect(r"Check code")
    target = tmp_path / "ran.txt"
    for name, path in cases.items():
        tech.send(f"fix {path} path={target}")
        line = tech.expect(r"^(ok|error|declined) fix: .*").string
        assert re.match(r"^error fix: refused before anything ran: ", line), (name, line)
        assert re.search(reasons[name], line), (name, line)
        customer.expect(r"^Refused before anything ran: .*" + reasons[name])
        assert not target.exists(), name
    assert customer.questions == []  # nobody was even asked
    # The genuine bundle does run (so the refusals were about the bundles).
    tech.send(f"fix marker path={target}")
    tech.expect(r"^ok fix: marker 1\.0\.0 finished with exit status 0")
    assert target.read_text() == "ran\n"
    tech.send("end")
    assert tech.wait() == 0
    assert customer.wait() == 0
    assert customer.questions == ["Fix: Leave a marker"]


def test_unpinned_agent_warns_and_refuses_fixes(
    relay_process: RelayProcess, ana: tuple[Path, Path], library: Path, tmp_path: Path
) -> None:
    token = relay_process.add_technician()
    tech, code = console(relay_process, token, "--fixes", str(library), credentials=ana)
    customer = ScriptedCustomer(
        relay_process.ws_url, code, tmp_path / "logs", env=customer_env(tmp_path)
    )
    customer.expect(r"WARNING: this technician is NOT verified")
    tech.expect(r"Check code")
    tech.send(f"fix marker path={tmp_path / 'ran'}")
    tech.expect(r"^error fix: refused before anything ran: This agent was started without an")
    tech.send("end")
    assert tech.wait() == 0
    assert customer.wait() == 0
    assert not (tmp_path / "ran").exists()
    assert "Verified:" not in customer.output


# Acceptance 3: technicians without a valid certificate are refused ----------------------------


def assert_refused(customer: ScriptedCustomer, reason: str) -> None:
    assert customer.wait() == 1, customer.output
    assert re.search(
        r"Session ended: This computer only accepts technicians certified by its "
        r"organisation, and .* could not be verified: .*" + reason,
        customer.output,
    ), customer.output
    assert "Check code" not in customer.output  # nothing was shown before the refusal
    assert customer.questions == []


@pytest.mark.parametrize("case", ["missing", "foreign", "revoked"])
def test_pinned_agent_refuses_technician_through_cli(
    case: str,
    relay_process: RelayProcess,
    acme: Organisation,
    ana: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    token = relay_process.add_technician()
    credentials: tuple[Path, Path] | None = ana
    reason = {
        "missing": "presented no certificate",
        "foreign": r"issued by another organisation \(Scam Support Ltd",
        "revoked": "revoked the certificate of Bea Ruiz",
    }[case]
    if case == "missing":
        credentials = None
    elif case == "foreign":
        other = make_organisation(tmp_path / "other", "Scam Support Ltd")
        credentials = other.technician("Ana Lopez", "fake-ana")
    else:
        credentials = acme.technician("Bea Ruiz", f"bea-{tmp_path.name}")
        serial = parse_certificate(credentials[0].read_bytes()).serial
        revocations = tmp_path / "revoked.json"
        done = tech_cli(
            "org", "revoke", serial, "--org-key", str(acme.key), "--list", str(revocations)
        )
        assert done.returncode == 0, done.stderr
        done = tech_cli(
            "--relay",
            relay_process.ws_url,
            "--token",
            token,
            "org",
            "publish",
            "--list",
            str(revocations),
        )
        assert done.returncode == 0, done.stderr
        assert "is published" in done.stdout
    tech, code = console(relay_process, token, credentials=credentials)
    customer = ScriptedCustomer(
        relay_process.ws_url,
        code,
        tmp_path / "logs",
        extra=["--org-key", str(acme.public)],
        env=customer_env(tmp_path),
    )
    assert_refused(customer, reason)
    assert tech.wait() == 1
    assert re.search("The customer's agent ended the session: .*" + reason, tech.stderr), (
        tech.stderr
    )
    [log] = (tmp_path / "logs").glob("session-*.log")
    assert "Refused a technician who could not be verified" in log.read_text()


@pytest.mark.parametrize("case", ["expired", "copied"])
def test_pinned_agent_refuses_expired_or_copied_certificate(
    case: str,
    relay_process: RelayProcess,
    acme: Organisation,
    ana: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    """A technician program presenting a stale certificate, or someone else's (their
    own client refuses an expired one, so this drives the client library directly)."""
    now = int(time.time())
    key = read_private_key(ana[1])
    if case == "expired":
        document = issue_certificate(
            acme.secret(), "Ana Lopez", key.public_key(), now - 10 * 86400, now - 86400
        )
        reason = "expired on"
    else:
        document = ana[0].read_bytes()
        key = Ed25519PrivateKey.generate()  # a copy of Ana's certificate, not her key
        reason = "could not prove they hold its key"
    credentials = TechnicianCredentials(document, parse_certificate(document), key)
    token = relay_process.add_technician()
    api = RelayAPI(relay_process.ws_url, token)
    created = api.create_session("HD-77")
    code = SessionCode.new(created["nameplate"])
    customer = ScriptedCustomer(
        relay_process.ws_url,
        str(code),
        tmp_path / "logs",
        extra=["--org-key", str(acme.public)],
        env=customer_env(tmp_path),
    )

    async def technician() -> None:
        await TechnicianSession.connect(
            relay_process.ws_url,
            code,
            "HD-77",
            token=token,
            technician_name="Ana Lopez",
            credentials=credentials,
            wait_timeout=scaled(20),
        )

    with pytest.raises(SessionLost, match="The customer's agent ended the session: .*" + reason):
        asyncio.run(asyncio.wait_for(technician(), scaled(30)))
    assert_refused(customer, reason)


# The starter disk clean-up: triage suggests it, preview, second consent, past cases -------


def test_triage_then_disk_cleanup_with_preview(
    relay_process: RelayProcess,
    acme: Organisation,
    ana: tuple[Path, Path],
    library: Path,
    tmp_path: Path,
) -> None:
    env = customer_env(tmp_path)
    home = Path(env["HOME"])
    cache = home / ".cache" / "browser"
    cache.mkdir(parents=True)
    (cache / "blob").write_bytes(b"x" * 200_000)
    trash = home / ".local" / "share" / "Trash" / "files"
    trash.mkdir(parents=True)
    (trash / "old.doc").write_bytes(b"y" * 100_000)
    (home / "Documents").mkdir()
    (home / "Documents" / "thesis.txt").write_text("keep me")
    two_days_ago = time.time() - 2 * 86400
    for path in (cache / "blob", trash / "old.doc"):
        os.utime(path, (two_days_ago, two_days_ago))
    snapshot = tmp_path / "full.json"
    snapshot.write_text(
        json.dumps(
            {
                "os": {"system": "Linux"},
                "disks": [
                    {
                        "mountpoint": "/",
                        "fstype": "ext4",
                        "total": 64 * 2**30,
                        "used": 63 * 2**30,
                        "free": 2**30,
                        "percent": 98.4,
                    }
                ],
            }
        )
    )
    outcomes = tmp_path / "outcomes.sqlite3"
    token = relay_process.add_technician()
    tech, code = console(
        relay_process, token, "--fixes", str(library), credentials=ana, outcomes=outcomes
    )
    customer = ScriptedCustomer(
        relay_process.ws_url,
        code,
        tmp_path / "logs",
        answers={
            "Fix: Free disk space": ["script", "y"],
            "Fix: Free disk space, now that you have seen the preview": "y",
        },
        extra=["--org-key", str(acme.public)],
        env=env,
    )
    tech.expect(r"Check code")
    tech.send(f"triage {snapshot}")
    tech.expect(r"^      suggested 1: fix disk-cleanup   \(no past cases\)$")
    tech.expect(r"^ok triage: 1 problem\(s\): disk-nearly-full \(high\)$")
    tech.send("fix disk-cleanup")
    tech.expect(r"^  preview stdout\| would delete 196 KiB of files in .*/\.cache$")
    tech.expect(r"^  stdout\| deleted 196 KiB of files in .*/\.cache$")
    tech.expect(r"^ok fix: disk-cleanup 1\.0\.0 finished with exit status 0")
    tech.send("end")
    assert tech.wait() == 0, tech.output + tech.stderr
    assert customer.wait() == 0

    # The ticket's summary says what triage found and which fix ran, with its result.
    _, listed = rest(relay_process, "GET", "/api/sessions?ticket_id=HD-77", token)
    summary = listed["sessions"][0]["summary"]
    assert [f["title"] for f in summary["findings"]] == ["A disk is nearly full"]
    assert summary["findings"][0]["detail"].startswith("high: ")
    [fix] = summary["fixes"]
    assert (fix["fix_id"], fix["title"], fix["status"], fix["exit_code"]) == (
        "disk-cleanup",
        "disk-cleanup 1.0.0",
        "succeeded",
        0,
    )

    # The customer read the script, saw the preview, then allowed the real run.
    assert customer.questions == [
        "Fix: Free disk space",
        "Fix: Free disk space",
        "Fix: Free disk space, now that you have seen the preview",
    ]
    assert "   1 | #!/bin/sh" in customer.lines
    assert (
        "It first shows you what it would change, and asks you again before changing anything."
        in customer.output
    )
    preview = customer.lines.index("Free disk space (preview) finished: exit status 0.")
    second = customer.lines.index(
        "Allow Fix: Free disk space, now that you have seen the preview? Type y for yes or n for no, then Enter:"
    )
    assert preview < second
    assert not (cache / "blob").exists() and not (trash / "old.doc").exists()
    assert (home / "Documents" / "thesis.txt").read_text() == "keep me"
    assert (home / "canary.txt").exists()

    # The run is a past case of this problem now; the next triage ranks with it.
    with sqlite3.connect(outcomes) as db:
        rows = db.execute(
            "SELECT ticket_id, problem, fix_id, exit_status, solved FROM fix_outcomes"
        ).fetchall()
    assert rows == [("HD-77", "disk-nearly-full", "disk-cleanup", 0, 1)]
    # ... and, first of all, one of the organisation's past cases at the relay.
    _, figures = rest(relay_process, "GET", "/api/outcomes", token)
    assert figures["problems"] == {"disk-nearly-full": {"disk-cleanup": {"solved": 1, "runs": 1}}}
    done = tech_cli("triage", str(snapshot), "--outcomes", str(outcomes), "--fixes", str(library))
    assert "    suggested 1: fix disk-cleanup   (solved 1 of 1 past cases)" in done.stdout


def test_customer_stop_kills_a_running_fix(
    relay_process: RelayProcess,
    acme: Organisation,
    ana: tuple[Path, Path],
    library: Path,
    tmp_path: Path,
) -> None:
    token = relay_process.add_technician()
    tech, code = console(relay_process, token, "--fixes", str(library), credentials=ana)
    customer = ScriptedCustomer(
        relay_process.ws_url,
        code,
        tmp_path / "logs",
        answers={"Fix: Stream test": "y"},
        after={r"^  \[stream-test\] started$": "stop fixes"},
        extra=["--org-key", str(acme.public)],
        env=customer_env(tmp_path),
    )
    tech.expect(r"Check code")
    go = tmp_path / "go"
    tech.send(f"fix stream-test go={go}")
    tech.expect(r"^declined fix: The customer stopped fixes; nothing more was sent\.$")
    go.write_text("go")  # had the script survived, it would print "done" now
    time.sleep(0.5)
    tech.send("status")
    tech.expect(r"^ok status: allowed: nothing yet")
    tech.send("end")
    assert tech.wait() == 0
    assert customer.wait() == 0
    assert "  stdout| done" not in tech.lines
    assert not (tmp_path / "go.after").exists()  # the script was killed, not left running
    assert list((tmp_path / "state" / "puente" / "fix-runs").iterdir()) == []
    [log] = (tmp_path / "logs").glob("session-*.log")
    assert "Stopped before it finished: Fixes." in log.read_text()


# Rollback protection: an older signed version is refused once a newer one was seen ------


def test_an_older_signed_version_is_refused_after_a_newer_one(
    relay_process: RelayProcess,
    acme: Organisation,
    ana: tuple[Path, Path],
    library: Path,
    tmp_path: Path,
) -> None:
    newer = acme.sign(
        acme.secret(),
        {**MARKER, "manifest.toml": MARKER["manifest.toml"].replace('"1.0.0"', '"1.1.0"')},
        tmp_path / "marker-1.1.0.puentefix",
    )
    token = relay_process.add_technician()
    tech, code = console(relay_process, token, "--fixes", str(library), credentials=ana)
    customer = ScriptedCustomer(
        relay_process.ws_url,
        code,
        tmp_path / "logs",
        answers={"Fix: Leave a marker": "y"},
        extra=["--org-key", str(acme.public)],
        env=customer_env(tmp_path),
    )
    tech.expect(r"Check code")
    target = tmp_path / "ran.txt"
    tech.send(f"fix {newer} path={target}")
    tech.expect(r"^ok fix: marker 1\.1\.0 finished with exit status 0")
    target.unlink()
    tech.send(f"fix marker path={target}")  # the library's 1.0.0, genuinely signed
    line = tech.expect(r"^(ok|error|declined) fix: .*").string
    assert re.match(
        r"^error fix: refused before anything ran: The fix 'marker' is version 1\.0\.0, older "
        r"than version 1\.1\.0 that this computer has already seen signed by its organisation",
        line,
    ), line
    assert "Ask your technician for the newest version." in line
    assert not target.exists()
    tech.send("end")
    assert tech.wait() == 0
    assert customer.wait() == 0
    assert customer.questions == ["Fix: Leave a marker"]  # asked for 1.1.0 only
    [record] = (tmp_path / "state" / "puente").glob("fix-versions-*.json")
    assert json.loads(record.read_text()) == {"marker": "1.1.0"}
    assert record.stat().st_mode & 0o777 == 0o600
