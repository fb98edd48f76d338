"""Screen benchmark: Puente against x11vnc with a real VNC client, in one run.

    python bench/screen_vs_vnc.py [--seconds 8] [--clicks 30] [--only puente|vnc]

Two Xvfb displays: the customer's (1920x1080, scripted scenes from
bench/screen_scenes.py) and the technician's (2000x1300), where the real viewer of
each system draws the remote screen at 1:1:

* Puente: agent process -> byte-counting proxy -> relay process <- the Puente
  viewer (PySide6, bench/viewer_driver.py) with view and control granted.
* VNC: x11vnc (Debian, defaults) -> the same byte-counting proxy <- TigerVNC's
  vncviewer (Debian, defaults: automatic encoding and quality).

Both are measured the same way, on the technician's display:

* bytes per second: both directions through the proxy (customer side);
* frames delivered per second: how often a band of the scene's moving area changes
  on the technician's display (sampled every ~2 ms);
* click-to-pixel: a click injected (XTest) on the technician's display over the
  remote click target, until the target's new colour shows on that display;
* agent CPU: CPU time of the Puente agent process / of x11vnc, per wall second.

Needs: Xvfb, x11vnc, tigervnc-viewer (apt); the project's dev install (PySide6).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import mss
import mss.tools
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.screen_scenes import LAYOUT, MARKER_RGB, PROBES, TARGET_RGB  # noqa: E402
from tests.support.xdisplay import start_xvfb  # noqa: E402

SCENES = tuple(os.environ.get("BENCH_SCENES", "static typing scroll drag slideshow video").split())
CUSTOMER_SIZE = (1920, 1080)
TECHNICIAN_SIZE = (2000, 1300)


# Processes and displays ---------------------------------------------------------------


class Lines:
    """A subprocess whose stdout lines are collected by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str], stdin: bool = True) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=None if os.environ.get("BENCH_DEBUG") else subprocess.DEVNULL,
            text=True,
            env={**os.environ, **env},
        )
        self.lines: list[str] = []
        self._cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()

    def expect(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cv:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and seen == len(self.lines):
                    raise RuntimeError(f"no {pattern!r} from {self.proc.args!r}: {self.lines}")
                self._cv.wait(min(left, 0.5))

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class CountingProxy:
    """TCP proxy on loopback that counts the bytes crossing it in both directions."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.bytes = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    self.bytes += len(data)
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def serve() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await asyncio.Event().wait()

        self._loop.run_until_complete(serve())


# Measurements on the technician's display ---------------------------------------------


def find_offset(display: str, timeout: float = 60) -> tuple[int, int]:
    """Where remote (0, 0) is drawn on the technician's display (found by the marker)."""
    mx, my, mw, mh = LAYOUT["marker"]
    deadline = time.monotonic() + timeout
    with mss.MSS(display=display) as sct:
        while time.monotonic() < deadline:
            shot = sct.grab(sct.monitors[0])
            rgb = np.frombuffer(shot.rgb, np.uint8).reshape(shot.height, shot.width, 3)
            hits = np.all(np.abs(rgb.astype(int) - MARKER_RGB) <= 3, axis=2)
            ys, xs = np.nonzero(hits)
            if len(xs) >= mw * mh // 2:
                return int(xs.min()) - mx, int(ys.min()) - my
            time.sleep(0.25)
    raise RuntimeError("the remote screen never appeared on the technician's display")


def count_frames(
    display: str, offset: tuple[int, int], probe: tuple[int, int, int, int], seconds: float
) -> float:
    """Changes per second of the probe band as drawn on the technician's display."""
    x, y, w, h = probe
    region = {"left": x + offset[0], "top": y + offset[1], "width": w, "height": h}
    changes = 0
    with mss.MSS(display=display) as sct:
        last = bytes(sct.grab(region).raw)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            raw = bytes(sct.grab(region).raw)
            if raw != last:
                changes += 1
                last = raw
            time.sleep(0.002)
    return changes / seconds


def target_colour(sct: mss.MSS, region: dict[str, int]) -> tuple[int, int, int]:
    pixel = sct.grab(region).pixel(0, 0)
    return (int(pixel[0]), int(pixel[1]), int(pixel[2]))


def click_latencies(display: str, offset: tuple[int, int], clicks: int) -> list[float]:
    """Seconds from a click over the target to its new colour on the technician's display."""
    from Xlib import X
    from Xlib import display as xdisplay
    from Xlib.ext import xtest

    tx, ty, tw, th = LAYOUT["target"]
    cx, cy = tx + tw // 2 + offset[0], ty + th // 2 + offset[1]
    # Read the colour away from the pointer, which viewers draw over the click point.
    region = {"left": tx + 4 + offset[0], "top": ty + 4 + offset[1], "width": 1, "height": 1}
    x = xdisplay.Display(display)
    results = []
    with mss.MSS(display=display) as sct:
        xtest.fake_input(x, X.MotionNotify, x=cx, y=cy)
        x.sync()
        time.sleep(0.3)
        for _ in range(clicks):
            before = target_colour(sct, region)
            started = time.monotonic()
            xtest.fake_input(x, X.ButtonPress, 1)
            xtest.fake_input(x, X.ButtonRelease, 1)
            x.sync()
            while time.monotonic() - started < 2.0:
                now = target_colour(sct, region)
                if now != before and any(
                    sum(abs(a - b) for a, b in zip(now, want, strict=True)) < 60
                    for want in TARGET_RGB
                ):
                    results.append(time.monotonic() - started)
                    break
                time.sleep(0.0005)
            else:
                if os.environ.get("BENCH_DEBUG"):
                    mss.tools.to_png(
                        *(lambda g: (g.rgb, g.size))(sct.grab(sct.monitors[0])),
                        output="/tmp/click-debug.png",
                    )
                    print(
                        "click not seen",
                        before,
                        target_colour(sct, region),
                        cx,
                        cy,
                        file=sys.stderr,
                    )
            time.sleep(0.15 + (len(results) % 5) * 0.037)  # not in step with any poll
    x.close()
    return results


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


@dataclass
class SceneResult:
    bytes_per_s: float
    fps: float
    cpu: float


@dataclass
class SystemResult:
    name: str
    scenes: dict[str, SceneResult] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)


