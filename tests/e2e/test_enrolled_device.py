"""An enrolled device end to end, on loopback: a real relay process with a real
Request Tracker, an enrolment token carrying a signed policy, a real agent enrolled
with ``--no-service`` (the test supervises the process itself; the service install
is tests/e2e/test_enrolled_service.py), a disk check on a 2 MiB tmpfs the test fills, the device online at
the relay, one RT ticket for the failing check, and nothing left after unenrol."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any

from tests.support.device_fixtures import (
    MiB,
    agent_command,
    enrol_argv,
    enrolled_agent,
    enrolment_token,
    relay_cli,
    relay_with_rt,
    signed_policy,
)
from tests.support.helpdesk import RequestTracker, wait_until
from tests.support.relay import start_relay
from tests.support.timeouts import scaled
from tests.support.trust_fixtures import make_organisation, tech_cli


def devices(data_dir: Path) -> list[dict[str, Any]]:
    done = relay_cli("devices", "--data-dir", str(data_dir), "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def tickets_about(rt: RequestTracker, words: str) -> list[int]:
    query = urllib.parse.quote(f"Subject LIKE '{words}'")
    status, body = rt.rest("GET", f"/tickets?query={query}")
    assert status == 200, body
    return [int(item["id"]) for item in body["items"]]


def test_enrol_see_online_alert_to_ticket_unenrol(
    small_disk: Path, request_tracker: RequestTracker, tmp_path: Path
) -> None:
    rt = request_tracker
    acme = make_organisation(tmp_path / "org", "Acme IT")
    signed = signed_policy(
        acme,
        tmp_path,
        "[[checks]]\n"
        'id = "small-disk"\n'
        'kind = "disk_free"\n'
        f'path = "{small_disk}"\n'
        "min_free_percent = 40\n"
        'severity = "critical"\n'
        "every_minutes = 1\n"
        "failures_before_alert = 1\n",
    )
    relay = relay_with_rt(tmp_path / "relay", rt)
    state = tmp_path / "device-state"
    agent = None
    try:
        token = enrolment_token(
            relay.data_dir, "--uses", "1", "--valid-days", "1", "--policy", str(signed)
        )

        (small_disk / "big.bin").write_bytes(b"\0" * (MiB + MiB // 2))  # 25 % free
        agent, text = enrolled_agent(relay.ws_url, acme.public, state, token)
        # The owner read the policy before anything was installed.
        assert "Your help desk, Acme IT, asks to look after this computer" in text
        assert "no answer within 60 seconds means no" in text
        assert "only which check failed" in text
        assert text.index("asks to look after") < text.index("Enrolled as device")

        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        for name in ("device.key", "device.json"):
            assert stat.S_IMODE((state / name).stat().st_mode) == 0o600

        def device_alerting() -> bool:
            rows = devices(relay.data_dir)
            return len(rows) == 1 and rows[0]["online"] and rows[0]["open_alerts"] == ["small-disk"]

        wait_until(device_alerting, scaled(30), "the device online with its disk alert")
        wait_until(
            lambda: len(tickets_about(rt, "check small-disk is failing")) == 1,
            scaled(30),
            "the RT ticket for the failing disk",
        )
        # The technician sees the same through the REST API.
        token_for_ana = relay.add_technician("Ana Technician")
        listed = tech_cli("--relay", relay.ws_url, "--token", token_for_ana, "--json", "devices")
        assert listed.returncode == 0, listed.stderr
        (seen,) = json.loads(listed.stdout)["devices"]
        assert seen["online"] and seen["open_alerts"] == ["small-disk"]
        readable = tech_cli("--relay", relay.ws_url, "--token", token_for_ana, "devices")
        assert "online  open alerts: small-disk" in readable.stdout
        refused = tech_cli("--relay", relay.ws_url, "--token", "pt_0_wrong", "devices")
        assert refused.returncode != 0 and "did not accept your API token" in refused.stderr

        # A relay restart in the middle: the device redials, proves itself, sends its
        # latest results again; they are counted once and nothing is duplicated.
        (ticket,) = tickets_about(rt, "check small-disk is failing")
        relay.stop()
        relay = relay_with_rt(tmp_path / "relay", rt, "--port", str(relay.port))
        wait_until(device_alerting, scaled(30), "the device back online with its alert")
        time.sleep(scaled(2))  # time for a duplicate to show, if the relay made one
        assert tickets_about(rt, "check small-disk is failing") == [ticket]
        assert rt.comments(ticket) == []

        agent.terminate()
        agent.communicate(timeout=scaled(10))
        agent = None
        wait_until(
            lambda: not devices(relay.data_dir)[0]["online"], scaled(20), "the device offline"
        )

        # The owner can run the enrolled policy's checks by hand (no --policy needed).
        by_hand = agent_command("checks", "run", "--once", "--json", PUENTE_STATE_DIR=str(state))
        assert by_hand.returncode == 3, by_hand.stderr
        report = json.loads(by_hand.stdout)
        assert report["organisation"] == "Acme IT"
        assert [r["check"] for r in report["results"]] == ["small-disk"]

        # Unenrolling removes what enrol kept here, and the relay forgets the device.
        gone = agent_command("unenrol", "--state-dir", str(state))
        assert gone.returncode == 0, gone.stderr
        assert "the relay forgot device" in gone.stdout
        assert not state.exists()
        assert devices(relay.data_dir) == []
    finally:
        if agent is not None:
            agent.kill()
            agent.communicate()
        relay.stop()


def test_enrolment_refusals_leave_nothing(tmp_path: Path) -> None:
    acme = make_organisation(tmp_path / "org", "Acme IT")
    relay = start_relay(tmp_path / "relay")
    state = tmp_path / "device-state"
    try:

        def enrol(token: str, *extra: str, answer: str = "") -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                enrol_argv(relay.ws_url, acme.public, state, *extra),
                input=answer,
                capture_output=True,
                text=True,
                timeout=scaled(30),
                env={**os.environ, "PUENTE_ENROL_TOKEN": token, "PUENTE_LANG": "en"},
            )

        token = enrolment_token(relay.data_dir, "--uses", "1", "--valid-days", "1")
        units = set(Path("/etc/systemd/system").glob("puente-device-*"))
        service = enrol(token)  # no answer to the question: nothing installed
        assert service.returncode == 1 and "this computer is not enrolled" in service.stderr
        assert set(Path("/etc/systemd/system").glob("puente-device-*")) == units
        declined = enrol(token, "--no-service", answer="no\n")
        assert declined.returncode == 1 and "this computer is not enrolled" in declined.stderr
        assert "no answer within 60 seconds means no" in declined.stdout
        wrong = enrol("pe_0000_nope", "--no-service", "--yes")
        assert wrong.returncode == 1 and "not known to the relay" in wrong.stderr
        assert not state.exists()
        assert devices(relay.data_dir) == []
        # The token was never spent.
        listing = relay_cli("enrolment", "list", "--data-dir", str(relay.data_dir), "--json")
        assert json.loads(listing.stdout.splitlines()[0])["uses"] == 0
    finally:
        relay.stop()
