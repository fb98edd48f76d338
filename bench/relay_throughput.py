"""Relay throughput, added latency and idle memory, against plain forwarders in one run.

Usage (from the repository root or anywhere)::

    python bench/relay_throughput.py            # full run: about 100 s on 2 cores
    python bench/relay_throughput.py --quick    # smoke run: a few seconds, rough figures
    python bench/relay_throughput.py --json     # figures as JSON on stdout

What is compared, and why it is fair
------------------------------------
Every peer carries the *same* stream between the *same* two programs: a websockets
client (the sender) and a websockets receiver that counts or echoes messages. Only
the box in the middle changes, and each middle box is its own process:

``raw``         the raw asyncio TCP forwarder of the goals: asyncio streams,
                ``read(65536)`` / ``write`` / ``drain``, forwarding the WebSocket
                connection's TCP byte stream to the receiver's websockets server;
``transports``  an asyncio forwarder on protocols and transports (each chunk written
                straight from ``data_received``, no stream buffer): the fastest
                forwarder plain asyncio offers, shown for context only;
``socat``       Debian's ``socat`` (``-b 65536``, ``nodelay``, ``fork``) forwarding
                the same byte stream;
``relay``       the real relay (``python -m relay.cli serve``): the sender claims the
                technician role of a session created through the REST API, the
                receiver claims the agent role, and the relay forwards their binary
                messages, parsing and re-framing each one as any WebSocket relay must;
``direct``      the sender talks straight to the receiver's server (the ceiling).

Forwarders pass bytes without looking at them; the relay must unmask, parse and
re-frame every message (client frames are masked, frames towards a client are not).
So the receiver unmasks behind a forwarder and not behind the relay: that work is
inherent to the protocol and is counted where it happens. Sender, receiver and middle
box are three processes on the same cores for every peer. Trials are interleaved
(every peer once per round) and each ratio is the median of per-round ratios, so
load from elsewhere on the machine hits the peers compared alike; the middle box's
CPU time per message is printed too.

Measured
--------
* throughput: the sender sends ``--duration`` seconds of 100-byte messages (msgs/s)
  and of 64 KiB messages (MB/s, 10^6 bytes); the receiver times them from the first
  message to the end marker and reports back in-band; every message must arrive;
* added latency: ``--pings`` sequential 100-byte ping-pongs per peer, all connections
  open at once and taking turns ping by ping; p50 and p99 of the round trip minus
  the direct one's (a round trip crosses the middle box twice);
* memory: a fresh relay holds ``--sessions`` idle paired sessions, their clients spread
  over ``--holders`` processes and the agents over many 127.x.y.z source addresses (the
  relay allows 20 agent joins per address per minute); the relay's RSS growth from a
  warmed-up baseline divided by the sessions.

Goals (issue 2, acceptance point 8): relay >= raw forwarder for 64 KiB messages,
>= 1/4 of its message rate for 100-byte ones, p99 added latency < 2 ms, < 64 KiB per
idle paired session. A missed goal is reported, not an error: the exit status is 0
when everything was measured, 1 (with a sentence on stderr) when something could not be.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import psutil
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from protocol import envelope  # noqa: E402
from protocol.envelope import Role  # noqa: E402

#: Settings every WebSocket end uses, the same as the real link (link/connection.py).
WS_OPTIONS: dict[str, Any] = {"compression": None, "max_size": envelope.MAX_RECORD_SIZE + 4096}

SMALL = 100
LARGE = 64 * 1024
#: Throughput trials run in this order, round after round.
PEERS = ("raw", "transports", "socat", "relay", "direct")
PEER_TITLES = {
    "direct": "direct (no middle box)",
    "raw": "raw asyncio fwd (streams)",
    "transports": "asyncio fwd (transports)",
    "socat": "socat",
    "relay": "puente relay",
}

# In-band stream protocol between sender and receiver (first byte of a binary message).
HEADER, DATA, PING, END, REPORT = b"H", b"D", b"P", b"E", b"R"


class BenchError(Exception):
    """A measurement could not be made; the message says what went wrong and what to do."""


# ---------------------------------------------------------------------------
# The receiver: the same code behind every middle box
# ---------------------------------------------------------------------------


async def receive_stream(ws: ClientConnection | ServerConnection) -> None:
    """Count DATA messages and echo PING messages; answer each END with a REPORT.

    The REPORT is ``{"messages", "bytes", "seconds"}`` for the DATA since the last
    HEADER, timed from the first of them to the END. Text messages come only from the
    relay (peer gone, errors) and end the stream.
    """
    messages = size = 0
    first = 0.0
    async for message in ws:
        if isinstance(message, str):
            return
        tag = message[:1]
        if tag == DATA:
            if messages == 0:
                first = time.perf_counter()
            messages += 1
            size += len(message)
        elif tag == PING:
            await ws.send(message)
        elif tag == HEADER:
            messages = size = 0
        elif tag == END:
            seconds = time.perf_counter() - first if messages else 0.0
            report = {"messages": messages, "bytes": size, "seconds": seconds}
            await ws.send(REPORT + json.dumps(report).encode())


async def expect_paired(ws: ClientConnection, timeout: float) -> None:
    """Read relay envelope messages until ``paired``; raise BenchError on an error."""
    async with asyncio.timeout(timeout):
        while True:
            message = envelope.decode(await ws.recv())
            if message["type"] == "paired":
                return
            if message["type"] != "waiting":
                raise BenchError(f"the relay refused a claim: {message}")


async def join_as_agent(url: str, nameplate: str, ip: str, timeout: float) -> ClientConnection:
    """Connect from ``ip`` (a loopback address), claim the agent role, wait until paired."""
    ws = await connect(url + envelope.WS_PATH, local_addr=(ip, 0), **WS_OPTIONS)
    try:
        await ws.send(envelope.claim(Role.AGENT, nameplate))
        await expect_paired(ws, timeout)
    except BaseException:
        await ws.close()
        raise
    return ws


def agent_ip(prefix: str, index: int) -> str:
    """A loopback source address for the ``index``-th agent: at most 10 joins per address.

    The relay allows 20 agent joins per address per minute; 127.0.0.0/8 is all loopback.
    """
    group = index // 10
    return f"{prefix}.{group // 250}.{group % 250 + 1}"


# ---------------------------------------------------------------------------
# Child processes (hidden --child modes of this script)
# ---------------------------------------------------------------------------


async def stdin_lines() -> AsyncIterator[str]:
    """Lines from stdin until EOF (the parent exiting ends every child)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        yield line.decode().strip()


