"""Check details travel end to end encrypted to the organisation (issue 18, part B).

A real relay process, a real agent enrolled with ``--no-service`` behind the
recording proxy, a policy naming the organisation's details key and a log check
that finds a secret line. The technician opens the details with
``puente-tech devices show DEVICE --details-key``; the relay's database files and
every byte the proxy recorded hold which check failed, never what it found.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.device_fixtures import enrolled_agent, enrolment_token, relay_with_rt
from tests.support.helpdesk import RequestTracker, wait_until
from tests.support.proxy import RecordingProxy
from tests.support.relay import start_relay
from tests.support.timeouts import scaled
from tests.support.trust_fixtures import make_organisation, tech_cli

SECRET = "I/O error on sda: customer-ledger-7731.db"


def test_details_reach_the_help_desk_sealed_and_the_relay_never_reads_them(
    tmp_path: Path,
) -> None:
    acme = make_organisation(tmp_path / "org", "Acme IT")
    details_key = tmp_path / "org" / "details.key"
    made = tech_cli("--json", "policy", "details-key", "--out", str(details_key))
    assert made.returncode == 0, made.stderr
    public = json.loads(made.stdout)["details_key"]
    assert (details_key.stat().st_mode & 0o777) == 0o600
    log = tmp_path / "syslog"
    log.write_text(f"boot ok\n{SECRET}\n", encoding="utf-8")
    source = tmp_path / "policy.toml"
    source.write_text(
        f'details_key = "{public}"\n'
        "[[checks]]\n"
        'id = "io-errors"\n'
        'kind = "log_pattern"\n'
        f'path = "{log}"\n'
        'pattern = "I/O error"\n'
        "failures_before_alert = 1\n",
        encoding="utf-8",
    )
    signed = tmp_path / "acme.policy"
    done = tech_cli("policy", "sign", str(source), "--org-key", str(acme.key), "--out", str(signed))
    assert done.returncode == 0, done.stderr
    shown = tech_cli("policy", "show", str(signed), "--org-key", str(acme.public))
    assert "details go sealed to the organisation's details key" in shown.stdout

    relay = start_relay(tmp_path / "relay")
    agent = None
    try:
        token = enrolment_token(
            relay.data_dir, "--uses", "1", "--valid-days", "1", "--policy", str(signed)
        )
        with RecordingProxy("127.0.0.1", relay.port) as proxy:
            agent, words = enrolled_agent(proxy.url, acme.public, tmp_path / "state", token)
            assert "encrypted so that only it can" in words
            ana = relay.add_technician("Ana Technician")
            base = ("--relay", relay.ws_url, "--token", ana)

            def listed() -> list[dict[str, object]]:
                done = tech_cli(*base, "--json", "devices")
                assert done.returncode == 0, done.stderr
                return list(json.loads(done.stdout)["devices"])

            wait_until(
                lambda: [d["open_alerts"] for d in listed()] == [["io-errors"]],
                scaled(30),
                "the device's alert",
            )
            (device,) = listed()
            device_id = str(device["device_id"])

            # Without the key the technician learns only that details are sealed.
            sealed = tech_cli(*base, "devices", "show", device_id)
            assert sealed.returncode == 0, sealed.stderr
            assert "io-errors (failing): sealed; pass --details-key" in sealed.stdout
            assert SECRET not in sealed.stdout

            opened = tech_cli(
                *base, "--json", "devices", "show", device_id, "--details-key", str(details_key)
            )
            assert opened.returncode == 0, opened.stderr
            (check,) = json.loads(opened.stdout)["details"]
            assert check["check"] == "io-errors" and check["status"] == "failing"
            assert SECRET in check["details"]["lines"]
            readable = tech_cli(
                *base, "devices", "show", device_id, "--details-key", str(details_key)
            )
            assert SECRET in readable.stdout

            # Another organisation's details key opens nothing, and says so.
            other = tmp_path / "other.key"
            assert tech_cli("policy", "details-key", "--out", str(other)).returncode == 0
            wrong = tech_cli(*base, "devices", "show", device_id, "--details-key", str(other))
            assert "do not open with this details key" in wrong.stdout
            assert SECRET not in wrong.stdout

            recorded = proxy.recorded
        agent.terminate()
        agent.communicate(timeout=scaled(10))
        agent = None
        assert b"io-errors" in recorded  # the relay sees which check failed...
        assert b"customer-ledger" not in recorded and b"I/O error on" not in recorded
        relay.stop()  # everything written down
        stored = b"".join(p.read_bytes() for p in relay.data_dir.rglob("*") if p.is_file())
        assert b"io-errors" in stored  # ...and keeps it, with the sealed details,
        assert b"customer-ledger" not in stored and b"I/O error on" not in stored  # unread
    finally:
        if agent is not None:
            agent.kill()
            agent.communicate()
        relay.stop()


def test_the_technicians_side_posts_opened_details_on_the_ticket_when_the_policy_allows(
    tmp_path: Path, request_tracker: RequestTracker
) -> None:
    rt = request_tracker
    acme = make_organisation(tmp_path / "org", "Acme IT")
    details_key = tmp_path / "org" / "details.key"
    made = tech_cli("--json", "policy", "details-key", "--out", str(details_key))
    public = json.loads(made.stdout)["details_key"]
    log = tmp_path / "syslog"
    log.write_text(f"{SECRET}\n", encoding="utf-8")
    policies = {}
    for share in (True, False):
        source = tmp_path / f"policy-{share}.toml"
        source.write_text(
            f'details_key = "{public}"\ndetails_to_help_desk = {str(share).lower()}\n'
            f'[[checks]]\nid = "io-errors"\nkind = "log_pattern"\npath = "{log}"\n'
            'pattern = "I/O error"\nfailures_before_alert = 1\n',
            encoding="utf-8",
        )
        policies[share] = tmp_path / f"acme-{share}.policy"
        signed = tech_cli(
            "policy", "sign", str(source), "--org-key", str(acme.key), "--out", str(policies[share])
        )
        assert signed.returncode == 0, signed.stderr
    relay = relay_with_rt(tmp_path / "relay", rt)
    agents: list[subprocess.Popen[str]] = []
    try:
        ana = relay.add_technician("Ana Technician")
        base = ("--relay", relay.ws_url, "--token", ana)
        for share in (True, False):
            token = enrolment_token(
                relay.data_dir, "--uses", "1", "--valid-days", "1", "--policy", str(policies[share])
            )
            state = tmp_path / f"state-{share}"
            agents.append(enrolled_agent(relay.ws_url, acme.public, state, token)[0])

        def devices_with_tickets() -> list[dict[str, object]]:
            done = tech_cli(*base, "--json", "devices")
            found = []
            for device in json.loads(done.stdout)["devices"]:
                shown = tech_cli(*base, "--json", "devices", "show", str(device["device_id"]))
                found.append(json.loads(shown.stdout))
            return found

        wait_until(
            lambda: [bool(d["tickets"]) for d in devices_with_tickets()] == [True, True],
            scaled(60),
            "a ticket for each device's failing check",
        )
        shared, private = devices_with_tickets()  # enrolment order: the sharing policy first
        rt_env = {"PUENTE_RT_USER": rt.user, "PUENTE_RT_PASSWORD": rt.password}
        post = ("--details-key", str(details_key), "--post-to-ticket", rt.url, "--org-key")
        done = tech_cli(
            *base, "devices", "show", str(shared["device_id"]), *post, str(acme.public), env=rt_env
        )
        assert done.returncode == 0, done.stderr
        ticket = int(shared["tickets"]["io-errors"])  # type: ignore[index]
        assert f"Details of io-errors posted on ticket {ticket}" in done.stdout
        assert any(SECRET in comment["text"] for comment in rt.comments(ticket))

        refused = tech_cli(
            *base, "devices", "show", str(private["device_id"]), *post, str(acme.public), env=rt_env
        )
        assert refused.returncode != 0
        assert "does not let the help desk copy check details onto tickets" in refused.stderr
        other_ticket = int(private["tickets"]["io-errors"])  # type: ignore[index]
        assert not any(SECRET in c["text"] for c in rt.comments(other_ticket))
        # The relay's own ticket says which check fails, never what it found.
        assert all(SECRET not in c["text"] for c in rt.comments(other_ticket))
    finally:
        for agent in agents:
            agent.kill()
            agent.communicate()
        relay.stop()
    stored = b"".join(p.read_bytes() for p in relay.data_dir.rglob("*") if p.is_file())
    assert b"customer-ledger" not in stored
