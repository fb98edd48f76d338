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
         ``--failures`` of them (100) a failing result of a check whose policy opens an
         alert at the first failure; the relay turns each into a ticket through its
         Request Tracker connector, ``--delivery-workers`` alerts at once. Bursts, other
         devices failing in each: first into a stand-in (a local receiver answering the
         REST 2.0 calls the relay makes at once), then into the real Request Tracker 5
         (Debian's rt-server on its SQLite database, as tests/support/helpdesk.py starts
         it: Starlet with its default 10 worker processes), one burst per
         ``--rt-failures`` count (default: --failures). The relay's --rt-url is a
         recording pass-through in this script, which times every REST call: latency =
         RT's 201 to the ticket's creation - result sent by the device (both
         CLOCK_REALTIME on this machine); "in RT" = the alert's own calls (its creation;
         a search too if a first attempt failed); "before RT" = the rest: the relay's
         own time, and the wait for a free delivery worker when all were busy (counted
         apart). Goal p99 < 2 s.

The devices are enrolled before the relay starts, with the relay's own enrolment code
(:class:`relay.enrolment.EnrolmentBook`: one token, one signed policy, N keys). The
relay raises its soft open-file limit to what ``--max-connections`` and
``--max-handshakes`` need (N + N/10 + 64); this script raises the hard limit first when
it may (root), and says what it got.

Examples::

    python bench/devices.py                        # 10,000 devices, about 6 minutes
    python bench/devices.py --devices 2000 --window 30 --compress 10
    python bench/devices.py --quick                # a smoke run: 100 devices, seconds
    python bench/devices.py --rt stand-in          # tickets into the stand-in only
    python bench/devices.py --no-peer --rt real --rt-failures 20,60,100  # three rates
    python bench/devices.py --devices 1000 --no-peer --rt real --delivery-workers 1
    python bench/devices.py --json                 # results as JSON on stdout

Exit status 0 when every figure was measured (goals met or not), 1 when a
measurement failed, with a sentence on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import multiprocessing
import os
import random
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
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
from relay.alert_delivery import DEFAULT_WORKERS as ALERT_WORKERS  # noqa: E402
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


#: Tries per device before it counts as failed to connect (jittered waits between).
CONNECT_ATTEMPTS = 5
#: Connections a worker saw closed by a timeout or the server (reported per phase).
DROPPED: set[str] = set()
#: Devices a worker made fail already (each opens one alert).
FAILED: set[str] = set()


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

    retries = 0

    async def join(index: int, device_id: str, raw: bytes) -> None:
        # As the agent does (agent/device_link.py): a refused or failed connection is
        # tried again after a jittered wait; the relay answers 503 past its handshake
        # budget (--max-handshakes) when many devices dial at once on a loaded machine.
        nonlocal retries
        key = Ed25519PrivateKey.from_private_bytes(raw)
        for attempt in range(CONNECT_ATTEMPTS):
            async with semaphore:
                try:
                    await _device(spec["url"], device_id, key, source_address(index, 2), held)
                    return
                except Exception as exc:  # counted and reported, the rest go on
                    if attempt == CONNECT_ATTEMPTS - 1:
                        errors.append(f"{type(exc).__name__}: {exc}")
                        return
            retries += 1
            ceiling = min(2.0**attempt, 8.0)
            await asyncio.sleep(ceiling / 2 + random.random() * ceiling / 2)

    await asyncio.gather(*(join(i, d, k) for i, d, k in spec["devices"]))
    pipe.send(("connected", (len(held), errors[:3], len(errors), retries)))
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
            # A device that failed in an earlier burst has its alert open (its ticket
            # maybe in the other help desk): it sits this burst out, neither opening a
            # second ticket nor resolving the first.
            alive = sorted(set(held) - DROPPED - FAILED)
            senders = random.sample(alive, min(len(alive), value["senders"]))
            failing = set(senders[: value["failures"]])
            FAILED.update(failing)
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
# Request Tracker: a stand-in, and a pass-through that times the real one
# ---------------------------------------------------------------------------


