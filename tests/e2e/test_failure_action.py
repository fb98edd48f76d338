"""A failure action end to end, on loopback: a real relay with a real Request Tracker, a
policy that allows failure actions, a real agent enrolled with ``--no-service`` (the test
supervises it) and ``--fix`` with a fix the organisation signed, a disk check on a 2 MiB
tmpfs the test fills. The check fails, the alert's ticket opens, the device runs the fix
by itself (it frees the space), both audit logs (the device's and the relay's) record it,
and the ticket gets a comment saying so."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_enrolled_device import tickets_about
from tests.support.device_fixtures import (
    MiB,
    agent_command,
    enrol_argv,
    enrol_in_foreground,
    enrolment_token,
    free_space_fix,
    relay_cli,
    relay_with_rt,
    signed_policy,
)
from tests.support.helpdesk import RequestTracker, wait_until
from tests.support.timeouts import scaled
from tests.support.trust_fixtures import make_organisation


def test_a_signed_failure_action_runs_and_lands_on_the_ticket(
    small_disk: Path, request_tracker: RequestTracker, tmp_path: Path
) -> None:
    rt = request_tracker
    acme = make_organisation(tmp_path / "org", "Acme IT")
    big = small_disk / "big.bin"
    fix = free_space_fix(acme, big, tmp_path / "free-space.puentefix")
    signed = signed_policy(
        acme,
        tmp_path,
        "failure_actions = true\n"
        "[[checks]]\n"
        'id = "small-disk"\nkind = "disk_free"\n'
        f'path = "{small_disk}"\n'
        "min_free_percent = 40\nevery_minutes = 1\nfailures_before_alert = 1\n"
        'severity = "critical"\naction = "free-space"\n',
    )
    relay = relay_with_rt(tmp_path / "relay", rt)
    state = tmp_path / "device-state"
    agent = None
    try:
        token = enrolment_token(
            relay.data_dir, "--uses", "1", "--valid-days", "1", "--policy", str(signed)
        )
        big.write_bytes(b"\0" * (MiB + MiB // 2))  # 25 % free: failing
        argv = enrol_argv(relay.ws_url, acme.public, state, "--no-service", "--yes")
        agent, shown = enrol_in_foreground([*argv, "--fix", str(fix)], token)
        # The owner was told before agreeing that the fix may run by itself.
        assert "runs by itself, without asking, the fix your help desk signed for it" in shown

        wait_until(lambda: not big.exists(), scaled(30), "the fix to free the space")
        wait_until(
            lambda: len(tickets_about(rt, "check small-disk is failing")) == 1,
            scaled(30),
            "the alert's ticket",
        )
        (ticket,) = tickets_about(rt, "check small-disk is failing")

        def noted() -> list[str]:
            return [c["text"] for c in rt.comments(ticket) if "failure action" in c["text"]]

        wait_until(lambda: len(noted()) == 1, scaled(30), "the failure action's comment")
        (comment,) = noted()
        assert (
            "The failure action free-space 1.0.0 for the check small-disk ran by itself" in comment
        )
        assert "exit status 0" in comment
        assert "removed" not in comment  # the fix's output stays on the device

        # The relay's audit log has it too (the sentence, never the output).
        exported = relay_cli("audit", "export", "--data-dir", str(relay.data_dir), "--out", "-")
        assert exported.returncode == 0, exported.stderr
        entries = [
            json.loads(line) for line in exported.stdout.splitlines() if line.startswith("{")
        ]
        (entry,) = [e for e in entries if e["type"] == "device.failure_action"]
        assert entry["data"]["fix"] == "free-space" and entry["data"]["outcome"] == "ran"
        assert entry["data"]["ticket_note"] == "owed" and "removed" not in json.dumps(entry)
        verified_relay = relay_cli("audit", "verify", "--data-dir", str(relay.data_dir))
        assert verified_relay.returncode == 0, verified_relay.stderr

        log = state / "audit.log"
        verified = agent_command("audit", "verify", str(log))
        assert verified.returncode == 0, verified.stdout + verified.stderr
        text = log.read_text(encoding="utf-8")
        assert "free-space 1.0.0 for the check small-disk ran by itself" in text
        assert f"removed {big}" in text
    finally:
        if agent is not None:
            agent.kill()
            agent.communicate()
        relay.stop()
        if state.exists():
            agent_command("unenrol", "--state-dir", str(state))
