"""Load on the relay: many sessions through one relay process, or three sharing Redis.

Modes (issue 7, acceptance 4; record the figures in docs/PERFORMANCE.md, "Relay load")::

    stream  N paired sessions, each agent streaming R Mb/s of 16 KiB records to its
            technician (a screen), the technician sending a small record every 0.5 s
            (input). Measures the one-way latency of every record; the same load also
            runs through socat (a C byte forwarder, the peer) so the relay's *added*
            latency is relay minus peer, per percentile. Goal: 1,000 x 1.4 Mb/s on this
            2-core machine with p99 added latency under 20 ms.
    idle    N paired sessions doing nothing (the relay still pings them). Measures the
            relay's resident memory per session. Goal: 10,000 sessions within 64 KiB each.
    churn   sessions opening, exchanging a little and closing, C at a time, for a
            duration. Samples the relay's memory; goal: flat at the end.

``--pin`` runs the relays (or socat) on the first CPU and the load generator on the
others, so that the two do not take turns on the same cores (as if the generator were
another machine); the relay's whole p99 then bounds the latency it adds.

``--nodes 3`` runs three relay processes sharing a real Redis (redis-server, started
here) and one SQLite file; each session's technician reaches node i and its agent
node i+1, so every session crosses nodes (the worst case: the agent's node passes the
connection on).

The load generator is a minimal WebSocket client on raw asyncio transports (records
are pre-built, masked with a fixed key), in worker processes, so that the generator
costs less CPU than the relay it measures. Every agent uses its own loopback source
address (127.x.y.z), as real customers would, so per-IP join limits apply as in
production. Latency is measured with CLOCK_MONOTONIC, shared by all processes.

Examples::

    python bench/relay_load.py stream --sessions 1000 --mbps 1.4 --seconds 30
    python bench/relay_load.py idle --sessions 9990
    python bench/relay_load.py churn --seconds 600 --concurrent 100
    python bench/relay_load.py stream --sessions 300 --nodes 3
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relay.sqlite_store import SQLiteStore  # noqa: E402

RECORD = 16 * 1024  # a screen update of a 1.4 Mb/s stream at about 11 frames per second
INPUT_RECORD = 64
INPUT_INTERVAL = 0.5
WRITE_BACKLOG = 1 << 20  # an agent stops sending (and counts a skipped record) above this
MASK = b"\x37\xfa\x21\x3d"
MASK64 = int.from_bytes(MASK * 2, "big")
GOAL_P99_ADDED_MS = 20.0
GOAL_IDLE_BYTES = 64 * 1024


# ---------------------------------------------------------------------------
# A minimal WebSocket client end
# ---------------------------------------------------------------------------


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (small payloads only: text and control)."""
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return _header(opcode, len(payload)) + masked


def _header(opcode: int, length: int) -> bytes:
    if length < 126:
        return bytes([0x80 | opcode, 0x80 | length]) + MASK
    if length < 65536:
        return bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big") + MASK
    return bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big") + MASK


@dataclass
class Stats:
    """What one worker measured."""

    measuring: bool = False
    latencies_ns: list[int] = field(default_factory=list)
    bytes_received: int = 0
    records_sent: int = 0
    records_skipped: int = 0
    errors: int = 0


