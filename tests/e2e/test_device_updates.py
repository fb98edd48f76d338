"""Updating an enrolled device's policy and fixes without enrolling it again, end to end
on loopback: a real relay process filing in a real Request Tracker, a real agent
enrolled with ``--no-service`` (the test supervises it), and the operator's real
``puente-relay enrolment publish``.

- A newer policy that narrows what the owner agreed to ("ask, allow after a
  countdown" becomes "ask, deny") reaches the connected device within seconds and is
  in force there (its state file) and at the relay.
- A newer policy that widens it (unattended access "allowed" with a shell) is refused
  by the device, which keeps its policy; the help desk sees the device's
  ``policy-update`` alert (``puente-tech devices``) and its ticket in RT, with the
  device's sentence as a comment.
- A signed fix bundle is taken and kept for the failure actions.
- A later narrower policy applies and resolves the ticket.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_enrolled_device import tickets_about
from tests.support.device_fixtures import (
    enrolled_agent,
    enrolment_token,
    free_space_fix,
    relay_cli,
    relay_with_rt,
    signed_policy,
)
from tests.support.helpdesk import RequestTracker, wait_until
from tests.support.timeouts import scaled
from tests.support.trust_fixtures import Organisation, make_organisation, tech_cli

CHECK = """\
[[checks]]
id = "reboot"
kind = "pending_reboot"
severity = "info"
every_minutes = 60
"""

REFUSED = "check policy-update is failing"


def policy(acme: Organisation, directory: Path, number: int, unattended: str) -> Path:
    directory.mkdir()
    return signed_policy(acme, directory, f"number = {number}\n{CHECK}\n[unattended]\n{unattended}")


class Console:
    """The agent's output, read as it comes (it runs until the test stops it)."""

    def __init__(self, process: Any, shown: str) -> None:
        self.process = process
        self.lines = shown.splitlines()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def acme(tmp_path: Path) -> Organisation:
    return make_organisation(tmp_path / "org", "Acme IT")


def publish(relay_dir: Path, token_id: str, *what: str) -> str:
    done = relay_cli("enrolment", "publish", token_id, *what, "--data-dir", str(relay_dir))
    assert done.returncode == 0, done.stderr
    return done.stdout


def running_policy(state: Path) -> int:
    document = json.loads((state / "device.json").read_text())["policy"]
    return int(json.loads(document)["policy"]["number"])


