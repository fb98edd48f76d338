"""A real ``puente-relay serve`` process on a free loopback port."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.timeouts import scaled


@dataclass
class RelayProcess:
    """A real ``puente-relay serve`` process listening on a free loopback port."""

    proc: subprocess.Popen[str]
    data_dir: Path
    port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def add_technician(self, name: str = "Ana Technician") -> str:
        """Create a technician account and return its API token."""
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "relay.cli",
                "technician",
                "add",
                name,
                "--data-dir",
                str(self.data_dir),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=scaled(30),
        )
        return out.stdout.strip().splitlines()[-1]

    @property
    def log_path(self) -> Path:
        """Where the relay's stderr goes (a file, so a chatty relay never blocks)."""
        return self.data_dir.parent / f"{self.data_dir.name}.stderr.log"

    def stop(self) -> str:
        """Stop the relay (SIGTERM) and return what it logged on stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.communicate(timeout=scaled(15))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_relay(
    data_dir: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], object] | None = None,
) -> RelayProcess:
    """Start ``python -m relay.cli serve`` on port 0 and wait for its listening line.

    ``preexec_fn`` runs in the child before the relay starts (e.g. to lower its
    resource limits).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir.parent / f"{data_dir.name}.stderr.log", "a")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relay.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, **(env or {})},
        preexec_fn=preexec_fn,
    )
    log.close()  # the child holds its own copy
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on \S+://[^:]+:(\d+)", line)
    if not match:
        proc.kill()
        proc.communicate()
        logged = (data_dir.parent / f"{data_dir.name}.stderr.log").read_text(errors="replace")
        raise RuntimeError(f"relay did not start: {line!r} {logged}")
    return RelayProcess(proc=proc, data_dir=data_dir, port=int(match.group(1)))
