"""The technician's session console driven by a script through stdin."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.support.customer import Process, ScriptedCustomer
from tests.support.relay import RelayProcess


def test_console_script(relay_process: RelayProcess, tmp_path: Path) -> None:
    token = relay_process.add_technician()
    tech = Process(
        [
            sys.executable,
            "-m",
            "technician.cli",
            "--relay",
            relay_process.ws_url,
            "--token",
            token,
            "session",
            "--ticket",
            "HD-9",
        ],
        stdin=True,
    )
    code = tech.expect(r"^code: (\S+)$").group(1)
    customer = ScriptedCustomer(
        relay_process.ws_url, code, tmp_path / "logs", answers={"Diagnostics": "y"}
    )
    tech.expect(r"Check code")
    tech.send("status")
    assert tech.expect(r"^ok status: allowed: nothing yet")
    tech.send("chat hello from your technician")
    tech.expect(r"^ok chat: sent")
    customer.expect(r"Technician says: hello from your technician")
    tech.send("frobnicate now")
    tech.expect(r"^error frobnicate: unknown command")
    tech.send(f"diagnostics {tmp_path / 'd.json'}")
    tech.expect(r"^ok diagnostics: written to")
    assert "hostname" in json.loads((tmp_path / "d.json").read_text())
    tech.send("diagnostics")
    tech.expect(r"^error diagnostics: missing arguments; usage: diagnostics FILE")
    tech.send("end")
    tech.expect(r"^ok end: session ended")
    assert tech.wait() == 0
    assert customer.wait() == 0
    assert customer.questions == ["Diagnostics"]  # asked once, remembered for the session


def test_console_customer_ends(relay_process: RelayProcess, tmp_path: Path) -> None:
    token = relay_process.add_technician()
    tech = Process(
        [
            sys.executable,
            "-m",
            "technician.cli",
            "--relay",
            relay_process.ws_url,
            "--token",
            token,
            "--json",
            "session",
            "--ticket",
            "HD-9",
        ],
        stdin=True,
    )
    code = json.loads(tech.expect(r'"event": "code"').string)["code"]
    customer = ScriptedCustomer(relay_process.ws_url, code, tmp_path / "logs")
    tech.expect(r'"event": "paired"')
    customer.expect(r"^Check code")
    customer.send("end")
    ended = json.loads(tech.expect(r'"event": "ended"').string)
    assert "customer" in ended["reason"]
    assert tech.wait() == 0
    assert customer.wait() == 0
