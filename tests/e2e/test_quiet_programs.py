"""Issue 13, acceptance 1: the programs print no library's warning to their users.

The README's "Try a session" is walked with the installed console scripts (as a new
user runs them): the relay, a technician's ``puente-tech diagnostics`` and a customer's
``puente-agent --console``. cryptography 51 deprecates DSA and asyncssh touches it on
import; none of that reaches a screen. ``-v`` (``--log-level DEBUG`` for the relay)
shows it, as a log line, for someone reporting a problem.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.customer import Process, ScriptedCustomer
from tests.support.services import spare_port
from tests.support.timeouts import scaled

BIN = Path(sys.executable).parent
#: What a Python warning looks like on a screen ("...: CryptographyDeprecationWarning: ...").
WARNING_TEXT = re.compile(r"\w*Warning\b|\bdeprecated\b")
#: No -W option or PYTHONWARNINGS from the machine running the tests.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}


def no_warning_text(text: str) -> bool:
    return WARNING_TEXT.search(text) is None


@pytest.fixture
def installed_relay(tmp_path: Path):
    port = spare_port()
    data = tmp_path / "relay-data"
    relay = subprocess.Popen(
        [str(BIN / "puente-relay"), "serve", "--data-dir", str(data), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=CLEAN_ENV,
    )
    assert relay.stdout is not None
    assert "listening on" in relay.stdout.readline()
    yield relay, data, f"ws://127.0.0.1:{port}"
    relay.terminate()
    relay.communicate(timeout=scaled(30))


def add_technician(data: Path) -> str:
    """``puente-relay technician add`` as the README says; the token it prints."""
    added = subprocess.run(
        [str(BIN / "puente-relay"), "technician", "add", "Ana Technician", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env=CLEAN_ENV,
        check=True,
    )
    return added.stdout.strip().splitlines()[-1]


def test_help_texts_carry_no_warning() -> None:
    for program in ("puente-agent", "puente-tech", "puente-relay"):
        done = subprocess.run(
            [str(BIN / program), "--help"], capture_output=True, text=True, env=CLEAN_ENV
        )
        assert done.returncode == 0
        assert no_warning_text(done.stdout + done.stderr), (program, done.stderr)


def test_a_whole_try_a_session_prints_no_warning(installed_relay, tmp_path: Path) -> None:
    relay, data, url = installed_relay
    token = add_technician(data)
    env = {**CLEAN_ENV, "PUENTE_RELAY": url, "PUENTE_TOKEN": token}
    out = tmp_path / "hd-1042.json"
    tech = Process(
        [str(BIN / "puente-tech"), "diagnostics", "--ticket", "HD-1042", "--out", str(out)],
        env=env,
    )
    code = tech.expect(r"^code: (\S+)$").group(1)
    customer = ScriptedCustomer(
        url,
        code,
        tmp_path / "logs",
        answers={"Diagnostics": "y"},
        rating=5,
        program=[str(BIN / "puente-agent")],
        env={"PYTHONWARNINGS": ""},
    )
    assert tech.wait(60) == 0, tech.stderr
    assert customer.wait(30) == 0, customer.stderr
    assert json.loads(out.read_text())["hostname"]
    assert "session started" in customer.output
    for name, text in (
        ("customer", customer.output + customer.stderr),
        ("technician", tech.output + tech.stderr),
    ):
        assert no_warning_text(text), f"{name} saw: {text}"
    sessions = subprocess.run(
        [str(BIN / "puente-tech"), "sessions", "--ticket", "HD-1042"],
        capture_output=True,
        text=True,
        env=env,
        timeout=scaled(30),
    )
    assert sessions.returncode == 0 and no_warning_text(sessions.stdout + sessions.stderr)
    relay.terminate()
    _, relay_log = relay.communicate(timeout=scaled(30))
    assert "session paired" in relay_log
    assert no_warning_text(relay_log), relay_log


def test_verbose_shows_library_warnings_as_log_lines(installed_relay, tmp_path: Path) -> None:
    """The lock's cryptography deprecates DSA: with -v the customer's log shows it."""
    relay, data, url = installed_relay
    token = add_technician(data)
    env = {**CLEAN_ENV, "PUENTE_RELAY": url, "PUENTE_TOKEN": token}
    tech = Process(
        [str(BIN / "puente-tech"), "diagnostics", "--ticket", "HD-7", "--out", str(tmp_path / "d")],
        env=env,
    )
    code = tech.expect(r"^code: (\S+)$").group(1)
    customer = ScriptedCustomer(
        url,
        code,
        tmp_path / "logs",
        answers={"Diagnostics": "y"},
        extra=["-v"],
        program=[str(BIN / "puente-agent")],
        env={"PYTHONWARNINGS": ""},
    )
    assert tech.wait(60) == 0 and customer.wait(30) == 0
    assert "py.warnings WARNING" in customer.stderr and "DSA is deprecated" in customer.stderr
    assert no_warning_text(customer.output)  # the log is on stderr; the console stays clean