class WsEnd(asyncio.Protocol):
    """One end (agent or technician) on a raw transport; also reads a plain byte stream
    carrying client frames, as the peer (socat) delivers them."""

    def __init__(self, stats: Stats, raw: bool = False) -> None:
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.texts: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handshaking = not raw
        self._buffer = bytearray()
        self._skip = 0
        if raw:
            self.upgraded.set_result(None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed before the upgrade"))
        if not self.closed.done():
            self.closed.set_result(None)
        self.texts.put_nowait({"type": "closed"})

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        if self._handshaking:
            self._buffer += data
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, rest = bytes(self._buffer[:end]), bytes(self._buffer[end + 4 :])
            self._buffer.clear()
            self._handshaking = False
            if not head.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(ConnectionError(head.split(b"\r\n")[0].decode()))
                return
            self.upgraded.set_result(None)
            if not rest:
                return
            data = rest
        self._frames(data)

    def _need(self) -> int:
        """Bytes of the current frame to hold before handling it (header + a prefix)."""
        buf = self._buffer
        if len(buf) < 2:
            return 2
        short = buf[1] & 0x7F
        size = 2 + (2 if short == 126 else 8 if short == 127 else 0) + (4 if buf[1] & 0x80 else 0)
        if len(buf) < size:
            return size
        length = self._length()
        return size + (min(8, length) if buf[0] & 0x0F == 0x2 else length)

    def _length(self) -> int:
        short = self._buffer[1] & 0x7F
        if short == 126:
            return int.from_bytes(self._buffer[2:4], "big")
        if short == 127:
            return int.from_bytes(self._buffer[2:10], "big")
        return short

    def _frames(self, data: bytes) -> None:
        view = memoryview(data)
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                take = min(self._skip, end - pos)
                self._skip -= take
                pos += take
                self.stats.bytes_received += take
                continue
            need = self._need()
            while len(self._buffer) < need:
                if pos >= end:
                    return
                take = min(need - len(self._buffer), end - pos)
                self._buffer += view[pos : pos + take]
                pos += take
                need = self._need()
            self._frame()

    def _frame(self) -> None:
        buf = self._buffer
        opcode, masked = buf[0] & 0x0F, bool(buf[1] & 0x80)
        short = buf[1] & 0x7F
        start = 2 + (2 if short == 126 else 8 if short == 127 else 0)
        key = bytes(buf[start : start + 4]) if masked else b""
        start += 4 if masked else 0
        length = self._length()
        payload = bytes(buf[start:])
        buf.clear()
        if opcode == 0x2:
            self.stats.bytes_received += len(payload)
            self._skip = length - len(payload)
            if length >= 8:
                sent = int.from_bytes(payload[:8], "big")
                if masked:
                    sent ^= int.from_bytes(key * 2, "big")
                if self.stats.measuring and length > INPUT_RECORD:
                    self.stats.latencies_ns.append(time.monotonic_ns() - sent)
            return
        if masked:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        if opcode == 0x1:
            self.texts.put_nowait(json.loads(payload))
        elif opcode == 0x9:
            self.send(client_frame(0xA, payload))
        elif opcode == 0x8 and self.transport is not None:
            with contextlib.suppress(Exception):
                self.send(client_frame(0x8, payload[:2]))
            self.transport.close()


async def open_end(
    port: int, stats: Stats, token: str | None = None, source: str = "127.0.0.1"
) -> WsEnd:
    loop = asyncio.get_running_loop()
    _, end = await loop.create_connection(
        lambda: WsEnd(stats), "127.0.0.1", port, local_addr=(source, 0)
    )
    key = base64.b64encode(os.urandom(16)).decode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    end.send(
        (
            f"GET /v1/session HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{auth}\r\n"
        ).encode()
    )
    await end.upgraded
    return end


async def claim(end: WsEnd, role: str, nameplate: str) -> None:
    message = {"type": "claim", "version": 1, "role": role, "nameplate": nameplate}
    end.send(client_frame(0x1, json.dumps(message).encode()))
    reply = await end.texts.get()
    if reply.get("type") != "waiting":
        raise ConnectionError(f"claim refused: {reply}")


async def paired(end: WsEnd) -> None:
    reply = await end.texts.get()
    if reply.get("type") != "paired":
        raise ConnectionError(f"not paired: {reply}")


def source_address(index: int, pool: int = 1) -> str:
    """A distinct loopback address per agent (127.pool.x.y)."""
    return f"127.{pool}.{index // 250 % 250}.{index % 250 + 1}"


# ---------------------------------------------------------------------------
# Sessions driven by a worker
# ---------------------------------------------------------------------------


@dataclass
class Pair:
    agent: WsEnd
    tech: WsEnd


class Streamer:
    """Paces one session: agent records at ``rate`` bytes/s, technician input records."""

    def __init__(self, pair: Pair, rate: float, stats: Stats, body: bytes, phase: float) -> None:
        self.pair = pair
        self.stats = stats
        self.body = body
        self.header = _header(0x2, len(body) + 8)
        self.interval = (len(body) + 8) / rate
        self.loop = asyncio.get_running_loop()
        self.running = True
        now = self.loop.time()
        self.next_record = now + phase * self.interval
        self.next_input = now + phase * INPUT_INTERVAL
        self.loop.call_at(self.next_record, self._record)
        self.loop.call_at(self.next_input, self._input)

    def _record(self) -> None:
        if not self.running:
            return
        transport = self.pair.agent.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > WRITE_BACKLOG:
            self.stats.records_skipped += 1
        else:
            stamp = (time.monotonic_ns() ^ MASK64).to_bytes(8, "big")
            transport.write(self.header + stamp + self.body)
            self.stats.records_sent += 1
        self.next_record += self.interval
        self.loop.call_at(self.next_record, self._record)

    def _input(self) -> None:
        if not self.running:
            return
        transport = self.pair.tech.transport
        if transport is None or transport.is_closing():
            return
        stamp = (time.monotonic_ns() ^ MASK64).to_bytes(8, "big")
        transport.write(_header(0x2, INPUT_RECORD) + stamp + self.body[: INPUT_RECORD - 8])
        self.next_input += INPUT_INTERVAL
        self.loop.call_at(self.next_input, self._input)


async def pair_sessions(spec: dict[str, Any], stats: Stats) -> list[Pair]:
    """Connect and pair every session of the spec (technician first, as in real use)."""
    pairs: list[Pair] = []
    semaphore = asyncio.Semaphore(32)

    async def one(session: dict[str, Any]) -> None:
        async with semaphore:
            tech = await open_end(session["tech_port"], stats, spec["token"])
            await claim(tech, "technician", session["nameplate"])
            agent = await open_end(session["agent_port"], stats, source=session["source"])
            await claim(agent, "agent", session["nameplate"])
            await asyncio.gather(paired(tech), paired(agent))
            pairs.append(Pair(agent, tech))

    await asyncio.gather(*(one(s) for s in spec["sessions"]))
    return pairs


async def pair_through_peer(spec: dict[str, Any], stats: Stats) -> list[Pair]:
    """The peer: socat forwards each agent connection to a listener (the technician)."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Queue[WsEnd] = asyncio.Queue()

    def accept() -> WsEnd:
        end = WsEnd(stats, raw=True)
        accepted.put_nowait(end)
        return end

    listener = await loop.create_server(accept, "127.0.0.1", spec["peer_listen_port"])
    pairs = []
    for session in spec["sessions"]:
        _, agent = await loop.create_connection(
            lambda: WsEnd(stats, raw=True),
            "127.0.0.1",
            spec["peer_port"],
            local_addr=(session["source"], 0),
        )
        pairs.append(Pair(agent, await asyncio.wait_for(accepted.get(), 10)))
    listener.close()
    return pairs


async def run_worker(spec: dict[str, Any], pipe: Connection) -> None:
    stats = Stats()
    loop = asyncio.get_running_loop()
    if spec["mode"] == "churn":
        await churn(spec, stats, pipe)
        return
    pairs = await (pair_through_peer if spec.get("peer") else pair_sessions)(spec, stats)
    pipe.send(("paired", len(pairs)))
    streamers = []
    if spec["mode"] == "stream":
        body = os.urandom(spec["record"] - 8)
        count = len(pairs)
        streamers = [
            Streamer(p, spec["rate"], stats, body, (i + spec["offset"]) / (count * spec["workers"]))
            for i, p in enumerate(pairs)
        ]
    while True:
        command, value = await loop.run_in_executor(None, pipe.recv)
        if command == "measure":
            stats.latencies_ns.clear()
            stats.bytes_received = stats.records_sent = stats.records_skipped = 0
            stats.measuring = True
        elif command == "report":
            stats.measuring = False
            pipe.send(
                (
                    "report",
                    {
                        "latencies_ns": stats.latencies_ns,
                        "bytes_received": stats.bytes_received,
                        "records_sent": stats.records_sent,
                        "records_skipped": stats.records_skipped,
                        "closed": sum(p.agent.closed.done() or p.tech.closed.done() for p in pairs),
                    },
                )
            )
        elif command == "stop":
            for streamer in streamers:
                streamer.running = False
            for p in pairs:
                for end in (p.agent, p.tech):
                    if end.transport is not None:
                        end.transport.close()
            await asyncio.sleep(0.2)
            return


async def http_post_session(port: int, token: str, ticket: str) -> str:
    """POST /api/sessions on a raw connection; return the nameplate."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"ticket_id": ticket}).encode()
    writer.write(
        (
            f"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
    )
    raw = await reader.read()
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    if b" 201 " not in head.split(b"\r\n")[0]:
        raise ConnectionError(f"creating a session failed: {head[:80]!r} {payload[:200]!r}")
    return str(json.loads(payload)["nameplate"])


async def churn(spec: dict[str, Any], stats: Stats, pipe: Connection) -> None:
    """Sessions opening, exchanging ten records and closing, ``concurrent`` at a time."""
    deadline = time.monotonic() + spec["seconds"]
    body = os.urandom(RECORD - 8)
    done = [0]
    counter = [spec["offset"]]
    ports = spec["ports"]

    async def one_session(index: int) -> None:
        tech_port = ports[index % len(ports)]
        agent_port = ports[(index + 1) % len(ports)]
        nameplate = await http_post_session(tech_port, spec["token"], f"CHURN-{index}")
        tech = await open_end(tech_port, stats, spec["token"])
        await claim(tech, "technician", nameplate)
        agent = await open_end(agent_port, stats, source=source_address(index % 60000, 2))
        await claim(agent, "agent", nameplate)
        await asyncio.gather(paired(tech), paired(agent))
        header = _header(0x2, RECORD)
        for _ in range(10):
            stamp = (time.monotonic_ns() ^ MASK64).to_bytes(8, "big")
            agent.send(header + stamp + body)
            await asyncio.sleep(0.05)
        agent.send(client_frame(0x1, b'{"type":"end","reason":"churn"}'))
        await asyncio.wait_for(asyncio.gather(tech.closed, agent.closed), 10)

    async def loop_sessions() -> None:
        while time.monotonic() < deadline:
            counter[0] += spec["workers"]
            try:
                await asyncio.wait_for(one_session(counter[0]), 30)
                done[0] += 1
            except (OSError, ConnectionError, TimeoutError):
                stats.errors += 1

    async def progress() -> None:
        while True:
            await asyncio.sleep(5)
            pipe.send(("progress", {"sessions": done[0], "errors": stats.errors}))

    reporter = asyncio.create_task(progress())
    await asyncio.gather(*(loop_sessions() for _ in range(spec["concurrent"])))
    reporter.cancel()
    pipe.send(("report", {"sessions": done[0], "errors": stats.errors}))


def worker_main(spec: dict[str, Any], pipe: Connection) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if spec.get("cpus"):
        os.sched_setaffinity(0, spec["cpus"])
    asyncio.run(run_worker(spec, pipe))


# ---------------------------------------------------------------------------
# The relay(s) under test
# ---------------------------------------------------------------------------


def spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Relays:
    """``nodes`` relay processes (with a redis-server when more than one)."""

    def __init__(self, nodes: int, max_connections: int) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="puente-load-"))
        self.redis: subprocess.Popen[bytes] | None = None
        env = dict(os.environ)
        if nodes > 1:
            redis_port = spare_port()
            self.redis = subprocess.Popen(
                ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
                stdout=subprocess.DEVNULL,
            )
            time.sleep(0.5)
            env["PUENTE_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        self.procs: list[subprocess.Popen[str]] = []
        self.ports: list[int] = []
        for i in range(nodes):
            log = open(self.tmp / f"relay{i}.log", "w")  # noqa: SIM115 - closed with the process
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "relay.cli",
                    "serve",
                    "--data-dir",
                    str(self.tmp / "data"),
                    "--port",
                    "0",
                    "--max-connections",
                    str(max_connections),
                    # Every simulated end comes from loopback: lift the per-address caps.
                    "--max-connections-per-ip",
                    str(max_connections),
                    "--max-half-open-per-ip",
                    str(max_connections),
                    "--sessions-per-minute",
                    "100000",
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
                preexec_fn=_forwarder_setup,
            )
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.search(r":(\d+)$", line.strip())
            if not match:
                raise RuntimeError(f"relay did not start: {line!r}; see {self.tmp}")
            self.procs.append(proc)
            self.ports.append(int(match.group(1)))
        store = SQLiteStore(self.tmp / "data")
        self.token = store.add_technician("Load Technician", time.time())[1]
        store.close()

    def rss(self) -> int:
        """Resident memory of all relay processes, in bytes."""
        total = 0
        for proc in self.procs:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        return total

    def cpu_seconds(self) -> float:
        return cpu_seconds(proc.pid for proc in self.procs)

    def metrics(self, node: int = 0) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[node]}/metrics") as reply:
            return str(reply.read().decode())

    async def create_sessions(self, count: int) -> list[tuple[str, int]]:
        """``count`` sessions via REST, spread over the nodes; (nameplate, node index)."""
        semaphore = asyncio.Semaphore(16)
        made: list[tuple[str, int]] = []

        async def one(i: int) -> None:
            async with semaphore:
                node = i % len(self.ports)
                made.append((await http_post_session(self.ports[node], self.token, f"L-{i}"), node))
                if len(made) % 500 == 0:
                    progress(f"created {len(made)}/{count} sessions")

        await asyncio.gather(*(one(i) for i in range(count)))
        return made

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            if proc.stdout:
                proc.stdout.close()
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