def test_a_narrower_policy_applies_a_wider_one_raises_the_alert(
    request_tracker: RequestTracker, acme: Organisation, tmp_path: Path
) -> None:
    rt = request_tracker
    first = policy(acme, tmp_path / "v1", 1, 'mode = "ask-allow"\ncountdown_seconds = 30\n')
    relay = relay_with_rt(tmp_path / "relay", rt)
    state = tmp_path / "device-state"
    agent = None
    try:
        token = enrolment_token(
            relay.data_dir, "--uses", "1", "--valid-days", "1", "--policy", str(first)
        )
        token_id = token.split("_")[1]
        agent, shown = enrolled_agent(relay.ws_url, acme.public, state, token)
        console = Console(agent, shown)
        device_id = json.loads((state / "device.json").read_text())["device_id"]
        desk = relay.add_technician("Ana desk")

        def listed() -> dict[str, Any]:
            done = tech_cli("--relay", relay.ws_url, "--token", desk, "--json", "devices")
            assert done.returncode == 0, done.stderr
            [device] = json.loads(done.stdout)["devices"]
            return dict(device)

        # Narrower: "ask, deny" where the owner agreed to "ask, allow after 30 s".
        narrower = policy(acme, tmp_path / "v2", 2, 'mode = "ask-deny"\n')
        said = publish(relay.data_dir, token_id, "--policy", str(narrower))
        assert "Published policy 2 for the devices of 1 token(s): 1 enrolled now" in said
        wait_until(lambda: running_policy(state) == 2, scaled(30), "policy 2 in force")
        wait_until(
            lambda: "Now running under policy 2." in console.text(),
            scaled(10),
            "the device saying so",
        )
        assert "updated this computer's policy or fixes: Applied" in console.text()

        # Wider: unattended access without asking, with a shell.
        wider = policy(acme, tmp_path / "v3", 3, 'mode = "allowed"\ncapabilities = ["shell"]\n')
        publish(relay.data_dir, token_id, "--policy", str(wider))
        wait_until(
            lambda: any(a["check"] == "policy-update" for a in listed()["alerts"]),
            scaled(30),
            "the policy-update alert as the technician lists it",
        )
        assert running_policy(state) == 2  # the device keeps what its owner agreed to
        assert "was refused, and the policy you agreed to stays in force" in console.text()
        wait_until(
            lambda: len(tickets_about(rt, f"{device_id}: {REFUSED}")) == 1,
            scaled(30),
            "the policy-update ticket in RT",
        )
        [ticket] = tickets_about(rt, f"{device_id}: {REFUSED}")
        wait_until(lambda: rt.comments(ticket), scaled(30), "the device's sentence on it")
        [note] = rt.comments(ticket)
        assert "The new policy 3 was refused" in note["text"]
        assert "allow shell in unattended sessions" in note["text"]

        # A signed fix bundle is taken and kept for the failure actions.
        fix = free_space_fix(acme, tmp_path / "big.bin", tmp_path / "free-space.puentefix")
        publish(relay.data_dir, token_id, "--fix", str(fix))
        kept = state / "fixes" / "free-space.puentefix"
        wait_until(kept.exists, scaled(30), "the fix kept on the device")
        assert kept.read_bytes() == fix.read_bytes()

        # A later narrower policy applies, and resolves the alert and its ticket.
        later = policy(acme, tmp_path / "v4", 4, 'mode = "never"\n')
        publish(relay.data_dir, token_id, "--policy", str(later))
        wait_until(lambda: running_policy(state) == 4, scaled(30), "policy 4 in force")
        wait_until(lambda: not listed()["alerts"], scaled(30), "the policy-update alert resolved")
        wait_until(
            lambda: rt.rest("GET", f"/ticket/{ticket}")[1]["Status"] == "resolved",
            scaled(30),
            "the ticket resolved",
        )
        # The relay knows the policy the device runs now (its alert thresholds follow).
        request = urllib.request.Request(f"{relay.http_url}/api/devices/{device_id}")
        request.add_header("Authorization", f"Bearer {desk}")
        with urllib.request.urlopen(request, timeout=scaled(10)) as response:
            document = json.loads(response.read())["policy"]
        assert json.loads(document)["policy"]["number"] == 4
        audit = relay_cli("audit", "export", "--data-dir", str(relay.data_dir), "--out", "-")
        assert audit.returncode == 0, audit.stderr
        outcomes = [
            json.loads(line)["data"]["outcome"]
            for line in audit.stdout.splitlines()
            if '"device.update"' in line
        ]
        assert outcomes.count("published") == 4
        assert outcomes.count("refused") == 1 and outcomes.count("applied") == 3
    finally:
        if agent is not None:
            agent.terminate()
            agent.communicate(timeout=scaled(20))
        relay.stop()


def test_publishing_refuses_bad_input_with_a_sentence(acme: Organisation, tmp_path: Path) -> None:
    data = tmp_path / "relay"
    token = enrolment_token(data, "--uses", "1", "--valid-days", "1")
    token_id = token.split("_")[1]
    source = tmp_path / "policy.toml"
    source.write_text(CHECK)
    cases: list[tuple[list[str], str]] = [
        ([token_id], "Say what to publish"),
        ([token_id, "--all", "--policy", str(source)], "or --all; not both"),
        (["nope", "--policy", str(signed_policy(acme, tmp_path, CHECK))], "No enrolment token 'nope'"),
        ([token_id, "--policy", str(source)], "sign it first with 'puente-tech policy sign'"),
        ([token_id, "--fix", str(source)], "is not a fix bundle"),
        ([token_id, "--policy", str(tmp_path / "missing")], "Cannot read"),
    ]  # fmt: skip
    for argv, sentence in cases:
        done = relay_cli("enrolment", "publish", *argv, "--data-dir", str(data))
        assert done.returncode != 0 and sentence in done.stderr, (argv, done.stderr)
    listing = relay_cli("enrolment", "list", "--json", "--data-dir", str(data))
    assert json.loads(listing.stdout)["uses"] == 0
