"""Does Request Tracker serve several REST calls at once? (sizing --delivery-workers)

The relay delivers enrolled devices' alert tickets ``--delivery-workers`` at a time
(relay/alert_delivery.py); that helps only as far as Request Tracker itself serves
calls at once. This starts Debian's Request Tracker 5 as the tests do
(tests/support/helpdesk.py: ``rt-server``, which runs Starlet, a prefork server, with
10 worker processes unless told otherwise, on a copy of the packaged SQLite database)
and makes ``--calls`` ticket creations (what each new alert costs, ``POST
/REST/2.0/ticket``) at each concurrency of ``--at``, in rounds that take the
concurrencies in turn so that a change in the machine's load falls on all of them.
The peer is the same RT taking one call at a time, in the same run: each concurrency
is reported as creations per second, its ratio to one at a time, the latency of one
call (p50, max) and RT's CPU time per creation (rt-server and its workers). Rising ratios: RT serves calls at once; ratios near 1 or below: it
does not (CPU or its database's write lock is the limit), and more relay workers only
make each call slower.

Examples::

    python bench/rt_concurrency.py                 # 1, 2, 4, 8 at once, 3 rounds
    python bench/rt_concurrency.py --at 1,2,3,4,6 --calls 30 --rounds 5
    python bench/rt_concurrency.py --rt-workers 2  # rt-server with 2 worker processes
    python bench/rt_concurrency.py --json

It needs ``request-tracker5``, ``rt5-db-sqlite`` and ``rt5-standalone`` (which brings
``starlet``). Exit status 0 when every figure was measured, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.relay_load import progress  # noqa: E402


def create_ticket(url: str, token: str, number: int) -> tuple[int, float]:
    """One alert-like ticket creation; (HTTP status, seconds)."""
    body = {
        "Queue": "General",
        "Subject": f"[puente al_{number:016x}] bench-device: check bench-disk is failing",
        "Content": "Puente opened this alert (bench/rt_concurrency.py).\n",
        "ContentType": "text/plain",
    }
    request = urllib.request.Request(
        f"{url}/REST/2.0/ticket",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            status = int(exc.code)
    return status, time.monotonic() - started


def start_request_tracker(workdir: Path, workers: int | None) -> Any:
    from tests.support.helpdesk import RequestTracker, rt_missing

    missing = rt_missing()
    if missing is not None:
        raise RuntimeError(missing)
    # rt-server passes options it does not know on to Starlet (plackup's way).
    rt = RequestTracker(workdir, server_args=("--max-workers", str(workers)) if workers else ())
    rt.create_ticket("bench warm-up")
    return rt


def _stat(pid: int | str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def worker_processes(pid: int) -> list[int]:
    """rt-server's children (Starlet's workers), by pid."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(entry.name)) and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def rt_cpu_seconds(pid: int) -> float:
    """CPU time of rt-server and its workers so far, those that exited included (a
    worker ends after 100 requests; its parent reaps it and counts its time)."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = _stat(pid) or []
    total = sum(int(f) for f in fields[11:15]) / tick  # utime, stime, cutime, cstime
    for child in worker_processes(pid):
        if (mine := _stat(child)) is not None:
            total += (int(mine[11]) + int(mine[12])) / tick
    return total


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="puente-rt-concurrency-"))
    progress("starting Request Tracker 5 (rt-server on SQLite)")
    rt = start_request_tracker(tmp / "rt", args.rt_workers)
    loads = [os.getloadavg()[0]]
    taken: dict[int, list[tuple[float, list[float]]]] = {level: [] for level in args.at}
    cpu: dict[int, float] = dict.fromkeys(args.at, 0.0)
    errors = 0
    number = 0
    try:
        workers = len(worker_processes(rt.proc.pid))
        progress(f"rt-server has {workers} worker processes")
        for round_ in range(args.rounds):
            for level in args.at:
                numbers = range(number, number + args.calls)
                number += args.calls
                started, used = time.monotonic(), rt_cpu_seconds(rt.proc.pid)
                with ThreadPoolExecutor(level) as pool:
                    answers = list(pool.map(lambda n: create_ticket(rt.url, rt.token, n), numbers))
                seconds = time.monotonic() - started
                cpu[level] += rt_cpu_seconds(rt.proc.pid) - used
                errors += sum(status != 201 for status, _ in answers)
                taken[level].append((args.calls / seconds, [s for _, s in answers]))
                loads.append(os.getloadavg()[0])
                progress(
                    f"round {round_ + 1}, {level} at once: {args.calls / seconds:.2f} "
                    f"creations/s (load {loads[-1]:.1f})"
                )
    finally:
        rt.stop()
    if errors:
        raise RuntimeError(f"Request Tracker refused {errors} creations; see {tmp}")
    single = statistics.median(rate for rate, _ in taken[args.at[0]])
    figures: dict[str, Any] = {
        "rt_worker_processes": workers,
        "calls_per_level_and_round": args.calls,
        "rounds": args.rounds,
        "load_average_min": round(min(loads), 1),
        "load_average_max": round(max(loads), 1),
        "levels": {},
    }
    for level in args.at:
        rates = [rate for rate, _ in taken[level]]
        latencies = sorted(s for _, seconds in taken[level] for s in seconds)
        figures["levels"][str(level)] = {
            "creations_per_s": round(statistics.median(rates), 2),
            "ratio_to_first": round(statistics.median(rates) / single, 2),
            "latency_p50_s": round(latencies[len(latencies) // 2], 3),
            "latency_max_s": round(latencies[-1], 3),
            "rt_cpu_s_per_creation": round(cpu[level] / len(latencies), 3),
        }
    return figures


def report(figures: dict[str, Any], first: int) -> None:
    print(
        f"Request Tracker 5 (rt-server, Starlet, {figures['rt_worker_processes']} worker "
        f"processes, SQLite): {figures['calls_per_level_and_round']} ticket creations per "
        f"concurrency and round, {figures['rounds']} rounds (medians), load average "
        f"{figures['load_average_min']} to {figures['load_average_max']}"
    )
    print(
        f"{'at once':>8}{'creations/s':>13}{f'ratio to {first}':>14}{'p50 s':>8}{'max s':>8}"
        f"{'RT CPU s each':>15}"
    )
    for level, row in figures["levels"].items():
        print(
            f"{level:>8}{row['creations_per_s']:>13}{row['ratio_to_first']:>14}"
            f"{row['latency_p50_s']:>8}{row['latency_max_s']:>8}{row['rt_cpu_s_per_creation']:>15}"
        )
    print(
        f"this machine: {os.cpu_count()} CPUs; RT's CPU per creation sets its ceiling at "
        "CPUs / that, shared with whatever else runs"
    )


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",")]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of positive numbers, e.g. 1,2,4")
    return levels


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--at",
        type=_levels,
        default=[1, 2, 4, 8],
        help="calls at once to compare, the first being the peer (1,2,4,8)",
    )
    parser.add_argument("--calls", type=int, default=24, help="creations per level and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the levels (3)")
    parser.add_argument(
        "--rt-workers", type=int, help="rt-server's worker processes (Starlet's default: 10)"
    )
    parser.add_argument("--json", action="store_true", help="results as JSON on stdout")
    args = parser.parse_args()
    if args.calls < 1 or args.rounds < 1 or (args.rt_workers is not None and args.rt_workers < 1):
        parser.error("--calls, --rounds and --rt-workers must be 1 or more")
    try:
        figures = run(args)
    except (RuntimeError, OSError) as exc:
        print(f"rt_concurrency.py: a measurement failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        report(figures, args.at[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
