"""SFTP through the Puente tunnel versus scp over a direct loopback OpenSSH connection.

Both are measured in the same run, on the same file, on this machine:

* direct: Debian's ``sshd`` started here on a spare loopback port (its own host key,
  client key and config in a temporary folder), and ``scp`` to and from it;
* Puente: a real relay process, the real agent (answering its consent questions as a
  customer would) and the technician's console (``puente-tech session``), copying
  with ``put`` and ``get`` (SFTP through the tunnel), and with OpenSSH's ``scp``
  through ``forward``.

It prints MB/s for each and the ratio to the direct scp (goal: at least 0.5). The
``put``/``get`` figures are the copy itself; the SHA-256 verification they do
afterwards is shown apart, since scp does not verify.

Run from the checkout::

    .venv/bin/python bench/ssh_throughput.py            # 100 MB, best of 2 runs
    .venv/bin/python bench/ssh_throughput.py --size-mb 200 --runs 3 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class Child:
    """A subprocess whose stdout lines are collected by a thread (answers via ``answer``)."""

    def __init__(self, argv: list[str], answers: list[tuple[str, str]] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.answers = answers or []
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            for pattern, reply in self.answers:
                if re.search(pattern, line):
                    self.send(reply)
            self.lines.put(line)
        self.lines.put(None)

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def expect(self, pattern: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise SystemExit(f"timed out waiting for {pattern!r}") from None
            if line is None:
                raise SystemExit(f"{self.proc.args[2:4]} ended before {pattern!r}")
            if re.search(pattern, line):
                return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(argv: list[str]) -> float:
    """Seconds ``argv`` took (it must succeed)."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True)
    return time.perf_counter() - started


# Direct: sshd on loopback -----------------------------------------------------------------


class DirectSSH:
    """Debian's sshd on a spare loopback port, with its own keys and config in ``work``."""

    def __init__(self, work: Path) -> None:
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not os.path.exists(sshd):
            raise SystemExit("needs Debian's openssh-server (apt-get install openssh-server)")
        keys = work / "direct"
        keys.mkdir()
        for name in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)],
                check=True,
            )
        (keys / "authorized_keys").write_text((keys / "client_key.pub").read_text())
        port = free_port()
        (keys / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host_key'}\n"
            f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPidFile {keys / 'sshd.pid'}\n"
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\nLogLevel ERROR\n"
        )
        host = (keys / "host_key.pub").read_text().split()
        (keys / "known_hosts").write_text(f"[127.0.0.1]:{port} {host[0]} {host[1]}\n")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation
        self.server = subprocess.Popen(
            [sshd, "-D", "-f", str(keys / "sshd_config")], stderr=subprocess.DEVNULL
        )
        self.options = [
            "-F", "/dev/null", "-i", str(keys / "client_key"),
            "-o", f"UserKnownHostsFile={keys / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
        ]  # fmt: skip
        self.port = str(port)
        self.target = f"{os.environ.get('USER') or 'root'}@127.0.0.1"
        deadline = time.monotonic() + 10
        check = ["ssh", *self.options, "-p", self.port, self.target, "true"]
        while subprocess.run(check, stdin=subprocess.DEVNULL, capture_output=True).returncode:
            if time.monotonic() > deadline:
                raise SystemExit("sshd did not start")
            time.sleep(0.1)

    def scp(self, source: str, target: str) -> float:
        return timed(["scp", *self.options, "-P", self.port, source, target])

    def close(self) -> None:
        self.server.terminate()
        self.server.wait(10)


# Puente: relay, agent, technician console -------------------------------------------------


