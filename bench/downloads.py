"""Agent downloads against a running session: does serving files slow the forwarding?

Issue 19, acceptance 3: 50 concurrent downloads of a 30 MB agent must not delay the
relay's forwarding of a running session by more than 5 ms p99. One real relay process
(``puente-relay serve``) holds a paired session (a technician and an agent over real
WebSockets; the agent echoes every record) and serves the agent from the join page of
a second, waiting session. The technician sends 100-byte records one after the other;
each round trip crosses the relay twice. The peer is the same relay in the same run
with no downloads: phases alternate (quiet, downloading, quiet, downloading) so that
other load on the machine hits both alike, and the report prints the p99 difference
and ratio. The downloaders run in another process, each download from its own
loopback address (127.1.x.y), as real customers would, so per-address limits apply as
in production. The relay's resident memory is sampled all along.

Examples::

    python bench/downloads.py                      # 50 x 30 MB, 2 rounds of 10 s
    python bench/downloads.py --concurrent 50 --size-mb 30 --seconds 20 --json
    python bench/downloads.py --quick              # a smoke run: figures mean nothing
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from protocol import envelope  # noqa: E402
from protocol.envelope import Role  # noqa: E402

WS_OPTIONS: dict[str, Any] = {"compression": None, "max_size": envelope.MAX_RECORD_SIZE + 4096}
GOAL_MS = 5.0


class BenchError(Exception):
    """A measurement could not be made; the message says what went wrong and what to do."""


# ---------------------------------------------------------------------------
# The relay and its sessions
# ---------------------------------------------------------------------------


def cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "relay.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    if done.returncode != 0:
        raise BenchError(f"puente-relay {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


def start_relay(data_dir: Path, rate: float) -> tuple[subprocess.Popen[str], int]:
    relay = subprocess.Popen(
        [sys.executable, "-m", "relay.cli", "serve", "--data-dir", str(data_dir), "--port", "0"]
        + ["--log-level", "WARNING", "--download-rate", str(rate)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert relay.stdout is not None
    line = relay.stdout.readline()
    if "listening on" not in line:
        relay.kill()
        raise BenchError(f"the relay did not start: {line!r}")
    return relay, int(line.strip().rsplit(":", 1)[1])


def create_session(port: int, token: str, ticket: str) -> dict[str, Any]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "POST",
            "/api/sessions",
            body=json.dumps({"ticket_id": ticket}),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    if response.status != 201:
        raise BenchError(f"creating a session failed: HTTP {response.status} {payload!r}")
    session: dict[str, Any] = json.loads(payload)
    return session


async def claim(url: str, role: Role, nameplate: str, token: str | None) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    ws = await connect(url + envelope.WS_PATH, additional_headers=headers, **WS_OPTIONS)
    await ws.send(envelope.claim(role, nameplate))
    return ws


async def wait_paired(ws: ClientConnection) -> None:
    async with asyncio.timeout(30):
        while True:
            message = envelope.decode(await ws.recv())
            if message["type"] == "paired":
                return
            if message["type"] != "waiting":
                raise BenchError(f"the relay refused a claim: {message}")


async def echo(ws: ClientConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def round_trips(tech: ClientConnection, seconds: float) -> list[float]:
    """Sequential 100-byte round trips (technician -> agent -> technician) for ``seconds``."""
    payload = os.urandom(100)
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        await tech.send(payload)
        if await tech.recv() != payload:
            raise BenchError("the agent's echo differs from what was sent")
        times.append(time.perf_counter() - start)
        await asyncio.sleep(0.002)  # about 400 records a second: a busy input channel
    return times


# ---------------------------------------------------------------------------
# The downloaders (a child process)
# ---------------------------------------------------------------------------


async def download_loop(port: int, path: str, next_ip: list[int], stop: float) -> list[int]:
    """Download again and again until ``stop``; return [bytes, whole downloads, refusals]."""
    got = [0, 0, 0]
    buffer = bytearray(256 * 1024)
    while time.monotonic() < stop:
        n = next_ip[0]
        next_ip[0] += 1
        ip = f"127.1.{n // 250 % 250}.{n % 250 + 1}"
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ip, 0))
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200 "):
            got[2] += 1
            writer.close()
            await asyncio.sleep(0.1)
            continue
        while chunk := await reader.read(len(buffer)):
            got[0] += len(chunk)
        got[1] += 1
        writer.close()
    return got


async def downloader_main(port: int, path: str, concurrent: int, seconds: float) -> None:
    stop = time.monotonic() + seconds
    next_ip = [0]
    started = time.monotonic()
    results = await asyncio.gather(
        *(download_loop(port, path, next_ip, stop) for _ in range(concurrent))
    )
    took = time.monotonic() - started
    total = [sum(column) for column in zip(*results, strict=True)]
    print(
        json.dumps({"bytes": total[0], "downloads": total[1], "refused": total[2], "seconds": took})
    )


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def sample_rss(pid: int, samples: list[int], stop: asyncio.Event) -> None:
    process = psutil.Process(pid)
    while not stop.is_set():
        samples.append(process.memory_info().rss)
        await asyncio.sleep(0.1)


async def run(options: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="puente-bench-downloads-"))
    data = work / "relay"
    data.mkdir()
    agent = work / "puente-agent"
    with agent.open("wb") as out:
        for _ in range(options.size_mb):
            out.write(os.urandom(1024 * 1024))
    token = cli(data, "technician", "add", "Bench").strip().splitlines()[-1]
    cli(data, "downloads", "add", str(agent), "--os", "linux")
    relay, port = start_relay(data, options.rate)
    url = f"ws://127.0.0.1:{port}"
    quiet: list[float] = []
    loaded: list[float] = []
    transfers: list[dict[str, Any]] = []
    rss: list[int] = []
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(relay.pid, rss, stop_sampling))
    try:
        running = await asyncio.to_thread(create_session, port, token, "BENCH-RUNNING")
        waiting = await asyncio.to_thread(create_session, port, token, "BENCH-JOIN-PAGE")
        tech = await claim(url, Role.TECHNICIAN, running["nameplate"], token)
        agent_ws = await claim(url, Role.AGENT, running["nameplate"], None)
        await asyncio.gather(wait_paired(tech), wait_paired(agent_ws))
        echoing = asyncio.create_task(echo(agent_ws))
        await round_trips(tech, 1.0)  # warm up
        path = f"/join/{waiting['session_id']}/agent/linux"
        for _ in range(options.rounds):
            quiet += await round_trips(tech, options.seconds)
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--downloader",
                str(port),
                path,
                str(options.concurrent),
                str(options.seconds + 1),
                stdout=subprocess.PIPE,
            )
            await asyncio.sleep(0.5)  # let every download start
            loaded += await round_trips(tech, options.seconds)
            out, _ = await child.communicate()
            if child.returncode != 0:
                raise BenchError("the downloaders failed (their error is above)")
            transfers.append(json.loads(out))
        echoing.cancel()
        await tech.close()
        await agent_ws.close()
    finally:
        stop_sampling.set()
        await sampler
        relay.terminate()
        relay.wait(30)
    moved = sum(t["bytes"] for t in transfers)
    seconds = sum(t["seconds"] for t in transfers)
    figures = {
        "concurrent": options.concurrent,
        "relay_download_rate_mb_per_s": options.rate,
        "size_mb": options.size_mb,
        "rounds": options.rounds,
        "round_trips": {"quiet": len(quiet), "downloading": len(loaded)},
        "quiet_ms": {q: percentile(quiet, f) * 1e3 for q, f in (("p50", 0.5), ("p99", 0.99))},
        "downloading_ms": {
            q: percentile(loaded, f) * 1e3 for q, f in (("p50", 0.5), ("p99", 0.99))
        },
        "downloads": sum(t["downloads"] for t in transfers),
        "refused": sum(t["refused"] for t in transfers),
        "download_mb_per_s": moved / 1e6 / seconds if seconds else 0.0,
        "relay_rss_mb": {"min": min(rss) / 1e6, "max": max(rss) / 1e6},
    }
    added = figures["downloading_ms"]["p99"] - figures["quiet_ms"]["p99"]
    figures["added_p99_ms"] = added
    figures["p99_ratio"] = figures["downloading_ms"]["p99"] / figures["quiet_ms"]["p99"]
    figures["goal_met"] = added <= GOAL_MS
    return figures


def render(f: dict[str, Any]) -> str:
    q, d = f["quiet_ms"], f["downloading_ms"]
    label = f"{f['concurrent']} downloads of {f['size_mb']} MB"
    return "\n".join(
        [
            f"Forwarding round trips through the relay (2 crossings each), {f['rounds']} rounds:",
            f"  {'':34}{'p50 ms':>10}{'p99 ms':>10}{'n':>8}",
            f"  {'no downloads (peer, same run)':34}{q['p50']:>10.2f}{q['p99']:>10.2f}"
            f"{f['round_trips']['quiet']:>8}",
            f"  {label:34}{d['p50']:>10.2f}{d['p99']:>10.2f}{f['round_trips']['downloading']:>8}",
            f"  p99 difference {f['added_p99_ms']:+.2f} ms, ratio {f['p99_ratio']:.2f}x "
            f"[{'met   ' if f['goal_met'] else 'MISSED'}] goal: at most +{GOAL_MS:.0f} ms",
            f"Downloads: {f['downloads']} whole files ({f['refused']} refused by limits), "
            f"{f['download_mb_per_s']:.0f} MB/s in all (relay's --download-rate "
            f"{f['relay_download_rate_mb_per_s']:g} MB/s)",
            f"Relay memory (RSS): {f['relay_rss_mb']['min']:.1f} to "
            f"{f['relay_rss_mb']['max']:.1f} MB over the run",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--downloader"]:
        port, path, concurrent, seconds = argv[1:5]
        asyncio.run(downloader_main(int(port), path, int(concurrent), float(seconds)))
        return 0
    parser = argparse.ArgumentParser(
        prog="python bench/downloads.py",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--concurrent", type=int, default=50, help="downloads at once (50)")
    parser.add_argument("--size-mb", type=int, default=30, help="the agent's size (30 MB)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase (10 s)")
    parser.add_argument("--rounds", type=int, default=2, help="quiet+downloading pairs (2)")
    parser.add_argument(
        "--rate", type=float, default=64.0, help="the relay's --download-rate, MB/s (64)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 x 2 MB, 1 s")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    options = parser.parse_args(argv)
    if options.quick:
        options.concurrent, options.size_mb, options.seconds, options.rounds = 4, 2, 1.0, 1
    try:
        figures = asyncio.run(run(options))
    except BenchError as exc:
        print(f"bench/downloads.py: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(figures, indent=1) if options.json else render(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