def run_scenes(
    name: str,
    scenes_app: Lines,
    proxy: CountingProxy,
    server_pid: int,
    tech_display: str,
    seconds: float,
    clicks: int,
) -> SystemResult:
    result = SystemResult(name)
    offset = find_offset(tech_display)
    for scene in SCENES:
        scenes_app.send(f"scene {scene}")
        scenes_app.expect(rf"^scene {scene}$")
        time.sleep(2.0)  # let it settle (first full update, video detection)
        bytes_before, cpu_before, started = proxy.bytes, cpu_seconds(server_pid), time.monotonic()
        fps = count_frames(tech_display, offset, PROBES[scene], seconds)
        elapsed = time.monotonic() - started
        result.scenes[scene] = SceneResult(
            (proxy.bytes - bytes_before) / elapsed,
            fps,
            (cpu_seconds(server_pid) - cpu_before) / elapsed,
        )
        print(f"  {name:7} {scene:10} {result.scenes[scene]}", file=sys.stderr, flush=True)
    scenes_app.send("scene static")
    scenes_app.expect(r"^scene static$")
    time.sleep(1.0)
    result.latencies = click_latencies(tech_display, offset, clicks)
    return result


# The two systems ----------------------------------------------------------------------


def start_relay(work: Path, env: dict[str, str]) -> tuple[Lines, int, str]:
    """A relay process on a free loopback port and a technician token for it."""
    python = sys.executable
    relay = Lines(
        [
            python,
            "-m",
            "relay.cli",
            "serve",
            "--data-dir",
            str(work / "relay"),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        env,
        stdin=False,
    )
    try:
        port = int(relay.expect(r"listening on \S+://[^:]+:(\d+)").group(1))
        token = (
            subprocess.run(
                [
                    python,
                    "-m",
                    "relay.cli",
                    "technician",
                    "add",
                    "Bench Technician",
                    "--data-dir",
                    str(work / "relay"),
                ],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, **env},
            )
            .stdout.strip()
            .splitlines()[-1]
        )
    except BaseException:
        relay.stop()
        raise
    return relay, port, token


