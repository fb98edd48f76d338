"""Enrolled devices at scale on one relay node (issue 18, acceptance 5).

N enrolled devices (10,000 by default) as real WebSocket clients (the ``websockets``
client with the agent's settings, each with its own Ed25519 device key and its own
loopback source address) in a few worker processes, against one ``puente-relay
serve`` process; then the same clients against the peer, a bare ``websockets``
server that speaks the same messages and keeps nothing (no key check, no store, no
alerts), so the relay's cost reads as a ratio to the least any Python WebSocket
server holding these connections must pay. Measured, for each:

memory   resident memory added per connected idle device: (RSS with every device
         connected and settled - RSS before the first) / N. Goal < 40 KiB (relay).
cpu      CPU of the server process over a window of real heartbeats every 30 s
         (the agent's interval; the websockets pings every 20 s both ways run too,
         as they do for real agents), in % of one core. Goal < 10 % (relay).
         ``--compress K`` (5) then runs a second window with heartbeats K times as often
         (time compressed) and reports it next to the real rate, with the cost per
         heartbeat both give.
alerts   (relay only) for ``--spread`` s the devices send check results at the
         policy's rate (each device every ``--results-every`` s: 5 minutes), and
         ``--failures`` of them a failing result of a check whose policy opens an
         alert at the first failure; the relay turns each into a ticket through its
         Request Tracker connector, here a local receiver speaking the REST 2.0 calls
         the relay makes. Latency = ticket created at the receiver - result sent by
         the device (both CLOCK_REALTIME on this machine). Goal p99 < 2 s.

The devices are enrolled before the relay starts, with the relay's own enrolment code
(:class:`relay.enrolment.EnrolmentBook`: one token, one signed policy, N keys). The
relay raises its soft open-file limit to what ``--max-connections`` needs; this script
raises the hard limit first when it may (root), so the relay can hold N devices, and
says what it got.

Examples::

    python bench/devices.py                        # 10,000 devices, about 6 minutes
    python bench/devices.py --devices 2000 --window 30 --compress 10
    python bench/devices.py --quick                # a smoke run: 100 devices, seconds
    python bench/devices.py --json                 # results as JSON on stdout

Exit status 0 when every figure was measured (goals met or not), 1 when a
measurement failed, with a sentence on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import random
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from agent.device_link import LINK_SETTINGS  # noqa: E402
from bench.relay_load import cpu_seconds, progress, source_address, split  # noqa: E402
from protocol import device_wire as wire  # noqa: E402
from protocol.device_policy import policy_from_toml, sign_policy  # noqa: E402
from protocol.identity import OrganisationSecret  # noqa: E402
from relay.enrolment import EnrolmentBook  # noqa: E402
from relay.sqlite_store import DATABASE_NAME  # noqa: E402

REAL_HEARTBEAT = 30.0
GOAL_BYTES_PER_DEVICE = 40 * 1024
GOAL_CPU_PERCENT = 10.0
GOAL_TICKET_P99 = 2.0
CHECK = "bench-disk"
POLICY = f"""
[[checks]]
id = "{CHECK}"
kind = "disk_free"
path = "/"
min_free_percent = 10
every_minutes = 5
failures_before_alert = 1
severity = "critical"
"""


# ---------------------------------------------------------------------------
# Devices, in worker processes
# ---------------------------------------------------------------------------


async def _device(
    url: str, device_id: str, key: Ed25519PrivateKey, address: str, held: dict[str, Any]
) -> None:
    from websockets.asyncio.client import connect

    # The agent's own connect settings (agent/device_link.py), plus a source address.
    websocket = await connect(
        url + wire.DEVICE_PATH, **LINK_SETTINGS, local_addr=(address, 0), open_timeout=60
    )
    await websocket.send(wire.encode("hello", device_id=device_id))
    challenge = json.loads(await websocket.recv())
    if challenge["type"] != "challenge":
        raise ConnectionError(str(challenge))
    nonce = base64.b64decode(challenge["nonce"])
    signature = base64.b64encode(key.sign(wire.proof_message(device_id, nonce))).decode()
    await websocket.send(wire.encode("proof", signature=signature))
    welcome = json.loads(await websocket.recv())
    if welcome["type"] != "welcome":
        raise ConnectionError(str(welcome))
    held[device_id] = websocket


#: Connections a worker saw closed by a timeout or the server (reported per phase).
DROPPED: set[str] = set()


async def _beat(device_id: str, websocket: Any, period: float) -> None:
    from websockets.exceptions import ConnectionClosed

    beat = wire.encode("heartbeat")
    await asyncio.sleep(random.random() * period)
    while True:
        started = time.monotonic()
        try:
            await websocket.send(beat)
        except ConnectionClosed:
            DROPPED.add(device_id)
            return
        await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))


async def _results(
    held: dict[str, Any], spread: float, senders: list[str], failing: set[str]
) -> list[Any]:
    """``senders`` send one result each within ``spread`` s; ``failing`` ones fail."""
    from websockets.exceptions import ConnectionClosed

    sent: list[tuple[str, float]] = []

    async def one(device_id: str, websocket: Any) -> None:
        await asyncio.sleep(random.random() * spread)
        status = "failing" if device_id in failing else "ok"
        summary = {"check": CHECK, "kind": "disk_free", "status": status, "severity": "critical"}
        message = wire.encode("results", at=int(time.time()), results=[summary])
        at = time.time()
        try:
            await websocket.send(message)
        except ConnectionClosed:
            DROPPED.add(device_id)
            return
        if status == "failing":
            sent.append((device_id, at))

    await asyncio.gather(*(one(d, held[d]) for d in senders))
    return sent


async def _worker(spec: dict[str, Any], pipe: Connection) -> None:
    held: dict[str, Any] = {}
    errors: list[str] = []
    semaphore = asyncio.Semaphore(spec["concurrency"])

    async def join(index: int, device_id: str, raw: bytes) -> None:
        key = Ed25519PrivateKey.from_private_bytes(raw)
        async with semaphore:
            try:
                await _device(spec["url"], device_id, key, source_address(index, 2), held)
            except Exception as exc:  # counted and reported, the rest go on
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(join(i, d, k) for i, d, k in spec["devices"]))
    pipe.send(("connected", (len(held), errors[:3], len(errors))))
    beats: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    while True:
        command, value = await loop.run_in_executor(None, pipe.recv)
        if command == "rate":
            for task in beats:
                task.cancel()
            beats = [asyncio.create_task(_beat(d, w, float(value))) for d, w in held.items()]
            pipe.send(("rate", len(DROPPED)))
        elif command == "dropped":
            pipe.send(("dropped", len(DROPPED)))
        elif command == "results":
            alive = sorted(set(held) - DROPPED)
            senders = random.sample(alive, min(len(alive), value["senders"]))
            failing = set(senders[: value["failures"]])
            sent = await _results(held, value["spread"], senders, failing)
            pipe.send(("results", sent))
        elif command == "stop":
            for task in beats:
                task.cancel()
            await asyncio.gather(*(w.close() for w in held.values()), return_exceptions=True)
            pipe.send(("stopped", None))
            return


def _worker_main(spec: dict[str, Any], pipe: Connection) -> None:
    asyncio.run(_worker(spec, pipe))


class Devices:
    """Worker processes holding the devices' connections to ``url``."""

    def __init__(self, url: str, devices: list[tuple[int, str, bytes]], workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for part in split(devices, workers):
            mine, theirs = context.Pipe()
            spec = {"url": url, "devices": part, "concurrency": 64}
            proc = context.Process(target=_worker_main, args=(spec, theirs), daemon=True)
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)

    def ask(self, command: str, value: Any = None, timeout: float = 900) -> list[Any]:
        for pipe in self.pipes:
            pipe.send((command, value))
        return self.expect(command, timeout)

    def expect(self, kind: str, timeout: float = 900) -> list[Any]:
        replies = []
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise RuntimeError(f"a device worker sent no {kind!r} within {timeout:.0f} s")
            got, value = pipe.recv()
            if got != kind:
                raise RuntimeError(f"a device worker answered {got!r} instead of {kind!r}")
            replies.append(value)
        return replies

    def close(self) -> None:
        try:
            self.ask("stop", timeout=60)
        except (RuntimeError, OSError, EOFError):
            pass
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


