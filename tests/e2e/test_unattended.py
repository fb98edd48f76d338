"""Unattended access to an enrolled device (issue 18, acceptance point 4), end to end on
loopback: a real relay process behind the recording proxy, a real agent enrolled with
``--no-service`` in the foreground (it starts ``puente-agent unattended`` itself when
the relay passes the request on), Xvfb for the window, and the real technician CLI
(``puente-tech connect DEVICE --ticket T``, commands on stdin).

The device's own policy decides: "ask, deny on no answer" is denied after the timeout
and logged; "allow after countdown" starts after the countdown with the banner shown
(screenshot) and only the listed capabilities usable; a technician without the
unattended role, one of another organisation, and any technician under "never" are
refused by the agent; the relay saw no content.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent.audit import verify_log
from tests.support.device_fixtures import enrol_argv, enrolment_token
from tests.support.proxy import RecordingProxy, content_samples
from tests.support.relay import RelayProcess
from tests.support.timeouts import scaled
from tests.support.trust_fixtures import Organisation, make_organisation, tech_cli
from tests.support.xdisplay import grab, screenshot, xdotool, xvfb

TICKET = "HD-7001"


def policy_file(org: Organisation, directory: Path, unattended: str) -> Path:
    """A signed policy with one harmless check and the given ``[unattended]`` table."""
    source = directory / "policy.toml"
    source.write_text(
        '[[checks]]\nid = "reboot"\nkind = "pending_reboot"\nevery_minutes = 60\n'
        'severity = "info"\n\n[unattended]\n' + unattended,
        encoding="utf-8",
    )
    signed = directory / "policy.signed"
    done = tech_cli("policy", "sign", str(source), "--org-key", str(org.key), "--out", str(signed))
    assert done.returncode == 0, done.stderr
    return signed


def certify(org: Organisation, name: str, stem: str, *roles: str) -> tuple[Path, Path]:
    key, cert = org.directory / f"{stem}.key", org.directory / f"{stem}.cert"
    done = tech_cli("org", "keygen", "--out", str(key))
    assert done.returncode == 0, done.stderr
    role_args = [arg for role in roles for arg in ("--role", role)]
    done = tech_cli(
        "org", "certify", name, "--org-key", str(org.key), "--technician-key",
        str(key.with_suffix(".pub")), "--valid-days", "30", "--out", str(cert), *role_args,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return cert, key


class Device:
    """An enrolled agent running in the foreground, as the owner would with --no-service."""

    def __init__(
        self, relay: RelayProcess, url: str, org: Organisation, policy: Path, state: Path,
        display: str | None = None, snapshot: Path | None = None,
    ) -> None:  # fmt: skip
        token = enrolment_token(
            relay.data_dir, "--uses", "1", "--valid-days", "1", "--policy", str(policy)
        )
        env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
        env.update(PUENTE_ENROL_TOKEN=token, PUENTE_LANG="en")
        if display:
            env["DISPLAY"] = display
        if snapshot:
            env["PUENTE_TK_SNAPSHOT"] = str(snapshot)
        self.state = state
        self.process = subprocess.Popen(
            enrol_argv(url, org.public, state, "--no-service", "--yes"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        self.shown: list[str] = []
        while True:
            line = self.process.stdout.readline()
            assert line, "the agent stopped: " + "".join(self.shown)
            self.shown.append(line)
            if line.startswith("Online:"):
                break
        self.device_id = json.loads((state / "device.json").read_text())["device_id"]

    def log(self) -> str:
        path = self.state / "unattended.log"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def stop(self) -> str:
        self.process.terminate()
        out, _ = self.process.communicate(timeout=scaled(20))
        return "".join(self.shown) + (out or "")


def connect(
    url: str, token: str, cert: Path, key: Path, device: str, commands: str = "", **kw: Any
) -> subprocess.Popen[str]:
    """``puente-tech connect DEVICE --ticket T`` with ``commands`` on stdin."""
    process = subprocess.Popen(
        [
            sys.executable, "-m", "technician.cli", "--relay", url, "--token", token,
            "--cert", str(cert), "--key", str(key), "--json",
            "connect", device, "--ticket", TICKET, "--wait", str(scaled(30)),
            "--rating-wait", "0",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )  # fmt: skip
    return process


def finish(process: subprocess.Popen[str], commands: str = "") -> tuple[int, str, str]:
    out, err = process.communicate(commands, timeout=scaled(90))
    return process.returncode, out, err


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def acme_and_ana(
    relay: RelayProcess, tmp_path: Path, unattended: str
) -> tuple[Organisation, tuple[Path, Path], Path, str]:
    """Acme IT, Ana certified for unattended access, a policy, and her desk's API token."""
    acme = make_organisation(tmp_path / "org", "Acme IT")
    ana = certify(acme, "Ana Lopez", "ana", "unattended")
    return acme, ana, policy_file(acme, tmp_path, unattended), relay.add_technician("Ana desk")