#: With --pin: the CPUs of the forwarders (relays, socat) and of the load generator.
PIN: dict[str, list[int]] = {}


def _forwarder_setup() -> None:
    """In a relay or socat process before it starts: file limit up; its CPUs with --pin."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if PIN:
        os.sched_setaffinity(0, PIN["forwarder"])


def cpu_seconds(pids: Any) -> float:
    """User plus system CPU time of these processes so far."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def progress(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------


class Workers:
    def __init__(self, specs: list[dict[str, Any]]) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        for spec in specs:
            mine, theirs = context.Pipe()
            proc = context.Process(target=worker_main, args=(spec, theirs), daemon=True)
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)

    def expect(self, kind: str, timeout: float = 600) -> list[Any]:
        replies = []
        for pipe in self.pipes:
            while True:
                if not pipe.poll(timeout):
                    raise RuntimeError(f"a worker sent no {kind!r} in {timeout} s")
                got, value = pipe.recv()
                if got == kind:
                    replies.append(value)
                    break
        return replies

    def tell(self, command: str) -> None:
        for pipe in self.pipes:
            pipe.send((command, None))

    def join(self) -> None:
        for proc in self.procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()


def worker_count(sessions: int, requested: int) -> int:
    # Each worker holds two sockets per session; stay well under the open-file limit.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return max(requested, -(-2 * sessions // (hard - 200)))


