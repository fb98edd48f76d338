"""Issue 17 end to end on loopback: a customer asks for help from the agent, the
ticket appears in a real Request Tracker, the matching technician takes the request
from the queue and the session runs with no code typed by anyone; the relay's
traffic, seen by recording proxies, carries no content. Also: a customer who
closes the agent while queued withdraws the request and the ticket says so; an
agent without a pinned key is told to use a code.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from technician.credentials import read_private_key
from tests.support.customer import Process, ScriptedCustomer, technician
from tests.support.helpdesk import RequestTracker, rt_missing, wait_until
from tests.support.proxy import RecordingProxy
from tests.support.relay import RelayProcess, start_relay
from tests.support.trust_fixtures import Organisation, make_organisation, tech_cli

DESCRIPTION = "The printer prints blank pages since Monday"


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Organisation:
    return make_organisation(tmp_path_factory.mktemp("acme"), "Acme IT")


def relay_cli(relay: RelayProcess, *args: str) -> str:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "relay.cli", *args, "--data-dir", str(relay.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def set_up_desk(relay: RelayProcess, org: Organisation, tmp_path: Path) -> dict[str, str]:
    """Categories signed by the organisation, and two technicians with skills."""
    listing = tmp_path / "categories.json"
    done = tech_cli(
        "org",
        "categories",
        "printing=Printers",
        "network",
        "--org-key",
        str(org.key),
        "--out",
        str(listing),
    )
    assert done.returncode == 0, done.stderr
    assert "Kept 2 categories (printing, network)" in relay_cli(
        relay, "categories", "set", str(listing)
    )
    tokens = {}
    for name, skills in (("Nina Network", "network,en"), ("Paco Printers", "printing,es,en")):
        out = relay_cli(relay, "technician", "add", name, "--skills", skills, "--capacity", "2")
        assert f"Help queue: {name}: skills {skills}, capacity 2" in out
        tokens[name] = out.strip().splitlines()[-1]
    return tokens


def tech_process(url: str, token: str, *args: str) -> Process:
    return technician(url, token, *args, stdin=True)


def tech_run(url: str, token: str, *args: str) -> str:
    proc = tech_process(url, token, *args)
    assert proc.wait(30) == 0, proc.output + proc.read_stderr()
    return proc.output


def asker(
    url: str, org: Organisation, log_dir: Path, category: str = "printing"
) -> ScriptedCustomer:
    return ScriptedCustomer(
        url,
        "",
        log_dir,
        answers={"Diagnostics": "y"},
        after={r"^Attach this summary to your request\?": "y"},
        rating=5,
        comment="Quick help",
        code_via="none",
        extra=["--org-key", str(org.public), "--request", DESCRIPTION, "--category", category],
    )


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RequestTracker]:
    if rt_missing() is not None:
        pytest.skip(str(rt_missing()))
    server = RequestTracker(tmp_path_factory.mktemp("rt"))
    try:
        yield server
    finally:
        server.stop()


def relay_for(rt: RequestTracker, tmp_path: Path) -> RelayProcess:
    """A relay delivering to ``rt`` (user from a flag, password from the environment)."""
    return start_relay(
        tmp_path / "relay",
        "--rt-url",
        rt.url,
        "--rt-user",
        rt.user,
        env={"PUENTE_RT_PASSWORD": rt.password},
    )


def rt_search(rt: RequestTracker, words: str) -> list[int]:
    """RT tickets whose subject contains ``words`` (TicketSQL through REST 2.0)."""
    query = urllib.parse.quote(f"Subject LIKE '{words}'")
    status, found = rt.rest("GET", f"/tickets?query={query}")
    return [int(i["id"]) for i in (found.get("items") or [])] if status == 200 else []


def rt_ticket_of(rt: RequestTracker, request_id: str) -> int | None:
    found = rt_search(rt, f"puente request {request_id}")
    return found[0] if found else None


def test_a_request_reaches_rt_the_matching_technician_and_a_session_with_no_code(
    org: Organisation, rt: RequestTracker, tmp_path: Path
) -> None:
    relay = relay_for(rt, tmp_path)
    try:
        tokens = set_up_desk(relay, org, tmp_path)
        for token in tokens.values():
            assert "You are available" in tech_run(relay.ws_url, token, "availability", "available")
        with (
            RecordingProxy("127.0.0.1", relay.port) as agent_side,
            RecordingProxy("127.0.0.1", relay.port) as tech_side,
        ):
            customer = asker(agent_side.url, org, tmp_path / "logs")
            customer.expect(r"^Your request for help was sent")
            customer.expect(r"^You are number 1 in the queue; estimated wait: any moment now\.")
            listing = json.loads(
                tech_run(tech_side.url, tokens["Paco Printers"], "queue", "list", "--json")
            )
            [item] = listing["requests"]
            assert item["offered_to_you"] and item["description"] == DESCRIPTION
            request_id = item["request_id"]
            other = json.loads(
                tech_run(tech_side.url, tokens["Nina Network"], "queue", "list", "--json")
            )
            assert not other["requests"][0]["offered_to_you"]  # routed by skill
            cert, key = org.technician("Paco Printers", "paco")
            tech = tech_process(
                tech_side.url,
                tokens["Paco Printers"],
                "--cert",
                str(cert),
                "--key",
                str(key),
                "queue",
                "accept",
                "--next",
            )
            tech.expect(r"^Accepted " + request_id)
            customer.expect(r"^Paco Printers took your request; connecting now\.")
            tech.expect(r"^Customer joined\. Check code: ")
            # Nina tries to take it too: a clear refusal.
            uncertified = tech_process(
                tech_side.url, tokens["Nina Network"], "queue", "accept", request_id
            )
            assert uncertified.wait(30) == 2
            assert "needs your organisation certificate" in uncertified.read_stderr()
            nina_cert, nina_key = org.technician("Nina Network", "nina")
            late = tech_process(
                tech_side.url,
                tokens["Nina Network"],
                "--cert",
                str(nina_cert),
                "--key",
                str(nina_key),
                "queue",
                "accept",
                request_id,
            )
            assert late.wait(30) == 2
            assert "Another technician took this request" in late.read_stderr()
            tech.send("diagnostics " + str(tmp_path / "diag.json"))
            tech.expect(r"^ok diagnostics:", timeout=60)
            tech.send("end")
            assert tech.wait(60) == 0, tech.output + tech.read_stderr()
            assert customer.wait(30) == 0, customer.output + customer.read_stderr()
            recorded = agent_side.recorded + tech_side.recorded
        assert customer.rating_asked
        # Nobody typed a code: the customer answered one question and the rating.
        assert customer.questions == ["Diagnostics"]
        data = json.loads((tmp_path / "diag.json").read_text())
        for needle in (data["hostname"], data["collected_at"], data["cpu"]["model"]):
            if needle and len(needle) >= 6:
                assert needle.encode() not in recorded, f"{needle!r} crossed the relay"
        assert org.key.read_bytes() not in recorded
        # No certificate private material crossed the relay: the technician's raw key.
        private = read_private_key(key).private_bytes_raw()
        assert private not in recorded and base64.b64encode(private) not in recorded
        # The pairing was code-less: the agent said so, and no code was ever shown.
        assert any("no code needed" in line for line in customer.lines)
        assert not any(re.search(r"\d{3}-\d{3}-\d{3}", line) for line in customer.lines)
        wait_until(lambda: rt_ticket_of(rt, request_id) is not None, 40, "the RT ticket", 0.5)
        ticket = rt_ticket_of(rt, request_id)
        assert ticket is not None
        status, body = rt.rest("GET", f"/ticket/{ticket}")
        assert status == 200 and DESCRIPTION[:40] in body["Subject"]
        [opened] = rt.comments(ticket, kind="Create")
        assert f"Description: {DESCRIPTION}" in opened["text"]
        assert "Category: printing" in opened["text"]
        assert "Diagnostics digest: " in opened["text"]
        assert "none attached" not in opened["text"]  # the customer attached the summary
    finally:
        relay.stop()


def test_closing_the_agent_while_queued_withdraws_and_tells_the_ticket(
    org: Organisation, rt: RequestTracker, tmp_path: Path
) -> None:
    relay = relay_for(rt, tmp_path)
    try:
        set_up_desk(relay, org, tmp_path)  # everyone is away: the request waits
        customer = asker(relay.ws_url, org, tmp_path / "logs")
        customer.expect(r"^Your request for help was sent \(reference ([0-9a-f]{8})\)")
        customer.expect(r"^You are number 1 in the queue")
        customer.proc.send_signal(signal.SIGINT)
        customer.expect(r"^You left the queue; your request was cancelled")
        assert customer.wait(20) == 0
        wait_until(
            lambda: any(
                "withdrawn" in c["subject"]
                for t in rt_search(rt, DESCRIPTION[:30])
                for c in rt.comments(t)
            ),
            60,
            "the withdrawal comment",
            0.5,
        )
    finally:
        relay.stop()


def test_bad_requests_get_a_sentence(org: Organisation, tmp_path: Path) -> None:
    relay = start_relay(tmp_path / "relay")
    try:
        set_up_desk(relay, org, tmp_path)
        unpinned = Process(
            [
                sys.executable,
                "-m",
                "agent.cli",
                "--relay",
                relay.ws_url,
                "--console",
                "--request",
                DESCRIPTION,
            ],
            stdin=True,
        )
        assert unpinned.wait(30) == 1
        assert "ask your help desk for a session code" in unpinned.read_stderr().lower()
        unknown = asker(relay.ws_url, org, tmp_path / "logs", category="plumbing")
        assert unknown.wait(30) == 1
        assert "plumbing is not one of the kinds of problem" in unknown.read_stderr()
        assert "choose one of: printing, network" in unknown.read_stderr()
    finally:
        relay.stop()


def test_a_transfer_with_a_note_hands_the_customer_to_the_next_technician(
    org: Organisation, tmp_path: Path
) -> None:
    relay = start_relay(tmp_path / "relay")
    try:
        tokens = set_up_desk(relay, org, tmp_path)
        for token in tokens.values():
            tech_run(relay.ws_url, token, "availability", "available")
        customer = asker(relay.ws_url, org, tmp_path / "logs")
        customer.expect(r"^You are number 1 in the queue")
        certified = {}
        for name, stem in (("Paco Printers", "paco-transfer"), ("Nina Network", "nina-transfer")):
            cert, key = org.technician(name, stem)
            certified[name] = ["--cert", str(cert), "--key", str(key)]
        first = tech_process(
            relay.ws_url,
            tokens["Paco Printers"],
            *certified["Paco Printers"],
            "queue",
            "accept",
            "--next",
        )
        first.expect(r"^Customer joined\. Check code: ", timeout=60)
        first.send('transfer "Nina Network" --note "The printer is fine; the network is not"')
        first.expect(r"^ok transfer: transferred to Nina Network")
        assert first.wait(60) == 0, first.output + first.read_stderr()
        customer.expect(r"^Your request was passed on to another technician \(note: The printer")
        second = tech_process(
            relay.ws_url,
            tokens["Nina Network"],
            *certified["Nina Network"],
            "queue",
            "accept",
            "--next",
        )
        second.expect(r"^Accepted .* note: The printer is fine; the network is not")
        customer.expect(r"^Nina Network took your request; connecting now\.")
        second.expect(r"^Customer joined\. Check code: ", timeout=60)
        second.send("end")
        assert second.wait(60) == 0, second.output + second.read_stderr()
        # The customer rated the second session: one console answered across both.
        assert "Customer rating: 5/5" in second.output, second.output
        assert customer.wait(30) == 0, customer.output + customer.read_stderr()
    finally:
        relay.stop()


def test_the_waiting_customer_sees_the_position_change_live(
    org: Organisation, tmp_path: Path
) -> None:
    relay = start_relay(tmp_path / "relay")
    try:
        set_up_desk(relay, org, tmp_path)  # everyone away: both requests wait
        first = asker(relay.ws_url, org, tmp_path / "logs-first")
        first.expect(r"^You are number 1 in the queue")
        second = asker(relay.ws_url, org, tmp_path / "logs-second")
        second.expect(r"^You are number 2 in the queue; estimated wait: about \d+ min\.")
        first.proc.send_signal(signal.SIGTERM)  # the first customer closes the agent
        first.expect(r"^You left the queue")
        # The second hears it on the long-poll it is holding, within a second or two.
        second.expect(r"^You are number 1 in the queue", timeout=10)
        second.proc.send_signal(signal.SIGINT)
        assert second.wait(20) == 0 and first.wait(20) == 0
    finally:
        relay.stop()