class LoopbackServer:
    """An HTTP server on a free loopback port, serving in a thread until closed."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TicketStandIn(LoopbackServer):
    """Answers ticket searches (none found), creations and comments at once."""

    def __init__(self) -> None:
        tickets = itertools.count(1)

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
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer(201, {"id": next(tickets)} if self.path.endswith("/ticket") else {})

            def do_PUT(self) -> None:  # noqa: N802
                self._answer(200, {})

        super().__init__(Handler)


@dataclass(frozen=True)
class RestCall:
    """One REST call the relay made, as the pass-through timed it (wall-clock seconds)."""

    method: str
    tag: str | None  # the alert's "[puente ID]" tag, in a search or a new ticket's subject
    device: str | None  # the device a new ticket is about
    started: float
    ended: float
    status: int


class RecordingPassThrough(LoopbackServer):
    """The relay's --rt-url: passes each REST call on to :attr:`backend` (switched
    between bursts) and notes when it started and when the answer came back."""

    TAG = re.compile(r"\[puente ([^\]\s]+)\]")
    NEW_TICKET = re.compile(r"\] ([0-9a-f]{32}): check \S+ is failing")

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.calls: list[RestCall] = []
        passing = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                passing.forward(self)

            do_POST = do_PUT = do_GET  # noqa: N815

        super().__init__(Handler)

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        headers = {
            name: value
            for name, value in handler.headers.items()
            if name.lower() in ("authorization", "content-type")
        }
        request = urllib.request.Request(
            self.backend + handler.path, data=body, method=handler.command, headers=headers
        )
        started = time.time()
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                status, data = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
        except OSError as exc:
            status, data = 502, json.dumps({"message": str(exc)}).encode()
        ended = time.time()
        text = urllib.parse.unquote(handler.path) + (body or b"").decode("utf-8", "replace")
        tag, device = self.TAG.search(text), self.NEW_TICKET.search(text)
        self.calls.append(
            RestCall(
                handler.command,
                tag.group(1) if tag else None,
                device.group(1) if device and handler.command == "POST" else None,
                started,
                ended,
                status,
            )
        )
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def created(self, since: float) -> dict[str, RestCall]:
        """The ticket creations answered 201 since ``since``, by device."""
        return {
            call.device: call
            for call in self.calls[:]
            if call.started >= since and call.device and call.status == 201
        }


def percentile(values: list[float], fraction: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3)


def burst_figures(
    sent: list[tuple[str, float]], passing: RecordingPassThrough, since: float, workers: int
) -> dict[str, Any]:
    """Check failing -> ticket latencies of one burst, and where the time went."""
    calls = [call for call in passing.calls[:] if call.started >= since]
    created = passing.created(since)
    in_rt: dict[str, float] = {}
    first_call: dict[str, float] = {}
    for call in calls:
        if call.tag:
            in_rt[call.tag] = in_rt.get(call.tag, 0.0) + call.ended - call.started
            first_call[call.tag] = min(first_call.get(call.tag, call.started), call.started)
    latencies: list[float] = []
    own_rt: list[float] = []
    before_rt: list[float] = []
    found_all_busy = 0
    for device, at in sent:
        if (ticket := created.get(device)) is not None and ticket.tag:
            latencies.append(ticket.ended - at)
            own_rt.append(in_rt[ticket.tag])
            before_rt.append(first_call[ticket.tag] - at)
            # Every delivery worker in an RT call when the result came: it had to wait.
            found_all_busy += in_flight(calls, at) >= workers
    searches = [c.ended - c.started for c in calls if c.method == "GET"]
    creations = [c.ended - c.started for c in calls if c.device]
    made = [c.device for c in calls if c.device and c.status == 201]
    span = max((c.ended for c in calls), default=0.0) - min((c.started for c in calls), default=0)
    return {
        "failing_results": len(sent),
        "tickets": len(latencies),
        "p50_s": percentile(latencies, 0.5),
        "p90_s": percentile(latencies, 0.9),
        "p99_s": percentile(latencies, 0.99),
        "max_s": percentile(latencies, 1.0),
        "over_1s": sum(latency > 1.0 for latency in latencies),
        "over_2s": sum(latency > 2.0 for latency in latencies),
        "in_rt_p50_s": percentile(own_rt, 0.5),
        "in_rt_p99_s": percentile(own_rt, 0.99),
        "before_rt_p50_s": percentile(before_rt, 0.5),
        "before_rt_p99_s": percentile(before_rt, 0.99),
        "found_all_workers_busy": found_all_busy,
        "most_calls_in_flight": max((in_flight(calls, c.started) for c in calls), default=0),
        "searches": len(searches),
        # Tickets RT made beyond one per alert (a retry that did not find an earlier
        # attempt's ticket, still being made when it searched).
        "duplicate_tickets": len(made) - len(set(made)),
        "search_p50_s": percentile(searches, 0.5),
        "create_p50_s": percentile(creations, 0.5),
        "create_p99_s": percentile(creations, 0.99),
        "rt_busy_percent": round(100 * union_seconds(calls) / span, 1) if span > 0 else None,
        "rest_calls": len(calls),
    }


def in_flight(calls: list[RestCall], at: float) -> int:
    """RT calls under way at ``at``."""
    return sum(call.started <= at < call.ended for call in calls)


def union_seconds(calls: list[RestCall]) -> float:
    """Seconds during which at least one call was under way."""
    total, reach = 0.0, float("-inf")
    for call in sorted(calls, key=lambda c: c.started):
        if call.ended > reach:
            total += call.ended - max(call.started, reach)
            reach = call.ended
    return total


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
    retried = sum(c[3] for c in connected)
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
        "connect_retries": retried,
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


def start_request_tracker(tmp: Path) -> Any:
    """The real RT 5, warmed up with one ticket; None (and a sentence) if it cannot run."""
    from tests.support.helpdesk import RequestTracker, rt_missing

    missing = rt_missing()
    if missing is not None:
        progress(f"the real Request Tracker is left out: {missing}")
        return None
    progress("starting Request Tracker 5 (rt-server on SQLite)")
    rt = RequestTracker(tmp / "rt")
    rt.create_ticket("bench warm-up")  # a help desk's RT has served requests before
    return rt


def rt_workers(rt: Any) -> int:
    """rt-server's worker processes (Starlet forks them from the first)."""
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        count += int(fields[1]) == rt.proc.pid  # the parent pid
    return count