def split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[i::parts] for i in range(parts)]


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index] / 1e6


def stream_run(args: argparse.Namespace, through_peer: bool) -> dict[str, Any]:
    rate = args.mbps * 1e6 / 8
    relays: Relays | None = None
    socats: list[subprocess.Popen[bytes]] = []
    workers = worker_count(args.sessions, args.workers)
    sessions: list[dict[str, Any]]
    specs: list[dict[str, Any]]
    try:
        if through_peer:
            sessions = [{"source": source_address(i)} for i in range(args.sessions)]
            specs = []
            for part in split(sessions, workers):
                listen, port = spare_port(), spare_port()
                socats.append(
                    subprocess.Popen(
                        [
                            "socat",
                            "-b",
                            "65536",
                            f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,nodelay,backlog=1024",
                            f"TCP:127.0.0.1:{listen},nodelay",
                        ],
                        preexec_fn=_forwarder_setup,
                    )
                )
                specs.append({"peer_port": port, "peer_listen_port": listen, "sessions": part})
            time.sleep(0.5)
        else:
            relays = Relays(args.nodes, max_connections=2 * args.sessions + 100)
            made = asyncio.run(relays.create_sessions(args.sessions))
            ports = relays.ports
            sessions = [
                {
                    "nameplate": nameplate,
                    "tech_port": ports[node],
                    "agent_port": ports[(node + 1) % len(ports)],
                    "source": source_address(i),
                }
                for i, (nameplate, node) in enumerate(made)
            ]
            specs = [{"sessions": part, "token": relays.token} for part in split(sessions, workers)]
        for w, spec in enumerate(specs):
            spec.update(
                mode="stream",
                rate=rate,
                record=args.record,
                peer=through_peer,
                offset=w,
                workers=workers,
                cpus=PIN.get("generator"),
            )
        pool = Workers(specs)
        started = time.monotonic()
        pool.expect("paired")
        progress(
            f"{args.sessions} sessions paired in {time.monotonic() - started:.1f} s; warming up"
        )
        time.sleep(args.warmup)
        cpu_before = relays.cpu_seconds() if relays else 0.0
        generator_before = cpu_seconds(proc.pid for proc in pool.procs)
        pool.tell("measure")
        time.sleep(args.seconds)
        pool.tell("report")
        reports = pool.expect("report")
        cpu = (relays.cpu_seconds() - cpu_before) / args.seconds if relays else 0.0
        generator_cpu = (
            cpu_seconds(proc.pid for proc in pool.procs) - generator_before
        ) / args.seconds
        rss = relays.rss() if relays else 0
        histogram = relays.metrics() if relays else ""
        pool.tell("stop")
        pool.join()
    finally:
        if relays:
            relays.close()
        for proc in socats:
            proc.terminate()
            proc.wait()
    latencies = sorted(x for r in reports for x in r["latencies_ns"])
    received = sum(r["bytes_received"] for r in reports)
    return {
        "p50": percentile(latencies, 0.50),
        "p90": percentile(latencies, 0.90),
        "p99": percentile(latencies, 0.99),
        "p999": percentile(latencies, 0.999),
        "max": latencies[-1] / 1e6 if latencies else float("nan"),
        "samples": len(latencies),
        "mbps_per_session": received * 8 / args.seconds / args.sessions / 1e6,
        "skipped": sum(r["records_skipped"] for r in reports),
        "sent": sum(r["records_sent"] for r in reports),
        "closed": sum(r["closed"] for r in reports),
        "relay_cpu": cpu,
        "generator_cpu": generator_cpu,
        "relay_rss": rss,
        "relay_p99_bucket": _histogram_p99(histogram) if histogram else None,
    }


