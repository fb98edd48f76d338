"""The session code stays off the command line, and what the programs write is private.

Real relay, real agent, real technician: the code given in ``PUENTE_CODE`` or typed
on standard input joins a session without appearing in the agent's
``/proc/PID/cmdline``; the agent's log folder is 0700 and its log 0600; the
technician's ``--out`` file is 0600.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from tests.support.customer import ScriptedCustomer, technician
from tests.support.relay import RelayProcess

CODE_LINE = r"^code: (\d{3,9}-\d{3}-\d{3})$"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/cmdline")
@pytest.mark.parametrize("code_via", ["env", "stdin"])
def test_the_code_joins_without_being_on_the_command_line(
    relay_process: RelayProcess, tmp_path: Path, code_via: str
) -> None:
    out = tmp_path / "diag.json"
    out.write_text("an older, world-readable copy")
    out.chmod(0o644)
    tech = technician(
        relay_process.ws_url,
        relay_process.add_technician(),
        "diagnostics",
        "--ticket",
        "T-7",
        "--out",
        str(out),
    )
    code = tech.expect(CODE_LINE).group(1)
    logs = tmp_path / "state" / "logs"
    customer = ScriptedCustomer(
        relay_process.ws_url,
        code,
        logs,
        answers={"Diagnostics": "y"},
        code_via=code_via,
        env={"XDG_STATE_HOME": str(tmp_path / "state")},
    )
    customer.expect(r"Check code")  # joined and paired
    cmdline = Path(f"/proc/{customer.proc.pid}/cmdline").read_bytes().split(b"\0")
    assert any(b"agent.cli" in part for part in cmdline)  # the agent's own process
    digits = code.replace("-", "").encode()
    assert not any(code.encode() in part or digits in part.replace(b"-", b"") for part in cmdline)
    assert tech.wait(60) == 0, tech.output + tech.stderr
    assert customer.wait(30) == 0, customer.output + customer.stderr
    assert "visible to other users" not in customer.read_stderr()

    # Private files: the agent's log folder and log, the technician's --out file.
    assert mode(logs) == 0o700
    [log] = logs.glob("session-*.log")
    assert mode(log) == 0o600
    assert out.read_text().startswith("{")
    assert mode(out) == 0o600


def test_a_code_on_the_command_line_still_works_with_advice(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    tech = technician(
        relay_process.ws_url, relay_process.add_technician(), "diagnostics", "--ticket", "T-8",
        "--out", str(tmp_path / "diag.json"),
    )  # fmt: skip
    code = tech.expect(CODE_LINE).group(1)
    customer = ScriptedCustomer(
        relay_process.ws_url, code, tmp_path / "logs", answers={"Diagnostics": "y"}
    )
    assert tech.wait(60) == 0, tech.output + tech.stderr
    assert customer.wait(30) == 0
    advice = [line for line in customer.read_stderr().splitlines() if "Advice:" in line]
    assert advice == [
        "Advice: a session code on the command line is visible to other users of this "
        "computer; next time type it when asked or set PUENTE_CODE."
    ]