def start_agent(relay_url: str, code: str, display: str, work: Path, env: dict[str, str]) -> Lines:
    """The real agent on ``display``; a thread answers yes to screen view and control."""
    agent = Lines(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "--relay",
            relay_url,
            "--console",
            "--log-dir",
            str(work / "logs"),
            code,
        ],
        {**env, "DISPLAY": display},
    )

    def answer() -> None:  # the customer allows view and control
        answered = 0
        while answered < 2:
            agent.expect(r"^Allow (Screen view|Remote control)\?", timeout=120)
            with agent._cv:
                asks = sum(1 for line in agent.lines if line.startswith("Allow "))
            while answered < asks:
                agent.send("y")
                answered += 1

    threading.Thread(target=answer, daemon=True).start()
    return agent


def run_puente(
    customer: str, tech: str, scenes_app: Lines, seconds: float, clicks: int, work: Path
) -> SystemResult:
    env = {"PYTHONPATH": str(ROOT)}
    relay, port, token = start_relay(work, env)
    agent = viewer = None
    try:
        proxy = CountingProxy(port)
        viewer = Lines(
            [
                sys.executable,
                str(ROOT / "bench" / "viewer_driver.py"),
                f"ws://127.0.0.1:{port}",
                token,
                "BENCH-1",
                str(TECHNICIAN_SIZE[0]),
                str(TECHNICIAN_SIZE[1]),
            ],
            {**env, "DISPLAY": tech, "QT_QPA_PLATFORM": "xcb"},
        )
        code = viewer.expect(r"^code (\S+)$").group(1)
        agent = start_agent(f"ws://127.0.0.1:{proxy.port}", code, customer, work, env)
        viewer.expect(r"^ready$", timeout=120)
        return run_scenes("Puente", scenes_app, proxy, agent.proc.pid, tech, seconds, clicks)
    finally:
        for proc in (viewer, agent, relay):
            if proc is not None:
                proc.stop()


def run_vnc(
    customer: str, tech: str, scenes_app: Lines, seconds: float, clicks: int, work: Path
) -> SystemResult:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    server = Lines(
        [
            "x11vnc",
            "-display",
            customer,
            "-rfbport",
            str(free_port),
            "-localhost",
            "-nopw",
            "-shared",
            "-forever",
        ],
        {},
        stdin=False,
    )
    viewer = None
    try:
        port = int(server.expect(r"^PORT=(\d+)").group(1))
        proxy = CountingProxy(port)
        viewer = Lines(
            [
                "xtigervncviewer",
                "-geometry",
                "1920x1080+0+0",
                "-SecurityTypes",
                "None",
                f"127.0.0.1::{proxy.port}",
            ],
            {"DISPLAY": tech},
            stdin=False,
        )
        return run_scenes("x11vnc", scenes_app, proxy, server.proc.pid, tech, seconds, clicks)
    finally:
        for proc in (viewer, server):
            if proc is not None:
                proc.stop()


# Report -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def report(results: list[SystemResult], command: str) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        "| scene | system | KB/s | frames/s | agent CPU |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for scene in SCENES:
        for r in results:
            s = r.scenes.get(scene)
            if s:
                lines.append(
                    f"| {scene} | {r.name} | {s.bytes_per_s / 1000:.2f} | {s.fps:.1f} | "
                    f"{s.cpu * 100:.0f} % |"
                )
    lines += [
        "",
        "| click-to-pixel | p50 ms | p95 ms | clicks seen |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {percentile(r.latencies, 0.5) * 1000:.1f} | "
            f"{percentile(r.latencies, 0.95) * 1000:.1f} | {len(r.latencies)} |"
        )
    if len(results) == 2:
        puente, vnc = results
        lines += ["", "Ratios (Puente / x11vnc):", ""]
        for scene in SCENES:
            p, v = puente.scenes.get(scene), vnc.scenes.get(scene)
            if p and v:
                lines.append(
                    f"- {scene}: bytes {ratio(p.bytes_per_s, v.bytes_per_s)}, "
                    f"frames/s {ratio(p.fps, v.fps)}"
                )
        lp, lv = percentile(puente.latencies, 0.5), percentile(vnc.latencies, 0.5)
        lines.append(f"- click-to-pixel p50: {lp / lv:.2f}x")
        lines += ["", "Goals:", ""]
        goals = goal_lines(puente, vnc)
        lines += goals
    return "\n".join(lines)