def _histogram_p99(text: str) -> str:
    buckets = [
        (m.group(1), float(m.group(2)))
        for m in re.finditer(
            r'puente_forwarding_latency_seconds_bucket\{le="([^"]+)"\} (\S+)', text
        )
    ]
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= 0.99 * total:
            return f"<= {float(bound) * 1000:g} ms" if bound != "+Inf" else "> 2.5 s"
    return "n/a"


def command_stream(args: argparse.Namespace) -> int:
    title = (
        f"stream: {args.sessions} sessions x {args.mbps} Mb/s in {args.record}-byte records, "
        f"{args.nodes} relay node(s)"
    )
    print(title)
    peer = None if args.no_peer else stream_run(args, through_peer=True)
    relay = stream_run(args, through_peer=False)
    print(f"{'':24}{'relay':>12}{'socat (peer)':>14}{'added':>10}")
    for key in ("p50", "p90", "p99", "p999", "max"):
        if peer:
            print(
                f"latency {key:<16}{relay[key]:>10.2f}ms{peer[key]:>12.2f}ms"
                f"{relay[key] - peer[key]:>8.2f}ms"
            )
        else:
            print(f"latency {key:<16}{relay[key]:>10.2f}ms{'-':>14}{'-':>10}")
    print(f"throughput per session  {relay['mbps_per_session']:>10.3f}Mb/s (goal {args.mbps})")
    print(f"records sent / skipped  {relay['sent']} / {relay['skipped']} (skipped: sender backlog)")
    print(f"latency samples         {relay['samples']}")
    print(f"sessions lost           {relay['closed']}")
    print(f"relay CPU               {relay['relay_cpu'] * 100:.0f}% of one core")
    print(
        f"load generator CPU      {relay['generator_cpu'] * 100:.0f}% of one core"
        + (f" (with socat: {peer['generator_cpu'] * 100:.0f}%)" if peer else "")
    )
    print(f"relay memory            {relay['relay_rss'] / 2**20:.0f} MiB")
    print(
        f"relay's own p99 bucket  {relay['relay_p99_bucket']} (puente_forwarding_latency_seconds)"
    )
    complete = relay["skipped"] == 0 and relay["closed"] == 0
    if peer:
        added = relay["p99"] - peer["p99"]
        verdict = "met" if added < GOAL_P99_ADDED_MS and complete else "NOT met"
        print(
            f"p99 added latency {added:.2f} ms = {added / GOAL_P99_ADDED_MS:.2f} x the "
            f"{GOAL_P99_ADDED_MS:g} ms goal; relay p99 / peer p99 = "
            f"{relay['p99'] / peer['p99']:.2f}; goal {verdict}"
        )
    # The whole one-way latency through the relay bounds what it adds, whatever the peer.
    verdict = "met" if relay["p99"] < GOAL_P99_ADDED_MS and complete else "not shown"
    print(
        f"p99 through the relay {relay['p99']:.2f} ms, an upper bound on the latency it adds: "
        f"goal {verdict} by the bound alone"
    )
    return 0