async def child_receiver() -> None:
    """Serve receive_stream on a free port; join relays as agent when told on stdin."""
    joins: set[asyncio.Task[None]] = set()

    async def join(command: dict[str, Any]) -> None:
        try:
            ws = await join_as_agent(command["url"], command["nameplate"], command["ip"], 30)
            async with ws:
                await receive_stream(ws)
        except Exception as exc:  # reported to the parent's log; the sender times out
            print(f"receiver: relay join failed: {exc!r}", file=sys.stderr, flush=True)

    async with serve(receive_stream, "127.0.0.1", 0, **WS_OPTIONS) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"port {port}", flush=True)
        async for line in stdin_lines():
            task = asyncio.create_task(join(json.loads(line)))
            joins.add(task)
            task.add_done_callback(joins.discard)


async def child_forwarder(target_port: int) -> None:
    """The raw asyncio TCP forwarder: every connection is piped to ``target_port``."""

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    server = await asyncio.start_server(forward, "127.0.0.1", 0)
    async with server:
        print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
        async for _ in stdin_lines():
            pass


class ForwardingHalf(asyncio.Protocol):
    """One side of the transports forwarder: what arrives is written to the other side.

    Backpressure: when the other side's write buffer fills, this side stops reading.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.other: ForwardingHalf | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.other is not None and self.other.transport is not None
        self.other.transport.write(data)

    def pause_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.close()


async def child_transports_forwarder(target_port: int) -> None:
    """An asyncio forwarder on protocols and transports: no stream buffers, no extra copies."""
    loop = asyncio.get_running_loop()
    dials: set[asyncio.Task[None]] = set()

    class Front(ForwardingHalf):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            assert self.transport is not None
            self.transport.pause_reading()  # until the far side is connected
            task = loop.create_task(self.dial())
            dials.add(task)
            task.add_done_callback(dials.discard)

        async def dial(self) -> None:
            assert self.transport is not None
            try:
                _, back = await loop.create_connection(ForwardingHalf, "127.0.0.1", target_port)
            except OSError:
                self.transport.close()
                return
            back.other, self.other = self, back
            self.transport.resume_reading()

    server = await loop.create_server(Front, "127.0.0.1", 0)
    async with server:
        print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
        async for _ in stdin_lines():
            pass


async def child_holder() -> None:
    """Hold idle paired sessions. Commands (JSON lines): ``pair`` a batch, ``close`` all.

    ``{"pair": [nameplates], "url", "token", "ip_prefix"}`` answers ``paired N``;
    ``{"close": true}`` answers ``closed``.
    """
    held: list[ClientConnection] = []
    joined = 0
    limit = asyncio.Semaphore(32)

    async def pair(url: str, token: str, nameplate: str, ip: str) -> None:
        async with limit:
            tech = await connect(
                url + envelope.WS_PATH,
                additional_headers={"Authorization": f"Bearer {token}"},
                **WS_OPTIONS,
            )
            held.append(tech)
            await tech.send(envelope.claim(Role.TECHNICIAN, nameplate))
            agent = await join_as_agent(url, nameplate, ip, 30)
            held.append(agent)
            await expect_paired(tech, 30)

    async for line in stdin_lines():
        command = json.loads(line)
        if "pair" in command:
            nameplates = command["pair"]
            first = joined
            joined += len(nameplates)
            try:
                await asyncio.gather(
                    *(
                        pair(
                            command["url"],
                            command["token"],
                            nameplate,
                            agent_ip(command["ip_prefix"], first + index),
                        )
                        for index, nameplate in enumerate(nameplates)
                    )
                )
            except Exception as exc:
                print(f"failed {exc!r}", flush=True)
                continue
            print(f"paired {len(nameplates)}", flush=True)
        elif command.get("close"):
            for ws in held:
                ws.transport.abort()  # a thousand polite close handshakes teach nothing
            held.clear()
            print("closed", flush=True)


# ---------------------------------------------------------------------------
# The orchestrator's helpers: processes, and routes through each middle box
# ---------------------------------------------------------------------------


@dataclass
class Child:
    """A child process with line-based stdin/stdout and stderr going to a log file."""

    name: str
    process: asyncio.subprocess.Process
    log: Path

    @classmethod
    async def start(cls, name: str, argv: Sequence[str], log_dir: Path) -> Child:
        log = log_dir / f"{name}.log"
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                cwd=ROOT,
            )
        return cls(name, process, log)

    async def readline(self, timeout: float) -> str:
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                line = await self.process.stdout.readline()
        except TimeoutError:
            raise BenchError(
                f"{self.name} did not answer in {timeout:.0f} s{self.tail()}"
            ) from None
        if not line:
            raise BenchError(f"{self.name} exited unexpectedly{self.tail()}")
        return line.decode().strip()

    async def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()

    def tail(self) -> str:
        """The end of the child's log, to explain a failure."""
        try:
            text = self.log.read_text(errors="replace").strip()
        except OSError:
            return ""
        return f"; its log ends with:\n{text[-1500:]}" if text else ""

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                async with asyncio.timeout(10):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def start_relay(data_dir: Path, log_dir: Path, name: str) -> tuple[Child, int, str]:
    """A real relay process on a free loopback port; return it, its port and a token."""
    data_dir.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    added = await asyncio.to_thread(
        subprocess.run,
        [python, "-m", "relay.cli", "technician", "add", "Bench", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    if added.returncode != 0:
        raise BenchError(f"could not create a technician account: {added.stderr.strip()}")
    token = added.stdout.strip().splitlines()[-1]
    argv = [python, "-m", "relay.cli", "serve", "--data-dir", str(data_dir), "--port", "0"]
    relay = await Child.start(name, argv, log_dir)
    line = await relay.readline(30)
    if "listening on" not in line:
        raise BenchError(f"the relay did not start: {line!r}{relay.tail()}")
    return relay, int(line.rsplit(":", 1)[1]), token


def create_session(port: int, token: str, ticket: str) -> str:
    """POST /api/sessions on the relay; return the new session's nameplate."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = json.dumps({"ticket_id": ticket})
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        connection.request("POST", "/api/sessions", body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    if response.status != 201:
        raise BenchError(f"creating a session failed: HTTP {response.status} {payload!r}")
    return str(json.loads(payload)["nameplate"])


async def create_sessions(port: int, token: str, count: int, prefix: str) -> list[str]:
    """Create ``count`` sessions through the REST API, a few requests at a time."""
    limit = asyncio.Semaphore(4)

    async def one(index: int) -> str:
        async with limit:
            return await asyncio.to_thread(create_session, port, token, f"{prefix}-{index}")

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_listening(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(f"nothing listens on port {port} after {timeout:.0f} s") from None
            await asyncio.sleep(0.05)
        else:
            writer.close()
            await writer.wait_closed()
            return


@dataclass
class Route:
    """How the sender reaches the receiver through one middle box."""

    name: str
    open: Callable[[], Awaitable[ClientConnection]]
    close: Callable[[ClientConnection], Awaitable[None]]
    #: The middle box's process (its children count too: socat forks per connection).
    pid: int | None = None


async def close_plain(ws: ClientConnection) -> None:
    await ws.close()


async def close_relayed(ws: ClientConnection) -> None:
    """End a relayed session the way a real end does: ``end`` to the relay, then close."""
    with contextlib.suppress(websockets.ConnectionClosed):
        await ws.send(envelope.encode({"type": "end", "reason": "benchmark done"}))
    await ws.close()


def plain_path(name: str, port: int, pid: int | None) -> Route:
    async def open_() -> ClientConnection:
        return await connect(f"ws://127.0.0.1:{port}/", **WS_OPTIONS)

    return Route(name, open_, close_plain, pid)


def cpu_seconds(pid: int | None) -> dict[int, float]:
    """CPU seconds (user + system) used so far by a process and each of its children."""
    if pid is None:
        return {}
    try:
        root = psutil.Process(pid)
        found = {}
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                found[process.pid] = times.user + times.system
        return found
    except psutil.Error:
        return {}


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two samples by the processes alive at the second one."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def relay_path(relay: Child, relay_port: int, token: str, receiver: Child) -> Route:
    """Each opening creates a session over REST and pairs the sender with the receiver."""
    url = f"ws://127.0.0.1:{relay_port}"
    joined = 0

    async def open_() -> ClientConnection:
        nonlocal joined
        nameplate = await asyncio.to_thread(create_session, relay_port, token, f"BENCH-{joined}")
        await receiver.send({"url": url, "nameplate": nameplate, "ip": agent_ip("127.9", joined)})
        joined += 1
        ws = await connect(
            url + envelope.WS_PATH,
            additional_headers={"Authorization": f"Bearer {token}"},
            **WS_OPTIONS,
        )
        try:
            await ws.send(envelope.claim(Role.TECHNICIAN, nameplate))
            await expect_paired(ws, 30)
        except BaseException:
            await ws.close()
            raise
        return ws

    return Route("relay", open_, close_relayed, relay.process.pid)


async def read_report(ws: ClientConnection, timeout: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.recv()
            if isinstance(message, bytes) and message[:1] == REPORT:
                report: dict[str, Any] = json.loads(message[1:])
                return report
            if isinstance(message, str):
                raise BenchError(f"the relay ended the stream: {message}")


# ---------------------------------------------------------------------------
# The three measurements
# ---------------------------------------------------------------------------


async def measure_stream(route: Route, size: int, duration: float) -> dict[str, Any]:
    """Send ``size``-byte messages for ``duration`` s; the receiver's timing and counts.

    Also the middle box's CPU time per message, from after the connection opened
    (pairing excluded) to the receiver's report.
    """
    ws = await route.open()
    try:
        await ws.send(HEADER)
        payload = DATA + os.urandom(size - 1)  # ciphertext-like: random, incompressible
        batch = 256 if size < 4096 else 4
        loop = asyncio.get_running_loop()
        cpu_before = cpu_seconds(route.pid)
        deadline = loop.time() + duration
        sent = 0
        while loop.time() < deadline:
            for _ in range(batch):
                await ws.send(payload)
            sent += batch
        await ws.send(END)
        report = await read_report(ws, 60)
        cpu = cpu_used(cpu_before, cpu_seconds(route.pid))
    finally:
        await route.close(ws)
    if report["messages"] != sent or report["bytes"] != sent * size:
        raise BenchError(
            f"{route.name} lost messages: sent {sent}, the receiver counted {report['messages']}"
        )
    seconds = max(report["seconds"], 1e-9)
    return {
        "messages": sent,
        "seconds": round(seconds, 4),
        "msgs_per_s": sent / seconds,
        "mb_per_s": sent * size / seconds / 1e6,
        "middle_cpu_us_per_msg": cpu / sent * 1e6 if route.pid is not None else None,
    }


async def measure_latency(routes: dict[str, Route], count: int) -> dict[str, list[float]]:
    """Round-trip times (seconds) of ``count`` sequential 100-byte ping-pongs per route.

    Every route's connection is open at once and the routes take turns ping by ping,
    so a burst of load from elsewhere on the machine hits them all alike.
    """
    payload = PING + os.urandom(SMALL - 1)
    warmup = 20
    connections: dict[str, ClientConnection] = {}
    rtts: dict[str, list[float]] = {name: [] for name in routes}
    try:
        for name, route in routes.items():
            connections[name] = await route.open()
            await connections[name].send(HEADER)
        for turn in range(warmup + count):
            for name, ws in connections.items():
                start = time.perf_counter()
                await ws.send(payload)
                echo = await asyncio.wait_for(ws.recv(), 30)
                elapsed = time.perf_counter() - start
                if echo != payload:
                    raise BenchError(f"{name} returned a different message than was sent")
                if turn >= warmup:
                    rtts[name].append(elapsed)
        for ws in connections.values():
            await ws.send(END)
            await read_report(ws, 30)
    finally:
        for name, ws in connections.items():
            await routes[name].close(ws)
    return rtts


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[rank]


async def measure_memory(
    options: argparse.Namespace, work: Path, progress: Progress
) -> dict[str, Any]:
    """RSS growth of a fresh relay holding ``options.sessions`` idle paired sessions."""
    relay, port, token = await start_relay(work / "relay-memory", work, "relay-memory")
    holders: list[Child] = []
    url = f"ws://127.0.0.1:{port}"
    script = str(Path(__file__).resolve())
    try:
        for index in range(options.holders):
            argv = [sys.executable, script, "--child", "holder"]
            holders.append(await Child.start(f"holder-{index}", argv, work))

        async def pair(holder: Child, nameplates: list[str], prefix: str) -> None:
            await holder.send({"pair": nameplates, "url": url, "token": token, "ip_prefix": prefix})
            answer = await holder.readline(120)
            if not answer.startswith("paired"):
                raise BenchError(f"{holder.name} could not pair its sessions: {answer}")

        # Warm up: the first sessions load code and fill caches that are not per session.
        warm = await create_sessions(port, token, 10, "WARM")
        await pair(holders[0], warm, "127.30")
        await holders[0].send({"close": True})
        await holders[0].readline(60)
        await asyncio.sleep(0.5)
        process = psutil.Process(relay.process.pid)
        before = process.memory_info().rss

        nameplates = await create_sessions(port, token, options.sessions, "IDLE")
        progress.step(f"pairing {options.sessions} idle sessions")
        shares = [nameplates[i :: len(holders)] for i in range(len(holders))]
        await asyncio.gather(
            *(
                pair(holder, share, f"127.{40 + index}")
                for index, (holder, share) in enumerate(zip(holders, shares, strict=True))
            )
        )
        await asyncio.sleep(1.0)  # idle: let pending writes and handshakes settle
        after = process.memory_info().rss
        connections = len(process.net_connections(kind="tcp"))
        for holder in holders:
            await holder.send({"close": True})
        for holder in holders:
            await holder.readline(60)
    finally:
        for holder in holders:
            await holder.stop()
        await relay.stop()
    return {
        "sessions": options.sessions,
        "client_processes": options.holders,
        "relay_tcp_connections": connections,
        "rss_before_bytes": before,
        "rss_after_bytes": after,
        "bytes_per_session": (after - before) / options.sessions,
    }


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


class Progress:
    """Numbered progress lines on stderr (stdout is kept for the table or JSON)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.started = time.monotonic()

    def step(self, what: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        print(f"[{self.done:>2}/{self.total}] {elapsed:5.1f}s  {what}", file=sys.stderr, flush=True)


@dataclass
class Results:
    settings: dict[str, Any]
    environment: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    throughput: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    goals: list[dict[str, Any]] = field(default_factory=list)


def socat_version(socat: str) -> str:
    out = subprocess.run([socat, "-V"], capture_output=True, text=True, timeout=10).stdout
    for line in out.splitlines():
        if "socat version" in line:
            return line.split("version", 1)[1].split()[0]
    return "unknown"


async def start_port_child(name: str, argv: Sequence[str], work: Path) -> tuple[Child, int]:
    """Start a child that prints ``port N`` once it listens."""
    child = await Child.start(name, argv, work)
    line = await child.readline(30)
    if not line.startswith("port "):
        await child.stop()
        raise BenchError(f"{name} did not start: {line!r}{child.tail()}")
    return child, int(line.split()[1])


async def run(options: argparse.Namespace, results: Results) -> None:
    """Every measurement; fills ``results``. Starts and stops every process it needs."""
    socat = shutil.which("socat")
    peers = [peer for peer in PEERS if socat or peer != "socat"]
    if socat:
        results.environment["socat"] = socat_version(socat)
    else:
        results.notes.append(
            "socat was not found, so its row is missing; install it (apt-get install socat)."
        )
    progress = Progress(2 * options.trials * len(peers) + 3)
    script = str(Path(__file__).resolve())
    children: list[Child] = []
    socat_process: asyncio.subprocess.Process | None = None
    with tempfile.TemporaryDirectory(prefix="puente-bench-") as tmp:
        work = Path(tmp)
        try:
            relay, relay_port, token = await start_relay(work / "relay", work, "relay")
            children.append(relay)
            receiver, receiver_port = await start_port_child(
                "receiver", [sys.executable, script, "--child", "receiver"], work
            )
            children.append(receiver)
            routes = {
                "relay": relay_path(relay, relay_port, token, receiver),
                "direct": plain_path("direct", receiver_port, None),
            }
            for peer in ("raw", "transports"):
                forwarder, port = await start_port_child(
                    peer,
                    [sys.executable, script, "--child", peer, "--target", str(receiver_port)],
                    work,
                )
                children.append(forwarder)
                routes[peer] = plain_path(peer, port, forwarder.process.pid)
            if socat:
                socat_port = free_port()
                with (work / "socat.log").open("wb") as log:
                    socat_process = await asyncio.create_subprocess_exec(
                        socat,
                        "-b",
                        "65536",
                        f"TCP-LISTEN:{socat_port},bind=127.0.0.1,reuseaddr,fork,nodelay",
                        f"TCP:127.0.0.1:{receiver_port},nodelay",
                        stdin=asyncio.subprocess.DEVNULL,
                        stderr=log,
                    )
                await wait_listening(socat_port, 10)
                routes["socat"] = plain_path("socat", socat_port, socat_process.pid)

            for size in (SMALL, LARGE):
                trials: dict[str, list[dict[str, Any]]] = {peer: [] for peer in peers}
                for _ in range(options.trials):
                    for peer in peers:
                        trial = await measure_stream(routes[peer], size, options.duration)
                        trials[peer].append(trial)
                        figure = (
                            f"{trial['msgs_per_s']:,.0f} msgs/s"
                            if size == SMALL
                            else f"{trial['mb_per_s']:,.0f} MB/s"
                        )
                        progress.step(f"{size:>5} B messages via {peer}: {figure}")
                results.throughput[str(size)] = summarize_throughput(trials)

            progress.step(f"{options.pings} ping-pongs via each peer, interleaved")
            ordered = {peer: routes[peer] for peer in ["direct", *peers] if peer in routes}
            rtts = await measure_latency(ordered, options.pings)
            for peer, times in rtts.items():
                results.latency[peer] = {
                    "pings": len(times),
                    "p50_us": percentile(times, 0.50) * 1e6,
                    "p99_us": percentile(times, 0.99) * 1e6,
                }
            direct = results.latency["direct"]
            for figures in results.latency.values():
                figures["added_p50_us"] = figures["p50_us"] - direct["p50_us"]
                figures["added_p99_us"] = figures["p99_us"] - direct["p99_us"]
        finally:
            if socat_process is not None and socat_process.returncode is None:
                socat_process.terminate()
                await socat_process.wait()
            for child in reversed(children):
                await child.stop()
        progress.step(f"starting a fresh relay for {options.sessions} idle sessions")
        results.memory = await measure_memory(options, work, progress)
    results.goals = check_goals(results)


def summarize_throughput(trials: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians per peer, and each peer's ratio to the raw forwarder.

    The ratio is the median of per-round ratios: trial ``i`` of every peer ran in
    round ``i``, seconds apart, so each ratio compares trials that met the same load.
    """
    summary: dict[str, Any] = {}
    raw = trials["raw"]
    for peer, runs in trials.items():
        cpu = [r["middle_cpu_us_per_msg"] for r in runs if r["middle_cpu_us_per_msg"] is not None]
        summary[peer] = {
            "msgs_per_s": statistics.median(r["msgs_per_s"] for r in runs),
            "mb_per_s": statistics.median(r["mb_per_s"] for r in runs),
            "middle_cpu_us_per_msg": statistics.median(cpu) if cpu else None,
            "ratio_vs_raw": statistics.median(
                run["msgs_per_s"] / reference["msgs_per_s"]
                for run, reference in zip(runs, raw, strict=True)
            ),
            "trials": runs,
        }
    return summary


def check_goals(results: Results) -> list[dict[str, Any]]:
    """The four goals of issue 2, acceptance point 8, each with its measured value."""
    small = results.throughput[str(SMALL)]["relay"]["ratio_vs_raw"]
    large = results.throughput[str(LARGE)]["relay"]["ratio_vs_raw"]
    added_p99 = results.latency["relay"]["added_p99_us"]
    per_session = results.memory["bytes_per_session"]
    return [
        {
            "goal": "64 KiB messages: relay throughput >= raw forwarder's",
            "value": f"{large:.2f}x",
            "met": large >= 1.0,
        },
        {
            "goal": "100-byte messages: relay rate >= 1/4 of raw forwarder's",
            "value": f"{small:.2f}x",
            "met": small >= 0.25,
        },
        {
            "goal": "100-byte ping-pong: p99 added latency < 2 ms",
            "value": f"{added_p99 / 1000:.3f} ms per round trip (two traversals)",
            "met": added_p99 < 2000,
        },
        {
            "goal": "memory per idle paired session < 64 KiB",
            "value": f"{per_session / 1024:.1f} KiB",
            "met": per_session < 64 * 1024,
        },
    ]


def _cpu(figures: dict[str, Any]) -> str:
    value = figures["middle_cpu_us_per_msg"]
    return "-" if value is None else f"{value:.1f}"


def render(results: Results) -> str:
    """The human-readable report."""
    env, settings = results.environment, results.settings
    lines = [
        "Puente relay benchmark: loopback, one run, every peer carrying the same stream",
        f"  {env['cpus']} CPUs, Python {env['python']}, websockets {env['websockets']}"
        + (f", socat {env['socat']}" if "socat" in env else ""),
        "  The same websockets sender and receiver every time; only the middle box changes.",
        "  Forwarders pass the WebSocket connection's TCP bytes blindly; the relay parses and",
        "  re-frames every message. Ratios are against the raw asyncio forwarder (streams),",
        "  the median of per-round ratios; cpu = the middle box's CPU time per message in µs.",
        "",
        f"Throughput: median of {settings['trials']} interleaved trial(s) of "
        f"{settings['duration']} s per peer",
        f"  {'peer':<27}{'100 B msgs/s':>13}{'ratio':>7}{'cpu':>7}"
        f"{'64 KiB MB/s':>13}{'ratio':>7}{'cpu':>7}",
    ]
    small, large = results.throughput[str(SMALL)], results.throughput[str(LARGE)]
    for peer in small:
        lines.append(
            f"  {PEER_TITLES[peer]:<27}{small[peer]['msgs_per_s']:>13,.0f}"
            f"{small[peer]['ratio_vs_raw']:>7.2f}{_cpu(small[peer]):>7}"
            f"{large[peer]['mb_per_s']:>13,.0f}{large[peer]['ratio_vs_raw']:>7.2f}"
            f"{_cpu(large[peer]):>7}"
        )
    lines += [
        "",
        f"Latency: {settings['pings']} sequential 100-byte ping-pongs per peer, interleaved; "
        "round trip in µs",
        f"  {'peer':<27}{'p50':>8}{'p99':>8}{'added p50':>11}{'added p99':>11}",
    ]
    for peer, figures in results.latency.items():
        lines.append(
            f"  {PEER_TITLES[peer]:<27}{figures['p50_us']:>8.0f}{figures['p99_us']:>8.0f}"
            f"{figures['added_p50_us']:>11.0f}{figures['added_p99_us']:>11.0f}"
        )
    memory = results.memory
    lines += [
        "",
        f"Memory: {memory['sessions']} idle paired sessions on a fresh relay "
        f"({memory['relay_tcp_connections']} TCP sockets; clients in "
        f"{memory['client_processes']} process(es))",
        f"  relay RSS {memory['rss_before_bytes'] / 2**20:.1f} MiB -> "
        f"{memory['rss_after_bytes'] / 2**20:.1f} MiB = "
        f"{memory['bytes_per_session'] / 1024:.1f} KiB per paired session",
        "",
        "Goals (issue 2, acceptance point 8)",
    ]
    for goal in results.goals:
        mark = "met   " if goal["met"] else "MISSED"
        lines.append(f"  [{mark}] {goal['goal']}: {goal['value']}")
    lines += [f"note: {note}" for note in results.notes]
    return "\n".join(lines)


def raise_file_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        raise BenchError(
            f"{needed} file descriptors are needed but the hard limit is {target}; "
            "raise it (ulimit -Hn) or pass a smaller --sessions."
        )
    return target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/relay_throughput.py",
        description="Measure the Puente relay against a raw asyncio TCP forwarder and socat, "
        "in one run on loopback: throughput for 100-byte and 64 KiB messages, added "
        "ping-pong latency, and relay memory per idle paired session. Prints ratios vs "
        "the raw forwarder and whether the goals of issue 2 are met.",
        epilog="Goals: relay >= raw forwarder for 64 KiB messages, >= 1/4 of its rate for "
        "100-byte ones, p99 added latency < 2 ms, < 64 KiB per idle paired session. Runs from "
        "any directory, on loopback only; starts and stops every process itself and takes "
        "about 100 s on 2 cores (--quick: a few seconds). Progress goes to stderr. Results "
        "are written up in docs/PERFORMANCE.md.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 short trial, 200 pings, 50 sessions (figures are rough)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument(
        "--duration", type=float, metavar="S", help="seconds per throughput trial (1.5)"
    )
    parser.add_argument(
        "--trials", type=int, metavar="N", help="throughput rounds: trials per peer and size (5)"
    )
    parser.add_argument("--pings", type=int, metavar="N", help="ping-pongs per peer (2000)")
    parser.add_argument(
        "--sessions", type=int, metavar="N", help="idle paired sessions for memory (1000)"
    )
    parser.add_argument(
        "--holders", type=int, metavar="N", help="client processes holding them (4)"
    )
    parser.add_argument(
        "--child", choices=["receiver", "raw", "transports", "holder"], help=argparse.SUPPRESS
    )
    parser.add_argument("--target", type=int, help=argparse.SUPPRESS)
    return parser


def apply_defaults(options: argparse.Namespace) -> None:
    defaults = (
        {"duration": 0.3, "trials": 1, "pings": 200, "sessions": 50, "holders": 1}
        if options.quick
        else {"duration": 1.5, "trials": 5, "pings": 2000, "sessions": 1000, "holders": 4}
    )
    for name, value in defaults.items():
        if getattr(options, name) is None:
            setattr(options, name, value)
    for name in ("duration", "trials", "pings", "sessions", "holders"):
        if getattr(options, name) <= 0:
            raise BenchError(f"--{name} must be positive, not {getattr(options, name)}.")
    options.holders = min(options.holders, options.sessions)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    options = build_parser().parse_args(argv)
    if options.child == "receiver":
        asyncio.run(child_receiver())
        return 0
    if options.child == "raw":
        asyncio.run(child_forwarder(options.target))
        return 0
    if options.child == "transports":
        asyncio.run(child_transports_forwarder(options.target))
        return 0
    if options.child == "holder":
        asyncio.run(child_holder())
        return 0
    try:
        apply_defaults(options)
        raise_file_limit(4 * options.sessions + 256)
        results = Results(
            settings={
                name: getattr(options, name)
                for name in ("quick", "duration", "trials", "pings", "sessions", "holders")
            },
            environment={
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "websockets": importlib.metadata.version("websockets"),
                "platform": platform.platform(),
            },
        )
        asyncio.run(run(options, results))
    except BenchError as exc:
        print(f"relay_throughput: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "relay_throughput: interrupted; the processes it started are stopped.", file=sys.stderr
        )
        return 130
    if options.json:
        payload = {
            "command": "python bench/relay_throughput.py "
            + " ".join(sys.argv[1:] if argv is None else argv),
            "settings": results.settings,
            "environment": results.environment,
            "throughput": results.throughput,
            "latency": results.latency,
            "memory": results.memory,
            "goals": results.goals,
            "notes": results.notes,
        }
        print(json.dumps(payload, indent=2), file=out)
    else:
        print(render(results), file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
