"""SFTP through the Puente tunnel versus scp over a direct loopback OpenSSH connection.

Both are measured in the same run, on the same file, on this machine:

* direct: Debian's ``sshd`` started here on a spare loopback port (its own host key,
  client key and config in a temporary folder), and ``scp`` to and from it;
* Puente: a real relay process, the real agent (answering its consent questions as a
  customer would) and the technician's console (``puente-tech session``), copying
  with ``put`` and ``get`` (SFTP through the tunnel), and with OpenSSH's ``scp``
  through ``forward``.

It prints MB/s for each, the ratio to the direct scp (goal: at least 0.5), and the
CPU seconds every process on both ends used per 100 MB (a figure a busy machine
disturbs less than the wall clock). The ``put``/``get`` figures are the copy itself;
the SHA-256 verification they do afterwards is shown apart, since scp does not verify.

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
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

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


def children_cpu() -> float:
    """CPU seconds used so far by this program's finished child processes (scp, ssh)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_cpu(pid: int) -> float:
    """CPU seconds of a live process and its descendants (live ones, and those reaped)."""
    try:
        root = psutil.Process(pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = process.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        return total
    except psutil.NoSuchProcess:
        return 0.0


class Cost:
    """Wall-clock seconds and CPU seconds (every process on both ends) of one copy."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def _cpu(self) -> float:
        return children_cpu() + sum(tree_cpu(pid) for pid in self.pids)

    def __enter__(self) -> Cost:
        self.started = time.perf_counter()
        self.cpu_before = self._cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.started
        self.cpu = self._cpu() - self.cpu_before


def master_connection(argv: list[str], control: Path) -> subprocess.Popen[bytes]:
    """An OpenSSH master connection (``ssh -M -N``) that later scp runs share.

    Both scp peers reuse an open connection, as put/get do, so the figures compare
    copying, not key exchanges.
    """
    master = subprocess.Popen(
        [*argv[:1], "-M", "-N", "-o", f"ControlPath={control}", *argv[1:]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while not control.exists():
        if master.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"could not open an SSH connection: {' '.join(argv)}")
        time.sleep(0.05)
    return master


def run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True)


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

        self.control = keys / "control"
        self.master = master_connection(["ssh", *self.options, "-p", self.port, self.target],
                                        self.control)  # fmt: skip

    def scp(self, source: str, target: str) -> Cost:
        with Cost([self.server.pid, self.master.pid]) as cost:
            run(["scp", *self.options, "-o", f"ControlPath={self.control}", "-P", self.port,
                 source, target])  # fmt: skip
        return cost

    def close(self) -> None:
        for process in (self.master, self.server):
            process.terminate()
            process.wait(10)


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
        self.control = work / "puente-control"
        self.master: subprocess.Popen[bytes] | None = None

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

    def cost(self) -> Cost:
        return Cost([child.proc.pid for child in self.children])

    def transfer(self, line: str) -> tuple[float, Cost]:
        """(seconds copying, cost including the SHA-256 verification) of put/get."""
        with self.cost() as cost:
            copying = float(self.command(line)["data"]["seconds"])
        return copying, cost

    def forward_scp(self, source: str, target: str) -> Cost:
        if self.master is None:
            self.master = master_connection(["ssh", "-F", self.ssh_config, "puente"], self.control)
        with Cost([*(child.proc.pid for child in self.children), self.master.pid]) as cost:
            run(["scp", "-F", self.ssh_config, "-o", f"ControlPath={self.control}", source,
                 target])  # fmt: skip
        return cost

    def close(self) -> None:
        if self.master is not None:
            self.master.terminate()
            self.master.wait(10)
        with contextlib.suppress(SystemExit):
            self.command("end")
        for child in reversed(self.children):
            child.stop()


def measure(work: Path, data: Path, runs: int) -> dict[str, tuple[float, float]]:
    """Best (seconds, CPU seconds) of each way; direct and tunnelled runs interleaved."""
    direct = DirectSSH(work)
    tunnel = PuenteSession(work)
    results: dict[str, list[tuple[float, float]]] = {}

    def keep(name: str, cost: Cost, seconds: float | None = None) -> None:
        results.setdefault(name, []).append((cost.wall if seconds is None else seconds, cost.cpu))

    try:
        for _ in range(runs):
            remote_direct = str(work / "direct-copy.bin")
            keep("scp_up", direct.scp(str(data), f"{direct.target}:{remote_direct}"))
            put, cost = tunnel.transfer(f"put {data} tunnel.bin")
            keep("put", cost, put)
            keep("put_verified", cost)
            keep("fwd_up", tunnel.forward_scp(str(data), "puente:fwd.bin"))
            keep("scp_down", direct.scp(f"{direct.target}:{remote_direct}", str(work / "d.bin")))
            get, cost = tunnel.transfer(f"get tunnel.bin {work / 't.bin'}")
            keep("get", cost, get)
            keep("get_verified", cost)
            keep("fwd_down", tunnel.forward_scp("puente:fwd.bin", str(work / "f.bin")))
            for leftover in (work / "d.bin", work / "t.bin", work / "f.bin"):
                leftover.unlink()
    finally:
        tunnel.close()
        direct.close()
    return {name: (min(v[0] for v in values), min(v[1] for v in values))
            for name, values in results.items()}  # fmt: skip


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
        return size / best[name][0] / 1e6

    def cpu(name: str) -> float:
        return best[name][1] * 1e8 / size  # CPU seconds per 100 MB, every process

    rows = [
        ("direct scp, upload", "scp_up", None),
        ("direct scp, download", "scp_down", None),
        ("puente put (SFTP in the tunnel)", "put", "scp_up"),
        ("puente get (SFTP in the tunnel)", "get", "scp_down"),
        ("puente put incl. SHA-256 check", "put_verified", "scp_up"),
        ("puente get incl. SHA-256 check", "get_verified", "scp_down"),
        ("scp via forward (tunnel), upload", "fwd_up", "scp_up"),
        ("scp via forward (tunnel), download", "fwd_down", "scp_down"),
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "size_bytes": size,
                    "runs": args.runs,
                    "load_average": os.getloadavg()[0],
                    "mb_per_s": {label: round(rate(key), 1) for label, key, _ in rows},
                    "ratio": {
                        label: round(rate(key) / rate(peer), 2)
                        for label, key, peer in rows
                        if peer is not None
                    },
                    "cpu_seconds_per_100mb": {label: round(cpu(key), 2) for label, key, _ in rows},
                }
            )
        )
        return 0
    print(
        f"SSH throughput, {args.size_mb} MB file, best of {args.runs} runs, loopback "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(f"  {'':<38} {'MB/s':>8}  {'ratio':>5}  CPU s per 100 MB (all processes)")
    for label, key, peer in rows:
        ratio = f"{rate(key) / rate(peer):5.2f}" if peer else "     "
        print(f"  {label:<38} {rate(key):8.1f}  {ratio}  {cpu(key):5.2f}")
    print("goal: puente put/get at least 0.5 of direct scp")
    return 0


if __name__ == "__main__":
    sys.exit(main())