# ---------------------------------------------------------------------------
# The peer: a bare websockets server speaking the same messages
# ---------------------------------------------------------------------------


def _peer_main(pipe: Connection) -> None:
    async def serve_forever() -> None:
        from websockets.asyncio.server import serve

        async def handler(websocket: Any) -> None:
            try:
                json.loads(await websocket.recv())
                nonce = base64.b64encode(secrets.token_bytes(wire.NONCE_SIZE)).decode()
                await websocket.send(wire.encode("challenge", nonce=nonce))
                json.loads(await websocket.recv())
                await websocket.send(wire.encode("welcome", heartbeat=int(REAL_HEARTBEAT)))
                async for message in websocket:
                    json.loads(message)
            except Exception:
                return

        # No keepalive pings of its own, as the relay for devices (their heartbeats do).
        async with serve(
            handler,
            "127.0.0.1",
            0,
            compression=None,
            max_size=wire.MAX_MESSAGE,
            ping_interval=None,
        ) as server:
            pipe.send(server.sockets[0].getsockname()[1])
            await asyncio.get_running_loop().run_in_executor(None, pipe.recv)

    asyncio.run(serve_forever())


# ---------------------------------------------------------------------------
# A Request Tracker stand-in: the REST 2.0 calls the relay's alerts make
# ---------------------------------------------------------------------------


