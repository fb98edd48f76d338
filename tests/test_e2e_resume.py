"""Resume end to end: real agent and technician processes, a proxy that cuts the network.

The agent reaches the real relay through :class:`FaultInjectingProxy`; the technician
connects directly. A 10-second cut must be invisible to the work (no second consent,
the request made during the cut is answered); a cut longer than the grace period
must end the session on both sides with a sentence that says why.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tests.conftest import RelayProcess, start_relay
from tests.customer import Process, ScriptedCustomer
from tests.proxy import FaultInjectingProxy


def technician_console(relay: RelayProcess, token: str) -> Process:
    return Process(
        [sys.executable, "-m", "technician.cli", "--relay", relay.ws_url, "--token", token]
        + ["session", "--ticket", "HD-77"],
        stdin=True,
    )


def test_a_ten_second_cut_resumes_without_asking_again(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    token = relay_process.add_technician("Ana Technician")
    with FaultInjectingProxy("127.0.0.1", relay_process.port) as proxy:
        tech = technician_console(relay_process, token)
        code = tech.expect(r"^code: (\S+)$").group(1)
        customer = ScriptedCustomer(
            proxy.url, code, tmp_path / "logs", answers={"Diagnostics": "y"}
        )
        tech.expect(r"^Customer joined")
        tech.send(f"diagnostics {tmp_path / 'before.json'}")
        tech.expect(r"^ok diagnostics: written to")
        time.sleep(0.5)

        proxy.cut()
        customer.expect(r"^The connection was lost; reconnecting")
        tech.expect(r"^link: the customer's connection dropped")
        # Asked during the cut: it waits in the queue and is served after the resume.
        tech.send(f"diagnostics {tmp_path / 'during.json'}")
        tech.send("chat are you still there?")
        time.sleep(10)
        proxy.restore()

        customer.expect(r"^Connection restored; the session continues", timeout=30)
        tech.expect(r"^link: connection restored")
        tech.expect(r"^ok diagnostics: written to .*during.json", timeout=30)
        customer.expect(r"^Technician says: are you still there\?")
        assert json.loads((tmp_path / "during.json").read_text())["hostname"]
        assert customer.questions == ["Diagnostics"]  # consent was not asked again
        assert proxy.refused >= 1  # the agent really tried during the cut

        tech.send("end")
        assert tech.wait(30) == 0
        assert customer.wait(30) == 0, customer.output + customer.stderr
    [log] = list((tmp_path / "logs").glob("session-*.log"))
    text = log.read_text()
    assert "The connection was lost; reconnecting." in text
    assert "The connection was restored; the session continues." in text
    assert text.count("You allowed: Diagnostics.") == 1


def test_a_cut_past_the_grace_period_ends_both_sides_and_says_why(tmp_path: Path) -> None:
    """The acceptance's 90-second cut against a 60-second grace, scaled to 5 s against 2 s
    (``--resume-grace``; the default of 60 s is checked in test_resume_link.py)."""
    relay = start_relay(tmp_path / "relay", "--resume-grace", "2")
    try:
        token = relay.add_technician("Ana Technician")
        with FaultInjectingProxy("127.0.0.1", relay.port) as proxy:
            tech = technician_console(relay, token)
            code = tech.expect(r"^code: (\S+)$").group(1)
            customer = ScriptedCustomer(proxy.url, code, tmp_path / "logs")
            tech.expect(r"^Customer joined")
            customer.expect(r"^Check code")
            time.sleep(0.5)
            proxy.cut()
            ended = tech.expect(r"^ended: (.*)$", timeout=20).group(1)
            assert "the agent did not reconnect within 2 seconds" in ended
            assert tech.wait(20) == 1
            time.sleep(3)
            proxy.restore()
            assert customer.wait(40) == 1
            assert (
                "Session ended: the connection was lost for more than 2 seconds, so the "
                "session ended. Ask your technician for a new code" in customer.output
            )
            assert "the connection was lost for more than 2 seconds" in customer.stderr
    finally:
        log = relay.stop()
    assert "did not reconnect within 2 seconds" in log