def command_idle(args: argparse.Namespace) -> int:
    print(f"idle: {args.sessions} paired sessions, {args.nodes} relay node(s)")
    relays = Relays(args.nodes, max_connections=2 * args.sessions + 100)
    try:
        time.sleep(1)
        before = relays.rss()
        made = asyncio.run(relays.create_sessions(args.sessions))
        ports = relays.ports
        sessions = [
            {
                "nameplate": nameplate,
                "tech_port": ports[node],
                "agent_port": ports[(node + args.cross) % len(ports)],
                "source": source_address(i),
            }
            for i, (nameplate, node) in enumerate(made)
        ]
        workers = worker_count(args.sessions, args.workers)
        specs = [
            {
                "mode": "idle",
                "sessions": part,
                "token": relays.token,
                "offset": w,
                "workers": workers,
            }
            for w, part in enumerate(split(sessions, workers))
        ]
        started = time.monotonic()
        pool = Workers(specs)
        pool.expect("paired")
        progress(f"paired in {time.monotonic() - started:.0f} s; holding {args.hold:.0f} s")
        samples = []
        for _ in range(int(args.hold // 5)):
            time.sleep(5)
            samples.append(relays.rss())
        pool.tell("report")
        closed = sum(r["closed"] for r in pool.expect("report"))
        after = relays.rss()
        metrics = relays.metrics()
        pool.tell("stop")
        pool.join()
    finally:
        relays.close()
    active = re.search(r"^puente_sessions_active (\S+)", metrics, re.M)
    per_session = (after - before) / args.sessions
    print(f"relay memory before     {before / 2**20:.1f} MiB")
    print(
        f"relay memory after      {after / 2**20:.1f} MiB (samples {[s // 2**20 for s in samples]})"
    )
    print(f"sessions active (node0) {active.group(1) if active else '?'}; lost {closed}")
    print(
        f"per paired session      {per_session / 1024:.1f} KiB = "
        f"{per_session / GOAL_IDLE_BYTES:.2f} x the 64 KiB goal "
        f"({'met' if per_session < GOAL_IDLE_BYTES and closed == 0 else 'NOT met'})"
    )
    return 0


def command_churn(args: argparse.Namespace) -> int:
    print(
        f"churn: {args.concurrent} concurrent sessions for {args.seconds:.0f} s, {args.nodes} node(s)"
    )
    relays = Relays(args.nodes, max_connections=10000)
    samples: list[tuple[float, int]] = []
    try:
        time.sleep(1)
        workers = args.workers
        specs = [
            {
                "mode": "churn",
                "ports": relays.ports,
                "token": relays.token,
                "seconds": args.seconds,
                "concurrent": args.concurrent // workers,
                "offset": w,
                "workers": workers,
            }
            for w in range(workers)
        ]
        pool = Workers(specs)
        start = time.monotonic()
        last_print = start
        totals = {i: {"sessions": 0, "errors": 0} for i in range(workers)}
        while any(p.is_alive() for p in pool.procs):
            for i, pipe in enumerate(pool.pipes):
                with contextlib.suppress(EOFError):  # a worker that finished
                    while pipe.poll(0):
                        kind, value = pipe.recv()
                        totals[i] = value
            now = time.monotonic()
            samples.append((now - start, relays.rss()))
            if now - last_print >= 30:
                last_print = now
                done = sum(t["sessions"] for t in totals.values())
                errors = sum(t["errors"] for t in totals.values())
                progress(
                    f"{now - start:4.0f} s: {done} sessions done, {errors} failed, "
                    f"relay {samples[-1][1] / 2**20:.1f} MiB"
                )
            time.sleep(2)
        for i, pipe in enumerate(pool.pipes):
            with contextlib.suppress(EOFError):
                while pipe.poll(0):
                    kind, value = pipe.recv()
                    totals[i] = value
        pool.join()
        if any(p.exitcode for p in pool.procs):
            raise RuntimeError("a load generator failed; see its traceback above")
    finally:
        relays.close()
    done = sum(t["sessions"] for t in totals.values())
    errors = sum(t["errors"] for t in totals.values())
    # Warm-up: the per-address join limiter holds a minute of addresses, SQLite's page
    # cache fills; compare the end with the level reached after two minutes.
    warm = [rss for t, rss in samples if 110 <= t <= 130] or [samples[len(samples) // 4][1]]
    tail = [rss for t, rss in samples if t >= samples[-1][0] - 20]
    second_half = [(t, rss) for t, rss in samples if t >= samples[-1][0] / 2]
    slope = _slope(second_half) * 60 / 1024  # KiB per minute
    growth = statistics.mean(tail) / statistics.mean(warm) - 1
    print(f"sessions completed      {done} ({done / args.seconds:.1f}/s), failed {errors}")
    print(f"relay memory at 2 min   {statistics.mean(warm) / 2**20:.1f} MiB (after warm-up)")
    print(f"relay memory at the end {statistics.mean(tail) / 2**20:.1f} MiB ({growth * 100:+.1f}%)")
    print(f"trend, second half      {slope:+.1f} KiB/min")
    timeline = [
        f"{t / 60:.0f}m {rss / 2**20:.1f}" for t, rss in samples[:: max(1, len(samples) // 10)]
    ]
    print(f"memory timeline (MiB)   {', '.join(timeline)}")
    return 0


def _slope(points: list[tuple[float, int]]) -> float:
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    stream = modes.add_parser("stream", help="sessions streaming; latency against socat")
    stream.add_argument("--sessions", type=int, default=1000)
    stream.add_argument("--mbps", type=float, default=1.4, help="per session (default 1.4)")
    stream.add_argument("--seconds", type=float, default=30, help="measured window")
    stream.add_argument("--warmup", type=float, default=5)
    stream.add_argument("--no-peer", action="store_true", help="skip the socat run")
    stream.add_argument(
        "--record",
        type=int,
        default=RECORD,
        help="bytes per record (default 16384, a screen update; 65536 is a bulk fragment)",
    )
    idle = modes.add_parser("idle", help="idle paired sessions; memory per session")
    idle.add_argument("--sessions", type=int, default=9990)
    idle.add_argument("--hold", type=float, default=30, help="seconds to hold them")
    idle.add_argument(
        "--cross", type=int, default=0, help="agent on node i+CROSS (default 0: same node)"
    )
    churn_mode = modes.add_parser("churn", help="sessions opening and closing; memory trend")
    churn_mode.add_argument("--seconds", type=float, default=600)
    churn_mode.add_argument("--concurrent", type=int, default=100)
    for mode in (stream, idle, churn_mode):
        mode.add_argument("--nodes", type=int, default=1, choices=(1, 3))
        mode.add_argument("--workers", type=int, default=2, help="generator processes")
        mode.add_argument(
            "--nice",
            type=int,
            default=0,
            help="change the benchmark's scheduling priority, and its session's under "
            "autogroup scheduling (root may use e.g. -10 on a machine shared with other "
            "jobs; relay and peer alike)",
        )
        mode.add_argument(
            "--pin",
            action="store_true",
            help="run the relays (or socat) on the first CPU and the load generator on the "
            "others, as if the generator were another machine (relay and peer alike)",
        )
    args = parser.parse_args()
    if args.nice:
        # Inherited by every process started here (relays, socat, Redis, generators),
        # so the peer and the relay are favoured alike over other jobs on the machine.
        # With autogroup scheduling the weight that counts against other sessions is the
        # session's own (/proc/self/autogroup); a process's nice only ranks it within.
        os.nice(args.nice)
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(str(args.nice))
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            parser.error("--pin needs at least two CPUs")
        PIN.update(forwarder=cpus[:1], generator=cpus[1:])
    load = os.getloadavg()[0]
    print(
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"1-min load {load:.2f} at start, nice {os.nice(0)}"
        + (
            f", forwarders on CPU {PIN['forwarder']}, generator on {PIN['generator']}"
            if PIN
            else ""
        )
    )
    return {"stream": command_stream, "idle": command_idle, "churn": command_churn}[args.mode](args)


if __name__ == "__main__":
    raise SystemExit(main())