def alert_burst(
    held: Devices,
    passing: RecordingPassThrough,
    name: str,
    relay_pid: int,
    args: argparse.Namespace,
    failures: int,
) -> dict[str, Any]:
    """Devices send results for ``--spread`` s, ``failures`` of them failing; the
    relay opens a ticket for each through ``passing``; wait for them and measure."""
    senders = max(failures, round(args.devices * args.spread / args.results_every))
    progress(
        f"relay -> {name}: {senders} devices send a result within {args.spread:.0f} s (each "
        f"device every {args.results_every:.0f} s), {failures} of them failing"
    )
    since = time.time()
    before = cpu_seconds([relay_pid])
    ask = {
        "spread": args.spread,
        "failures": failures // args.workers,
        "senders": senders // args.workers,
    }
    sent = [item for part in held.ask("results", ask) for item in part]
    cpu = 100.0 * (cpu_seconds([relay_pid]) - before) / args.spread
    deadline = time.monotonic() + args.ticket_wait
    while time.monotonic() < deadline and len(passing.created(since)) < len(sent):
        time.sleep(0.2)
    figures = burst_figures(sent, passing, since, args.delivery_workers)
    figures["alerts_per_minute"] = round(len(sent) * 60 / args.spread, 1)
    figures["cpu_percent_during"] = round(cpu, 1)
    figures["results_per_second"] = round(senders / args.spread, 1)
    figures["dropped_connections"] = sum(held.ask("dropped"))
    progress(f"relay -> {name}: {figures}")
    return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="puente-devices-"))
    handshakes = max(64, (args.devices + 100) // 10)
    soft, hard = raise_file_limit(args.devices + 100 + handshakes + 64 + 2000)
    progress(f"open-file limit {soft}/{hard}; enrolling {args.devices} devices")
    devices = enrol_devices(tmp / "data", args.devices)
    stand_in = TicketStandIn()
    rt = start_request_tracker(tmp) if args.rt in ("both", "real") else None
    if args.rt == "real" and rt is None:
        stand_in.close()
        raise RuntimeError("--rt real needs Request Tracker 5 installed (see above)")
    passing = RecordingPassThrough(stand_in.url)
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
            "--max-handshakes",
            str(handshakes),
            "--max-connections-per-ip",
            str(args.devices + 100),
            "--max-half-open-per-ip",
            str(args.devices + 100),
            "--rt-url",
            passing.url,
            "--delivery-workers",
            str(args.delivery_workers),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, "PUENTE_RT_TOKEN": rt.token if rt is not None else "bench"},
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
        results["alerts"] = {}
        results["delivery_workers"] = args.delivery_workers
        if args.rt in ("both", "stand-in"):
            results["alerts"]["stand-in"] = alert_burst(
                held, passing, "stand-in", relay.pid, args, args.failures
            )
        if rt is not None:
            passing.backend = rt.url
            results["request_tracker"] = {
                "server": "rt-server (Starlet, prefork)",
                "workers": rt_workers(rt),
                "database": "SQLite (Debian's rt5-db-sqlite)",
            }
            progress(f"Request Tracker: {results['request_tracker']}")
            for index, failures in enumerate(args.rt_failures):
                key = "rt" if index == 0 else f"rt-{index + 1}"
                results["alerts"][key] = alert_burst(
                    held, passing, "real RT", relay.pid, args, failures
                )
        both = results["alerts"]
        if both.get("rt", {}).get("p99_s") and both.get("stand-in", {}).get("p99_s"):
            results["ratios"] = {
                "ticket_p99_rt_to_stand_in": round(
                    both["rt"]["p99_s"] / both["stand-in"]["p99_s"], 1
                )
            }
    finally:
        if held is not None:
            held.close()
        relay.terminate()
        try:
            relay.wait(60)
        except subprocess.TimeoutExpired:
            relay.kill()
        log.close()
        passing.close()
        stand_in.close()
        if rt is not None:
            rt.stop()
    results.setdefault("ratios", {})

    if args.no_peer:
        shutil.rmtree(tmp, ignore_errors=True)
        results["peer"] = {}
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
    results["ratios"] |= {
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


def ticket_line(label: str, alerts: dict[str, Any], workers: int) -> str:
    p99 = alerts["p99_s"]
    met = (
        p99 is not None
        and p99 < GOAL_TICKET_P99
        and alerts["tickets"] == alerts["failing_results"] > 0
    )
    return (
        f"check failing -> ticket in the {label}, {alerts['alerts_per_minute']:g} alerts a "
        f"minute: {alerts['tickets']}/{alerts['failing_results']} tickets, p50 "
        f"{alerts['p50_s']} s, p90 {alerts['p90_s']} s, p99 {p99} s, max {alerts['max_s']} s, "
        f"{alerts['over_2s']} over 2 s (goal p99 < 2 s: {'met' if met else 'MISSED'}); of "
        f"which in RT's HTTP calls p50 {alerts['in_rt_p50_s']} s, p99 {alerts['in_rt_p99_s']} "
        f"s (creation p50 {alerts['create_p50_s']} s, p99 {alerts['create_p99_s']} s; "
        f"{alerts['searches']} searches, {alerts['duplicate_tickets']} duplicate tickets), before RT p50 {alerts['before_rt_p50_s']} s, p99 "
        f"{alerts['before_rt_p99_s']} s ({alerts['found_all_workers_busy']} alerts found all "
        f"{workers} delivery workers busy); at most {alerts['most_calls_in_flight']} RT calls "
        f"at once, RT busy {alerts['rt_busy_percent']} % of the delivery span; among "
        f"{alerts['results_per_second']} results/s (relay CPU {alerts['cpu_percent_during']} "
        f"%, connections dropped so far {alerts['dropped_connections']})"
    )


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
    workers = results["delivery_workers"]
    if "request_tracker" in results:
        rt = results["request_tracker"]
        print(
            f"real Request Tracker 5: {rt['server']} with {rt['workers']} worker processes, "
            f"{rt['database']}; the relay delivers {workers} alerts at once (--delivery-workers)"
        )
    for name in alerts:
        label = "RT stand-in" if name == "stand-in" else "real Request Tracker 5"
        print(ticket_line(label, alerts[name], workers))
    if "ticket_p99_rt_to_stand_in" in results["ratios"]:
        print(f"ticket p99, real RT / stand-in: {results['ratios']['ticket_p99_rt_to_stand_in']}")
    print(
        "connections dropped (keepalive timeouts, closes) while connecting / during the "
        f"heartbeat windows: relay {relay['dropped_while_connecting']} / "
        f"{relay['dropped_at_30s'] + relay.get('dropped_compressed', 0)}, peer "
        f"{peer.get('dropped_while_connecting', '-')} / "
        f"{peer.get('dropped_at_30s', 0) + peer.get('dropped_compressed', 0)}"
    )


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of positive numbers, e.g. 20,100")
    return counts


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
    parser.add_argument("--failures", type=int, default=100, help="failing results per burst (100)")
    parser.add_argument(
        "--rt-failures",
        type=_counts,
        help="failing results of each burst into the real RT, one burst per number, "
        "e.g. 20,60,100 (default: --failures)",
    )
    parser.add_argument(
        "--delivery-workers",
        type=int,
        default=ALERT_WORKERS,
        help=f"the relay's --delivery-workers: alerts delivered at once ({ALERT_WORKERS})",
    )
    parser.add_argument(
        "--rt",
        choices=("both", "stand-in", "real"),
        help="where tickets go: the stand-in, the real Request Tracker 5, or a burst "
        "into each (both; --quick: stand-in)",
    )
    parser.add_argument(
        "--ticket-wait",
        type=float,
        default=300.0,
        help="seconds after a burst to wait for its tickets (300)",
    )
    parser.add_argument("--quick", action="store_true", help="100 devices, short windows")
    parser.add_argument("--no-peer", action="store_true", help="measure the relay only")
    parser.add_argument("--json", action="store_true", help="results as JSON on stdout")
    args = parser.parse_args()
    if args.quick:
        args.devices, args.workers, args.window, args.settle = 100, 2, 2.0, 1.0
        args.spread, args.failures, args.compress, args.results_every = 2.0, 10, 10.0, 2.0
        args.ticket_wait = 60.0
    args.rt = args.rt or ("stand-in" if args.quick else "both")
    args.rt_failures = args.rt_failures or [args.failures]
    if args.delivery_workers < 1:
        parser.error("--delivery-workers must be 1 or more")
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