class TicketReceiver:
    """Answers ticket searches (none found), creations and comments; notes when each
    alert's ticket was created."""

    SUBJECT = re.compile(r"([0-9a-f]{32}): check \S+ is failing")

    def __init__(self) -> None:
        self.created: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer(200, {"items": [], "count": 0, "total": 0})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.endswith("/ticket"):
                    match = receiver.SUBJECT.search(str(body.get("Subject", "")))
                    if match:
                        receiver.created.setdefault(match.group(1), time.time())
                    self._answer(201, {"id": len(receiver.created) + 1})
                else:
                    self._answer(201, {})

            def do_PUT(self) -> None:  # noqa: N802
                self._answer(200, {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"process {pid} is gone")


def enrol_devices(data: Path, count: int) -> list[tuple[int, str, bytes]]:
    """``count`` devices enrolled with one token and one signed policy."""
    secret = OrganisationSecret("Bench Org", Ed25519PrivateKey.generate())
    policy = sign_policy(policy_from_toml(POLICY, "", ""), secret).decode()
    data.mkdir(parents=True, exist_ok=True)
    book = EnrolmentBook(data / DATABASE_NAME)
    try:
        token, _ = book.create_token(time.time(), count, 1, policy)
        devices = []
        for index in range(count):
            key = Ed25519PrivateKey.generate()
            device = book.redeem(token, key.public_key().public_bytes_raw(), time.time())
            devices.append((index, device.device_id, key.private_bytes_raw()))
    finally:
        book.close()
    return devices


def raise_file_limit(needed: int) -> tuple[int, int]:
    """This process's (and so its children's) open-file limit, raised for ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        except (ValueError, OSError):
            progress(f"cannot raise the hard open-file limit {hard} to {needed} (not root)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def measure_cpu(pid: int, seconds: float) -> float:
    before, started = cpu_seconds([pid]), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds([pid]) - before) / (time.monotonic() - started)


def hold_and_measure(
    name: str, pid: int, url: str, devices: list[tuple[int, str, bytes]], args: argparse.Namespace
) -> tuple[dict[str, Any], Devices]:
    """Connect the devices to the server ``pid``; memory and CPU figures."""
    time.sleep(1.0)
    before = rss(pid)
    progress(f"{name}: connecting {len(devices)} devices from {args.workers} processes")
    started = time.monotonic()
    held = Devices(url, devices, args.workers)
    connected = held.expect("connected")
    took = time.monotonic() - started
    count = sum(c[0] for c in connected)
    failed = sum(c[2] for c in connected)
    if failed:
        samples = [e for c in connected for e in c[1]]
        progress(f"{name}: {failed} devices could not connect, e.g. {samples[:2]}")
    held.ask("rate", REAL_HEARTBEAT)
    time.sleep(args.settle)
    after = rss(pid)
    dropped = sum(held.ask("dropped"))
    figures: dict[str, Any] = {
        "devices": count,
        "failed_to_connect": failed,
        "connect_seconds": round(took, 1),
        "rss_before_mib": round(before / 2**20, 1),
        "rss_after_mib": round(after / 2**20, 1),
        "bytes_per_device": round((after - before) / max(count, 1)),
        "dropped_while_connecting": dropped,
    }
    progress(f"{name}: {figures}")
    progress(f"{name}: {count} online; heartbeats every 30 s for {args.window:.0f} s")
    figures["cpu_percent_30s"] = round(measure_cpu(pid, args.window), 2)
    figures["dropped_at_30s"] = sum(held.ask("dropped")) - dropped
    progress(f"{name}: CPU {figures['cpu_percent_30s']} %, dropped {figures['dropped_at_30s']}")
    if args.compress > 1:
        period = REAL_HEARTBEAT / args.compress
        held.ask("rate", period)
        time.sleep(min(period, 5.0))
        progress(f"{name}: heartbeats every {period:g} s for {args.window:.0f} s")
        figures[f"cpu_percent_{period:g}s"] = round(measure_cpu(pid, args.window), 2)
        figures["compressed_period"] = period
        figures["dropped_compressed"] = (
            sum(held.ask("dropped")) - figures["dropped_at_30s"] - dropped
        )
        progress(
            f"{name}: CPU {figures[f'cpu_percent_{period:g}s']} % at {period:g} s, "
            f"dropped {figures['dropped_compressed']}"
        )
        extra = figures[f"cpu_percent_{period:g}s"] - figures["cpu_percent_30s"]
        rate_gain = count / period - count / REAL_HEARTBEAT
        if rate_gain > 0:
            figures["cpu_us_per_heartbeat"] = round(1e4 * extra / rate_gain, 1)
        held.ask("rate", REAL_HEARTBEAT)
    return figures, held


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="puente-devices-"))
    soft, hard = raise_file_limit(2 * args.devices + 2000)
    progress(f"open-file limit {soft}/{hard}; enrolling {args.devices} devices")
    devices = enrol_devices(tmp / "data", args.devices)
    receiver = TicketReceiver()
    results: dict[str, Any] = {"devices": args.devices, "open_file_limit": soft}
    log = open(tmp / "relay.log", "w")  # noqa: SIM115 - closed below
    relay = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relay.cli",
            "serve",
            "--data-dir",
            str(tmp / "data"),
            "--port",
            "0",
            "--max-connections",
            str(args.devices + 100),
            "--max-connections-per-ip",
            str(args.devices + 100),
            "--max-half-open-per-ip",
            str(args.devices + 100),
            "--rt-url",
            receiver.url,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, "PUENTE_RT_TOKEN": "bench"},
    )
    held: Devices | None = None
    try:
        assert relay.stdout is not None
        line = relay.stdout.readline()
        match = re.search(r":(\d+)$", line.strip())
        if not match:
            raise RuntimeError(f"the relay did not start: {line!r}; see {tmp / 'relay.log'}")
        url = f"ws://127.0.0.1:{match.group(1)}"
        results["relay_open_file_limit"] = _limit_of(relay.pid)
        results["relay"], held = hold_and_measure("relay", relay.pid, url, devices, args)
        senders = max(args.failures, round(args.devices * args.spread / args.results_every))
        progress(
            f"relay: {senders} devices send a result within {args.spread:.0f} s (each device "
            f"every {args.results_every:.0f} s), {args.failures} of them failing"
        )
        before = cpu_seconds([relay.pid])
        ask = {
            "spread": args.spread,
            "failures": args.failures // args.workers,
            "senders": senders // args.workers,
        }
        sent = [item for part in held.ask("results", ask) for item in part]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(receiver.created) < len(sent):
            time.sleep(0.2)
        cpu = 100.0 * (cpu_seconds([relay.pid]) - before) / args.spread
        latencies = sorted(receiver.created[d] - at for d, at in sent if d in receiver.created)
        results["alerts"] = {
            "failing_results": len(sent),
            "tickets": len(latencies),
            "p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "p99_s": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 3)
            if latencies
            else None,
            "max_s": round(latencies[-1], 3) if latencies else None,
            "p90_s": round(latencies[int(0.9 * len(latencies))], 3) if latencies else None,
            "over_1s": sum(latency > 1.0 for latency in latencies),
            "cpu_percent_during": round(cpu, 1),
            "results_per_second": round(senders / args.spread, 1),
            "dropped_connections": sum(held.ask("dropped")),
        }
        progress(f"relay: {results['alerts']}")
    finally:
        if held is not None:
            held.close()
        relay.terminate()
        try:
            relay.wait(60)
        except subprocess.TimeoutExpired:
            relay.kill()
        log.close()
        receiver.close()

    if args.no_peer:
        shutil.rmtree(tmp, ignore_errors=True)
        results["peer"], results["ratios"] = {}, {}
        return results
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    peer = context.Process(target=_peer_main, args=(theirs,), daemon=True)
    peer.start()
    held = None
    try:
        port = mine.recv()
        results["peer"], held = hold_and_measure(
            "peer (bare websockets)", int(peer.pid or 0), f"ws://127.0.0.1:{port}", devices, args
        )
    finally:
        if held is not None:
            held.close()
        mine.send("stop")
        peer.join(30)
        if peer.is_alive():
            peer.kill()
    shutil.rmtree(tmp, ignore_errors=True)
    relay_f, peer_f = results["relay"], results["peer"]
    results["ratios"] = {
        key: round(relay_f[key] / peer_f[key], 2)
        for key in relay_f
        if key.startswith(("bytes_per", "cpu_percent")) and peer_f.get(key)
    }
    return results


def _limit_of(pid: int) -> int | None:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    return None


def report(results: dict[str, Any]) -> None:
    relay, peer, alerts = results["relay"], results["peer"], results["alerts"]
    kib = relay["bytes_per_device"] / 1024
    print(
        f"{results['devices']} enrolled devices, one relay node "
        f"(open-file limit {results['relay_open_file_limit']})"
    )
    print(f"{'':32}{'relay':>12}{'peer':>12}{'ratio':>8}  goal")
    rows = [
        ("devices connected", "devices", None, ""),
        ("seconds to connect them", "connect_seconds", None, ""),
        ("RSS before (MiB)", "rss_before_mib", None, ""),
        ("RSS with them (MiB)", "rss_after_mib", None, ""),
        (
            "bytes per idle device",
            "bytes_per_device",
            "bytes_per_device",
            f"< {GOAL_BYTES_PER_DEVICE} B",
        ),
        (
            "CPU %, heartbeats every 30 s",
            "cpu_percent_30s",
            "cpu_percent_30s",
            f"< {GOAL_CPU_PERCENT:g} %",
        ),
    ]
    if "compressed_period" in relay:
        key = f"cpu_percent_{relay['compressed_period']:g}s"
        rows.append((f"CPU %, heartbeats every {relay['compressed_period']:g} s", key, key, ""))
        rows.append(("CPU µs per heartbeat", "cpu_us_per_heartbeat", None, ""))
    for label, key, ratio_key, goal in rows:
        ratio = results["ratios"].get(ratio_key or "", "")
        print(
            f"{label:32}{relay.get(key, '-')!s:>12}{peer.get(key, '-')!s:>12}{ratio!s:>8}  {goal}"
        )
    print(
        f"memory per idle device: {kib:.1f} KiB (goal < 40 KiB: "
        f"{'met' if relay['bytes_per_device'] < GOAL_BYTES_PER_DEVICE else 'MISSED'})"
    )
    print(
        f"presence CPU at 30 s heartbeats: {relay['cpu_percent_30s']:.2f} % of one core "
        f"(goal < 10 %: {'met' if relay['cpu_percent_30s'] < GOAL_CPU_PERCENT else 'MISSED'})"
    )
    p99 = alerts["p99_s"]
    verdict = (
        "met"
        if p99 is not None
        and p99 < GOAL_TICKET_P99
        and alerts["tickets"] == alerts["failing_results"] > 0
        else "MISSED"
    )
    print(
        f"check failing -> ticket: {alerts['tickets']}/{alerts['failing_results']} tickets, "
        f"p50 {alerts['p50_s']} s, p99 {p99} s, max {alerts['max_s']} s, among "
        f"{alerts['results_per_second']} results/s (relay CPU {alerts['cpu_percent_during']} %, "
        f"connections dropped so far {alerts['dropped_connections']}) (goal p99 < 2 s: {verdict})"
    )
    print(
        "connections dropped (keepalive timeouts, closes) while connecting / during the "
        f"heartbeat windows: relay {relay['dropped_while_connecting']} / "
        f"{relay['dropped_at_30s'] + relay.get('dropped_compressed', 0)}, peer "
        f"{peer.get('dropped_while_connecting', '-')} / "
        f"{peer.get('dropped_at_30s', 0) + peer.get('dropped_compressed', 0)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--devices", type=int, default=10_000, help="enrolled devices (10000)")
    parser.add_argument("--workers", type=int, default=4, help="device processes (4)")
    parser.add_argument("--window", type=float, default=60.0, help="seconds per CPU window (60)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds before memory (10)")
    parser.add_argument(
        "--compress",
        type=float,
        default=5.0,
        help="a second window with heartbeats K times as often (5; 1 skips it)",
    )
    parser.add_argument("--spread", type=float, default=60.0, help="seconds of results (60)")
    parser.add_argument(
        "--results-every",
        type=float,
        default=300.0,
        help="seconds between one device's results (300: the bench policy's every 5 minutes)",
    )
    parser.add_argument("--failures", type=int, default=200, help="failing results (200)")
    parser.add_argument("--quick", action="store_true", help="100 devices, short windows")
    parser.add_argument("--no-peer", action="store_true", help="measure the relay only")
    parser.add_argument("--json", action="store_true", help="results as JSON on stdout")
    args = parser.parse_args()
    if args.quick:
        args.devices, args.workers, args.window, args.settle = 100, 2, 2.0, 1.0
        args.spread, args.failures, args.compress, args.results_every = 2.0, 10, 10.0, 2.0
    if args.devices < 1 or args.workers < 1 or args.window <= 0 or args.spread <= 0:
        parser.error("--devices, --workers, --window and --spread must be positive")
    try:
        results = run(args)
    except (RuntimeError, OSError) as exc:
        print(f"devices.py: a measurement failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
