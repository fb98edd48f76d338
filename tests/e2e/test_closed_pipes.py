"""Commands piped into a reader that stops early (``| head``) end quietly.

Each command writes to a real pipe whose reading end is already closed, as after
``head`` has read its lines: the command must exit with status 141 (what a shell
reports for SIGPIPE) and print no traceback, with Python's output buffered or not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.process import EXIT_BROKEN_PIPE, quiet_on_closed_stdout
from tests.support.relay import RelayProcess
from tests.support.timeouts import scaled

BIN = Path(sys.executable).parent


def run_into_closed_pipe(argv: list[str], unbuffered: bool, **env: str) -> tuple[int, str]:
    read, write = os.pipe()
    os.close(read)  # the reader has gone
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        environment["PYTHONUNBUFFERED"] = "1"
    try:
        done = subprocess.run(
            argv,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env={**environment, **env},
            timeout=scaled(60),
        )
    finally:
        os.close(write)
    return done.returncode, done.stderr


@pytest.fixture
def relay_and_token(relay_process: RelayProcess) -> Iterator[tuple[RelayProcess, str]]:
    token = relay_process.add_technician()
    yield relay_process, token


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_relay_admin_command(tmp_path: Path, unbuffered: bool) -> None:
    data = tmp_path / "relay-data"
    for name in ("Ana", "Bea"):
        subprocess.run(
            [str(BIN / "puente-relay"), "technician", "add", name, "--data-dir", str(data)],
            check=True,
            capture_output=True,
            timeout=scaled(30),
        )
    status, stderr = run_into_closed_pipe(
        [str(BIN / "puente-relay"), "technician", "list", "--data-dir", str(data)], unbuffered
    )
    assert (status, stderr) == (EXIT_BROKEN_PIPE, "")


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_technician_listing(relay_and_token: tuple[RelayProcess, str], unbuffered: bool) -> None:
    relay, token = relay_and_token
    status, stderr = run_into_closed_pipe(
        [str(BIN / "puente-tech"), "sessions", "--ticket", "HD-1"],
        unbuffered,
        PUENTE_RELAY=relay.ws_url,
        PUENTE_TOKEN=token,
    )
    assert (status, stderr) == (EXIT_BROKEN_PIPE, "")


def test_customer_log_check(tmp_path: Path) -> None:
    log = tmp_path / "session.log"
    log.write_text("")
    status, stderr = run_into_closed_pipe(
        [str(BIN / "puente-agent"), "audit", "verify", str(log)], unbuffered=False
    )
    assert (status, stderr) == (EXIT_BROKEN_PIPE, "")


def test_other_broken_pipes_are_not_hidden() -> None:
    """A BrokenPipeError from elsewhere (a socket, a child's pipe) still surfaces."""

    @quiet_on_closed_stdout
    def main() -> int:
        raise BrokenPipeError(32, "Broken pipe", "a socket")

    with pytest.raises(BrokenPipeError):
        main()