def test_ask_deny_nobody_answers_then_refused_and_logged(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    relay = relay_process
    acme, (cert, key), policy, token = acme_and_ana(
        relay, tmp_path, 'mode = "ask-deny"\nanswer_seconds = 5\n'
    )
    snapshot = tmp_path / "window.json"
    with xvfb() as display, RecordingProxy("127.0.0.1", relay.port) as proxy:
        device = Device(relay, proxy.url, acme, policy, tmp_path / "state", display, snapshot)
        try:
            started = time.monotonic()
            technician = connect(proxy.url, token, cert, key, device.device_id)
            # The question is on the screen of whoever is signed in, with the countdown.
            wait_for(
                lambda: snapshot.exists() and "(Acme IT, verified)" in snapshot.read_text(),
                scaled(30),
                "the unattended question in the window",
            )
            (tmp_path / "screenshots").mkdir()
            screenshot(display, tmp_path / "screenshots" / "unattended-question.png")
            shown = snapshot.read_text()
            assert "Ana Lopez (Acme IT, verified)" in shown
            assert "If nobody answers within 5 seconds, the answer is no." in shown
            status, out, err = finish(technician, "diagnostics out.json\n")
            took = time.monotonic() - started
        finally:
            output = device.stop()
            _reap(technician)
    assert status == 3, (out, err)
    assert "Nobody at the device answered within 5 seconds" in err
    assert took >= 5
    log = device.log()
    assert (
        "Nobody answered within 5 seconds: the policy (ask-deny) does not let Ana Lopez in" in log
    )
    assert "Session refused" in log and "Unattended session started" not in log
    assert verify_log(device.state / "unattended.log").ok
    assert "A technician asks for an unattended session (ticket HD-7001)" in output
    assert b"Ana Lopez" not in proxy.recorded  # the certificate travelled encrypted


def test_ask_allow_starts_after_the_countdown_with_the_banner(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    relay = relay_process
    acme, (cert, key), policy, token = acme_and_ana(
        relay,
        tmp_path,
        'mode = "ask-allow"\ncountdown_seconds = 5\ncapabilities = ["diagnostics"]\n',
    )
    snapshot = tmp_path / "window.json"
    diagnostics = tmp_path / "diag.json"
    with xvfb() as display, RecordingProxy("127.0.0.1", relay.port) as proxy:
        device = Device(relay, proxy.url, acme, policy, tmp_path / "state", display, snapshot)
        try:
            started = time.monotonic()
            technician = connect(proxy.url, token, cert, key, device.device_id)
            assert technician.stdout is not None
            while True:  # the technician's events, one JSON object a line
                line = technician.stdout.readline()
                assert line, technician.stderr.read() if technician.stderr else ""
                if json.loads(line).get("event") == "paired":
                    break
            took = time.monotonic() - started
            wait_for(
                lambda: (
                    "Unattended session: Ana Lopez (Acme IT)" in snapshot.read_text()
                    and "Check code" in snapshot.read_text()
                ),
                scaled(20),
                "the unattended banner and the session in the window",
            )
            time.sleep(0.5)  # the window's next paint, for the picture
            (tmp_path / "screenshots").mkdir()
            picture = screenshot(display, tmp_path / "screenshots" / "unattended-banner.png")
            assert picture.stat().st_size > 0
            banner = [
                item
                for item in json.loads(snapshot.read_text())
                if item["text"].startswith("Unattended session:")
            ]
            assert banner and banner[0]["bg"] == "#4a148c"
            assert any(item["text"] == "End session" for item in json.loads(snapshot.read_text()))
            assert "Nothing yet. In this unattended session" in snapshot.read_text()
            assert technician.stdin is not None
            technician.stdin.write(f"diagnostics {diagnostics}\nmove 10 10\n")
            technician.stdin.flush()
            lines = [technician.stdout.readline(), technician.stdout.readline()]
            # Whoever is signed in ends it from the banner, as a person would.
            end_session_from_the_banner(display)
            while '"event": "ended"' not in lines[-1]:  # before stdin closes, which ends too
                lines.append(technician.stdout.readline())
                assert lines[-1], lines
            status, out, err = finish(technician)
            out = "".join(lines) + out
        finally:
            output = device.stop()
            _reap(technician)
    assert took >= 5, "the countdown ran out before the technician was let in"
    assert status == 0, (out, err)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert diagnostics.exists()
    # Only what the policy lists: remote control (which starts with screen view) is
    # refused, without asking anyone.
    refused = [e for e in events if "does not allow screen" in json.dumps(e)]
    assert refused, json.dumps(events)
    log = device.log()
    assert "Nobody answered within 5 seconds: the policy (ask-allow) lets Ana Lopez in" in log
    assert "Unattended session started: Ana Lopez (Acme IT) for ticket HD-7001" in log
    assert "Allowed by the owner's unattended policy: Diagnostics" in log
    assert "Refused by the owner's unattended policy: Screen view" in log
    assert "Session ended: ended by the customer" in log
    assert any(e.get("event") == "ended" and "customer" in e.get("reason", "") for e in events)
    assert verify_log(device.state / "unattended.log").ok, output
    # The ticket has the session with the technician's summary (the help-desk path).
    listed = tech_cli(
        "--relay", relay.ws_url, "--token", token, "--json", "sessions", "--ticket", TICKET
    )
    assert listed.returncode == 0, listed.stderr
    (session,) = json.loads(listed.stdout)["sessions"]
    assert session["summary"] is not None, session
    assert session["summary"]["unattended"] == {"device_id": device.device_id, "mode": "ask-allow"}
    # The relay saw no content: nothing of the diagnostics, no certificate.
    collected = json.loads(diagnostics.read_text())
    recorded = proxy.recorded
    assert b"Ana Lopez" not in recorded
    # (The summary the technician uploads for the ticket is meant for the help desk: what
    # it quotes of the diagnostics digest is not counted.)
    shared = json.dumps(session["summary"], ensure_ascii=False)
    samples = content_samples(collected, known=shared)
    assert samples
    for value in samples:
        assert value.encode() not in recorded, f"the relay saw {value!r}"


def test_refused_without_the_role_from_another_organisation_and_under_never_else_let_in(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    relay = relay_process
    acme = make_organisation(tmp_path / "org", "Acme IT")
    other = make_organisation(tmp_path / "other", "Other IT")
    no_role = certify(acme, "Bo Attended", "bo")
    outsider = certify(other, "Eve Outsider", "eve", "unattended")
    ana = certify(acme, "Ana Lopez", "ana", "unattended")
    allowing = policy_file(acme, tmp_path, 'mode = "allowed"\ncapabilities = ["diagnostics"]\n')
    (tmp_path / "never").mkdir()
    never = policy_file(acme, tmp_path / "never", 'mode = "never"\n')
    token = relay.add_technician("desk")
    with RecordingProxy("127.0.0.1", relay.port) as proxy:
        open_device = Device(relay, proxy.url, acme, allowing, tmp_path / "open-state")
        closed_device = Device(relay, proxy.url, acme, never, tmp_path / "closed-state")
        try:
            results = {
                who: finish(connect(proxy.url, token, cert, key, device.device_id), "status\n")
                for who, (cert, key), device in (
                    ("no role", no_role, open_device),
                    ("other organisation", outsider, open_device),
                    ("never", ana, closed_device),
                    ("certified, mode allowed", ana, open_device),  # the one let in
                )
            }
        finally:
            open_device.stop()
            closed_device.stop()
    status, out, err = results.pop("certified, mode allowed")
    assert status == 0 and '"event": "paired"' in out, (out, err)
    for who, (status, out, err) in results.items():
        assert status != 0, (who, out, err)
        assert '"event": "paired"' not in out, who
    opened = open_device.log()
    # Without asking anyone (mode "allowed"), and only after the refusals before it.
    assert "Unattended session started: Ana Lopez (Acme IT)" in opened
    assert "Nobody answered" not in opened and "The person signed in" not in opened
    assert "Bo Attended does not allow 'unattended' sessions" in opened
    assert "issued by another organisation (Other IT" in opened
    for who in ("no role", "other organisation"):  # the technician is told, in the pairing
        assert "refused this side's certificate" in results[who][2], results[who]
    assert "never allows unattended access" in results["never"][2]
    assert opened.count("Refused before anything was shown or allowed") == 2, opened
    closed = closed_device.log()
    assert "Session refused: This computer's policy never allows unattended access" in closed


def test_an_offline_or_unknown_device_is_a_clear_sentence(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    relay = relay_process
    acme = make_organisation(tmp_path / "org", "Acme IT")
    cert, key = certify(acme, "Ana Lopez", "ana", "unattended")
    token = relay.add_technician("desk")
    status, _, err = finish(connect(relay.ws_url, token, cert, key, "0" * 32))
    assert status != 0 and "No enrolled device has this id" in err
    status, _, err = finish(connect(relay.ws_url, token, cert, key, "not-a-device"))
    assert status == 2 and "is not a device id" in err


def end_session_from_the_banner(display: str) -> None:
    """Click "End session": the white button at the right end of the purple banner."""
    rgb, width, height = grab(display)
    purple = bytes.fromhex("4a148c")
    spots = [
        (x, y)
        for y in range(height - 80, height, 2)
        for x in range(0, width, 2)
        if rgb[(y * width + x) * 3 : (y * width + x) * 3 + 3] == purple
    ]
    assert spots, "no banner at the bottom of the screen"
    right = max(x for x, _ in spots)
    middle = sorted(y for _, y in spots)[len(spots) // 2]
    xdotool(display, "mousemove", str(right - 50), str(middle))
    time.sleep(0.05)
    xdotool(display, "click", "1")


def _reap(process: subprocess.Popen[str]) -> None:
    if process.returncode is None:
        process.kill()
        process.communicate()
