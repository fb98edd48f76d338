"""Issue 2 end to end: real relay process, real agent and technician processes."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from technician.cli import MAX_WRONG_CODES
from tests.support.customer import Process, ScriptedCustomer, technician
from tests.support.proxy import RecordingProxy
from tests.support.relay import RelayProcess, start_relay
from tests.support.timeouts import scaled

CODE_LINE = r"^code: (\d{3,9}-\d{3}-\d{3})$"


def start_diagnostics(
    relay: RelayProcess, token: str, out: Path, *extra: str
) -> tuple[Process, str]:
    tech = technician(
        relay.ws_url, token, "diagnostics", "--ticket", "HD-1042", "--out", str(out), *extra
    )
    code = tech.expect(CODE_LINE).group(1)
    return tech, code


def test_diagnostics_end_to_end(relay_process: RelayProcess, tmp_path: Path) -> None:
    token = relay_process.add_technician("Ana Technician")
    out = tmp_path / "diag.json"
    tech, code = start_diagnostics(relay_process, token, out)
    customer = ScriptedCustomer(
        relay_process.ws_url, code, tmp_path / "logs", answers={"Diagnostics": "y"}
    )
    assert tech.wait(60) == 0, tech.output + tech.stderr
    assert customer.wait(30) == 0, customer.output + customer.stderr

    data = json.loads(out.read_text())
    assert data["hostname"] == socket.gethostname()
    assert data["os"]["system"] == platform.system()
    assert data["cpu"]["logical_count"] == os.cpu_count()
    assert data["memory"]["total"] == psutil.virtual_memory().total
    assert "/" in [d["mountpoint"] for d in data["disks"]]

    # Both screens showed the same check code, and the customer saw who and what.
    tech_sas = re.search(r"Check code: (\d{4} \d{4})", tech.output).group(1)
    assert f"Check code: {tech_sas}" in customer.output
    assert "Technician: Ana Technician" in customer.output
    assert "NOT verified" in customer.output
    assert "Ticket: HD-1042" in customer.output
    assert customer.questions == ["Diagnostics"]

    # The customer's local log says what happened on the machine.
    [log] = list((tmp_path / "logs").glob("session-*.log"))
    text = log.read_text()
    assert "Technician Ana Technician (not verified) connected for ticket HD-1042" in text
    assert "You allowed: Diagnostics." in text
    assert "Sent to the technician: Diagnostics result" in text
    assert data["hostname"] not in text  # the log records actions, not content


def test_consent_refused(relay_process: RelayProcess, tmp_path: Path) -> None:
    token = relay_process.add_technician()
    out = tmp_path / "diag.json"
    tech, code = start_diagnostics(relay_process, token, out)
    customer = ScriptedCustomer(
        relay_process.ws_url, code, tmp_path / "logs", answers={"Diagnostics": "n"}
    )
    assert tech.wait(60) == 3
    assert "declined" in tech.stderr
    assert not out.exists()
    assert customer.wait(30) == 0
    assert "Declined: Diagnostics." in customer.output


def test_consent_revoked_stops_collection(relay_process: RelayProcess, tmp_path: Path) -> None:
    token = relay_process.add_technician()
    out = tmp_path / "diag.json"
    # A long process sample keeps the capability running while the customer revokes.
    tech, code = start_diagnostics(relay_process, token, out, "--sample", "25")
    customer = ScriptedCustomer(
        relay_process.ws_url,
        code,
        tmp_path / "logs",
        answers={"Diagnostics": "y"},
        after={r"^Now allowed: diagnostics": "stop diagnostics"},
    )
    started = time.monotonic()
    assert tech.wait(60) == 3, tech.output + tech.stderr
    assert time.monotonic() - started < scaled(20)  # stopped, not left to finish
    assert "stopped diagnostics" in tech.stderr
    assert not out.exists()
    assert customer.wait(30) == 0
    [log] = list((tmp_path / "logs").glob("session-*.log"))
    assert "You stopped: diagnostics" in log.read_text()


def test_nobody_joins(relay_process: RelayProcess, tmp_path: Path) -> None:
    token = relay_process.add_technician()
    tech, _ = start_diagnostics(relay_process, token, tmp_path / "d.json", "--wait", "1")
    assert tech.wait(30) == 4
    assert "Nobody joined" in tech.stderr


def test_wrong_secret_burns_the_nameplate_and_the_technician_gets_a_new_code(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    """A mistyped code, or a squatter who knows only the nameplate: the customer is told,
    the nameplate is burnt, and the technician is not stuck: a new code at once."""
    token = relay_process.add_technician()
    out = tmp_path / "d.json"
    tech, code = start_diagnostics(relay_process, token, out, "--wait", "30")
    join = tech.expect(r"^Join page for the customer .*: (\S+)$").group(1)
    nameplate, a, b = code.split("-")
    # The join link names the session by its unguessable id, never by the nameplate.
    assert re.fullmatch(re.escape(f"{relay_process.http_url}/join/") + "[0-9a-f]{32}", join)
    wrong = f"{nameplate}-{b}-{a}" if a != b else f"{nameplate}-000-00{(int(b[-1]) + 1) % 10}"
    customer = ScriptedCustomer(relay_process.ws_url, wrong, tmp_path / "logs")
    assert customer.wait(30) == 1
    assert "did not match" in customer.stderr
    # The technician is told why and gets a new code on the spot.
    reissued = tech.expect(r"did not match.*give the customer this new one: (\S+)$", 30)
    new_code = reissued.group(1)
    assert new_code.split("-")[0] != nameplate
    # The nameplate is dead: even the right code is refused now.
    again = ScriptedCustomer(relay_process.ws_url, code, tmp_path / "logs2")
    assert again.wait(30) == 1
    assert "already used" in again.stderr or "new one" in again.stderr
    # The real customer joins with the new code; the diagnostics arrive.
    real = ScriptedCustomer(
        relay_process.ws_url, new_code, tmp_path / "logs3", answers={"Diagnostics": "y"}
    )
    assert tech.wait(60) == 0, tech.output + tech.stderr
    assert real.wait(30) == 0, real.output + real.stderr
    assert json.loads(out.read_text())["hostname"]


def test_a_squatter_who_keeps_guessing_stops_the_technician_with_a_reason(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    token = relay_process.add_technician()
    tech, code = start_diagnostics(relay_process, token, tmp_path / "d.json", "--wait", "30")
    for attempt in range(MAX_WRONG_CODES + 1):
        nameplate = code.split("-")[0]
        squatter = ScriptedCustomer(
            relay_process.ws_url, f"{nameplate}-000-000", tmp_path / f"logs{attempt}"
        )
        assert squatter.wait(30) == 1
        if attempt < MAX_WRONG_CODES:
            code = tech.expect(r"give the customer this new one: (\S+)$", 30).group(1)
    assert tech.wait(30) == 1
    assert "did not match" in tech.stderr


def test_unknown_and_malformed_codes(relay_process: RelayProcess, tmp_path: Path) -> None:
    customer = ScriptedCustomer(relay_process.ws_url, "999-123-456", tmp_path / "logs")
    assert customer.wait(30) == 1
    assert "does not exist" in customer.stderr
    bad = ScriptedCustomer(relay_process.ws_url, "12-34", tmp_path / "logs")
    assert bad.wait(30) == 1
    assert "looks like 417-862-093" in bad.stderr


def test_expired_code_refused(tmp_path: Path) -> None:
    relay = start_relay(tmp_path / "relay", "--nameplate-ttl", "1")
    try:
        token = relay.add_technician()
        tech, code = start_diagnostics(relay, token, tmp_path / "d.json", "--wait", "30")
        time.sleep(1.5)
        customer = ScriptedCustomer(relay.ws_url, code, tmp_path / "logs")
        assert customer.wait(30) == 1
        assert "expired" in customer.stderr
        tech.kill()
    finally:
        relay.stop()


def test_relay_down(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    customer = ScriptedCustomer(f"ws://127.0.0.1:{port}", "417-862-093", tmp_path / "logs")
    assert customer.wait(30) == 1
    assert "Could not reach the relay" in customer.stderr
    tech = technician(
        f"ws://127.0.0.1:{port}", "pt_x_y", "diagnostics", "--ticket", "T", "--out", "x.json"
    )
    assert tech.wait(30) == 1
    assert "Could not reach the relay" in tech.stderr


def test_repeated_joins_throttled(relay_process: RelayProcess, tmp_path: Path) -> None:
    messages = []
    for _ in range(25):
        customer = ScriptedCustomer(relay_process.ws_url, "999-123-456", tmp_path / "logs")
        customer.wait(30)
        messages.append(customer.stderr)
        if "Too many attempts" in customer.stderr:
            break
    assert "Too many attempts" in messages[-1], messages


def test_relay_is_blind(tmp_path: Path) -> None:
    """Nothing of the content or the code's secret reaches the relay in any form."""
    relay = start_relay(tmp_path / "relay")
    canary_host = "puente-canary-host-7f3a"
    hostname_prefix: list[str] = []
    if (
        os.geteuid() == 0
        and shutil.which("unshare")
        and subprocess.run(["unshare", "-u", "true"], capture_output=True).returncode == 0
    ):
        # A distinctive hostname for the customer, so finding it in bytes means a leak.
        hostname_prefix = [
            "unshare",
            "-u",
            "sh",
            "-c",
            f'hostname {canary_host} && exec "$@"',
            "sh",
        ]
    try:
        token = relay.add_technician()
        out = tmp_path / "diag.json"
        with (
            RecordingProxy("127.0.0.1", relay.port) as agent_side,
            RecordingProxy("127.0.0.1", relay.port) as tech_side,
        ):
            tech = technician(
                tech_side.url, token, "diagnostics", "--ticket", "HD-7", "--out", str(out)
            )
            code = tech.expect(CODE_LINE).group(1)
            customer = Process(
                [
                    *hostname_prefix,
                    sys.executable,
                    "-m",
                    "agent.cli",
                    "--relay",
                    agent_side.url,
                    "--console",
                    "--log-dir",
                    str(tmp_path / "logs"),
                    code,
                ],
                stdin=True,
            )
            customer.expect(r"^Allow Diagnostics\?")
            customer.send("y")
            customer.expect(r"^How would you rate this help")
            customer.send("5")
            customer.expect(r"^Any comment")
            customer.send("")
            assert tech.wait(60) == 0, tech.stderr
            assert customer.wait(30) == 0
            recorded = agent_side.recorded + tech_side.recorded
        logs = relay.stop()
        data = json.loads(out.read_text())
        if hostname_prefix:
            assert data["hostname"] == canary_host
        secret = code.replace("-", "")[-6:]
        needles = [
            data["hostname"],
            secret,
            code,
            data["cpu"]["model"],
            data["os"]["version"],
            data["uptime"]["boot_time"],
            data["collected_at"],
        ]
        needles = [n for n in needles if n and len(n) >= 6]
        store = b"".join(p.read_bytes() for p in (tmp_path / "relay").rglob("*") if p.is_file())
        for needle in needles:
            raw = needle.encode()
            assert raw not in recorded, f"{needle!r} crossed the relay in the clear"
            assert raw not in store, f"{needle!r} is in the relay's store"
            assert needle not in logs, f"{needle!r} is in the relay's logs"
        assert len(recorded) > 1000  # the proxy really saw the session
    finally:
        relay.stop()