class PuenteSession:
    """A relay process, the agent (consenting, sharing ``work/shared``) and the console."""

    def __init__(self, work: Path) -> None:
        python = sys.executable
        self.children: list[Child] = []
        relay = self._start(
            [python, "-m", "relay.cli", "serve", "--data-dir", str(work / "relay"),
             "--host", "127.0.0.1", "--port", "0"]
        )  # fmt: skip
        port = re.search(r":(\d+)", relay.expect(r"listening on")).group(1)  # type: ignore[union-attr]
        url = f"ws://127.0.0.1:{port}"
        token = subprocess.run(
            [python, "-m", "relay.cli", "technician", "add", "Bench",
             "--data-dir", str(work / "relay")],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        self.tech = self._start(
            [python, "-m", "technician.cli", "--relay", url, "--token", token, "--json",
             "session", "--ticket", "BENCH-1"]
        )  # fmt: skip
        code = json.loads(self.tech.expect(r'"event": "code"'))["code"]
        self.shared = work / "shared"
        self.shared.mkdir()
        self._start(
            [python, "-m", "agent.cli", "--relay", url, "--console", "--log-dir",
             str(work / "logs"), code],
            answers=[(r"^Allow .*\? Type y", "y"), (r"^Which folder", str(self.shared))],
        )  # fmt: skip
        self.tech.expect(r'"event": "paired"')
        warm = work / "warm.bin"
        warm.write_bytes(os.urandom(1000))
        self.command(f"put {warm} warm.bin")  # consent and the SSH connection, once
        self.ssh_config = self.command("forward 0 files")["data"]["ssh_config"]

    def _start(self, argv: list[str], answers: list[tuple[str, str]] | None = None) -> Child:
        child = Child(argv, answers)
        self.children.append(child)
        return child

    def command(self, line: str) -> dict[str, Any]:
        self.tech.send(line)
        record: dict[str, Any] = json.loads(self.tech.expect(r'^\{"command"', 600))
        if record["status"] != "ok":
            raise SystemExit(f"{line}: {record['message']}")
        return record

    def transfer(self, line: str) -> tuple[float, float]:
        """(seconds copying, seconds including the SHA-256 verification) of put/get."""
        started = time.perf_counter()
        copying = float(self.command(line)["data"]["seconds"])
        return copying, time.perf_counter() - started

    def close(self) -> None:
        with contextlib.suppress(SystemExit):
            self.command("end")
        for child in reversed(self.children):
            child.stop()


def measure(work: Path, data: Path, runs: int) -> dict[str, float]:
    """Best time of each way, the direct and tunnelled runs interleaved (fair under load)."""
    direct = DirectSSH(work)
    tunnel = PuenteSession(work)
    times: dict[str, list[float]] = {}

    def keep(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    try:
        for _ in range(runs):
            remote_direct = str(work / "direct-copy.bin")
            keep("scp_up", direct.scp(str(data), f"{direct.target}:{remote_direct}"))
            put, put_verified = tunnel.transfer(f"put {data} tunnel.bin")
            keep("put", put)
            keep("put_verified", put_verified)
            keep("fwd_up", timed(["scp", "-F", tunnel.ssh_config, str(data), "puente:fwd.bin"]))
            keep("scp_down", direct.scp(f"{direct.target}:{remote_direct}", str(work / "d.bin")))
            get, get_verified = tunnel.transfer(f"get tunnel.bin {work / 't.bin'}")
            keep("get", get)
            keep("get_verified", get_verified)
            keep(
                "fwd_down",
                timed(["scp", "-F", tunnel.ssh_config, "puente:fwd.bin", str(work / "f.bin")]),
            )
            for leftover in (work / "d.bin", work / "t.bin", work / "f.bin"):
                leftover.unlink()
    finally:
        tunnel.close()
        direct.close()
    return {name: min(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=100, help="file size (default 100 MB)")
    parser.add_argument("--runs", type=int, default=2, help="best of N runs (default 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    for tool in ("ssh", "scp", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise SystemExit(f"needs {tool} (apt-get install openssh-client openssh-server)")
    size = args.size_mb * 1000 * 1000
    with tempfile.TemporaryDirectory(prefix="puente-bench-") as tmp:
        work = Path(tmp)
        data = work / "data.bin"
        with open(data, "wb") as file:
            for _ in range(args.size_mb):
                file.write(os.urandom(1000 * 1000))
        best = measure(work, data, args.runs)

    def rate(name: str) -> float:
        return size / best[name] / 1e6

    rows = [
        ("direct scp, upload", rate("scp_up"), None),
        ("direct scp, download", rate("scp_down"), None),
        ("puente put (SFTP in the tunnel)", rate("put"), rate("scp_up")),
        ("puente get (SFTP in the tunnel)", rate("get"), rate("scp_down")),
        ("puente put incl. SHA-256 check", rate("put_verified"), rate("scp_up")),
        ("puente get incl. SHA-256 check", rate("get_verified"), rate("scp_down")),
        ("scp via forward (tunnel), upload", rate("fwd_up"), rate("scp_up")),
        ("scp via forward (tunnel), download", rate("fwd_down"), rate("scp_down")),
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "size_bytes": size,
                    "runs": args.runs,
                    "mb_per_s": {name: round(value, 1) for name, value, _ in rows},
                    "ratio": {n: round(v / p, 2) for n, v, p in rows if p is not None},
                }
            )
        )
        return 0
    print(f"SSH throughput, {args.size_mb} MB file, best of {args.runs} runs, loopback")
    for name, value, peer in rows:
        ratio = f"  ratio {value / peer:.2f}" if peer else ""
        print(f"  {name:<38} {value:8.1f} MB/s{ratio}")
    print("goal: puente put/get at least 0.5 of direct scp")
    return 0


if __name__ == "__main__":
    sys.exit(main())