def ratio(ours: float, theirs: float) -> str:
    if theirs == 0:
        return "n/a (both 0)" if ours == 0 else "n/a (peer 0)"
    return f"{ours / theirs:.2f}x"


def goal_lines(p: SystemResult, v: SystemResult) -> list[str]:
    """One line per goal whose scene ran (BENCH_SCENES may pick a few)."""

    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    s, peer = p.scenes, v.scenes
    lines = []
    if "static" in s:
        static = s["static"].bytes_per_s
        lines.append(f"- static under 0.5 KB/s: {static / 1000:.2f} KB/s, {mark(static < 500)}")
    if "typing" in s and "typing" in peer:
        ours, theirs = s["typing"].bytes_per_s, peer["typing"].bytes_per_s
        lines.append(
            f"- typing under 20 KB/s and below x11vnc: {ours / 1000:.1f} vs "
            f"{theirs / 1000:.1f} KB/s, {mark(ours < 20000 and ours < theirs)}"
        )
    for scene, name in (("scroll", "scrolling"), ("drag", "dragging")):
        if scene in s:
            fps = s[scene].fps
            lines.append(f"- {name} at 30 fps or more: {fps:.1f}, {mark(fps >= 30)}")
    p50, peer_p50 = percentile(p.latencies, 0.5), percentile(v.latencies, 0.5)
    lines.append(
        f"- click-to-pixel p50 under 35 ms and below x11vnc: {p50 * 1000:.1f} vs "
        f"{peer_p50 * 1000:.1f} ms, {mark(p50 < 0.035 and p50 < peer_p50)}"
    )
    if "video" in s:
        video = s["video"]
        mbps = video.bytes_per_s * 8 / 1e6
        lines.append(
            f"- video region under 2 Mb/s at 15 fps or more: {mbps:.2f} Mb/s "
            f"at {video.fps:.1f} fps, {mark(mbps < 2 and video.fps >= 15)}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring time per scene")
    parser.add_argument("--clicks", type=int, default=30, help="clicks for the latency")
    parser.add_argument("--only", choices=("puente", "vnc"), help="run one system only")
    args = parser.parse_args()
    for program in ("Xvfb", "x11vnc", "xtigervncviewer"):
        if shutil.which(program) is None:
            print(
                f"{program} is missing: apt-get install xvfb x11vnc tigervnc-viewer",
                file=sys.stderr,
            )
            return 2
    customer_x, customer = start_xvfb(*CUSTOMER_SIZE)
    tech_x, tech = start_xvfb(*TECHNICIAN_SIZE)
    scenes_app = Lines(
        [sys.executable, str(ROOT / "bench" / "screen_scenes.py")], {"DISPLAY": customer}
    )
    results = []
    try:
        scenes_app.expect(r"^ready$")
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            if args.only in (None, "puente"):
                results.append(
                    run_puente(customer, tech, scenes_app, args.seconds, args.clicks, work)
                )
            if args.only in (None, "vnc"):
                results.append(run_vnc(customer, tech, scenes_app, args.seconds, args.clicks, work))
    finally:
        scenes_app.stop()
        for proc in (customer_x, tech_x):
            proc.terminate()
            proc.wait()
    command = "python bench/screen_vs_vnc.py " + " ".join(sys.argv[1:])
    print(report(results, command.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
