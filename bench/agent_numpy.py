"""The agent's screen core on the numpy of the one-file download versus numpy as installed.

``installers/build.py`` bundles numpy built from its source without BLAS (the wheel's
OpenBLAS was a third of the download; see docs/PERFORMANCE.md). This measures, in one
run and on the same frames, what the agent does with numpy on every capture, once in
a Python that imports the installed numpy (the wheel) and once in one that imports the
download's build (the build cache, put first on ``PYTHONPATH``):

* tile diff of a 1920x1080 frame (``changed_tiles``): a few changed pixels, and a
  frame that changed everywhere;
* tile classes of the whole frame (``classify_tiles``);
* a whole ``FrameEncoder.encode`` of a desktop-like frame after a typed line changed.

It prints the best of several rounds (in three alternated passes per side) in
milliseconds and the ratio of the download's
numpy to the installed one (goal: about 1.0, the tile diff around 2 ms or less).

Run from the checkout (after ``python installers/build.py agent`` built numpy once)::

    .venv/bin/python bench/agent_numpy.py            # about 10 s
    .venv/bin/python bench/agent_numpy.py --quick    # a couple of seconds, rough figures
    .venv/bin/python bench/agent_numpy.py --json     # results as JSON on stdout

Exit status 0: both measured; 1: a measurement failed or the download's numpy is
not built yet (the message says how to build it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The rows, in the order printed.
ROWS = [
    ("diff_small", "tile diff, 1080p, a few pixels changed"),
    ("diff_full", "tile diff, 1080p, every pixel changed"),
    ("classify", "tile classes, whole 1080p frame"),
    ("encode", "encode a typed line on a 1080p desktop"),
]


def measure(rounds: int) -> dict[str, Any]:
    """In this process: best time of ``rounds`` rounds for each row, in ms."""
    import numpy as np

    from agent.capabilities.screen.encoder import FrameEncoder, changed_tiles, classify_tiles

    rng = np.random.default_rng(1)
    height, width = 1080, 1920
    noise = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    few = noise.copy()
    few[500, 700, 1] ^= 1
    few[10:30, 100:400] = 7
    everywhere = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    # A desktop: flat background, text-like lines, a photo; then one line is typed.
    desktop = np.full((height, width, 4), 235, dtype=np.uint8)
    desktop[100:900:20, 200:1400, :3] = rng.integers(0, 2, (40, 1200, 1)) * 200
    desktop[300:700, 1450:1850] = noise[:400, :400]
    typed = desktop.copy()
    typed[920:936, 200:520, :3] = rng.integers(0, 2, (16, 320, 1)) * 30
    encoder = FrameEncoder(video=False)

    def encode_typed() -> None:
        encoder.encode(desktop)
        encoder.encode(typed)

    work: dict[str, Callable[[], object]] = {
        "diff_small": lambda: changed_tiles(noise, few),
        "diff_full": lambda: changed_tiles(noise, everywhere),
        "classify": lambda: classify_tiles(desktop),
        "encode": encode_typed,
    }
    results: dict[str, float] = {}
    for name, job in work.items():
        job()  # warm up
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            job()
            best = min(best, time.perf_counter() - started)
        results[name] = best * 1e3
    if "encode" in results:
        results["encode"] /= 2  # two frames per round: the whole one, then the change
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return {"numpy": np.__version__, "blas": blas.get("name", "none"), "ms": results}


def run_worker(pythonpath: str | None, rounds: int) -> dict[str, Any]:
    """Measure in a fresh Python, with ``pythonpath`` first on the path if given."""
    env = dict(os.environ)
    # Set on some machines for old OpenBLAS builds; they only slow a current one.
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    done = subprocess.run(
        [sys.executable, __file__, "--worker", "--rounds", str(rounds)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the measuring process failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The first run's description with each row's best time over all runs."""
    best = dict(runs[0])
    best["ms"] = {name: min(run["ms"][name] for run in runs) for name, _ in ROWS}
    return best


def download_numpy() -> Path:
    """Where installers/build.py keeps the numpy it bundles; say how to make it if absent."""
    import importlib.metadata
    import importlib.util

    spec = importlib.util.spec_from_file_location("puente_build", ROOT / "installers/build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    version = importlib.metadata.version("numpy")
    folder = build.numpy_without_blas_folder(build.cache_root(), version)
    if not build.numpy_without_blas_ready(folder, version):
        raise RuntimeError(
            f"numpy {version} built without BLAS is not in {folder.parent} yet: run "
            "'python installers/build.py agent' once (it builds it), then this again."
        )
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/agent_numpy.py",
        description="The agent's screen core on the download's numpy (no BLAS) versus "
        "numpy as installed, in the same run.",
    )
    parser.add_argument("--quick", action="store_true", help="few rounds, rough figures")
    parser.add_argument("--rounds", type=int, default=0, help="rounds per row (best is kept)")
    parser.add_argument("--json", action="store_true", help="results as JSON on stdout")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 30)
    if args.worker:
        print(json.dumps(measure(rounds)))
        return 0
    passes = 1 if args.quick else 3
    try:
        folder = download_numpy()
        # Alternated passes, best of all kept: a burst of other work on a shared
        # machine then slows one pass of each side, not one side.
        runs: dict[str, list[dict[str, Any]]] = {"installed": [], "download": []}
        for number in range(1, passes + 1):
            print(f"pass {number}/{passes}: numpy as installed...", file=sys.stderr)
            runs["installed"].append(run_worker(None, rounds))
            print(f"pass {number}/{passes}: the download's numpy...", file=sys.stderr)
            runs["download"].append(run_worker(str(folder), rounds))
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"agent_numpy: {exc}", file=sys.stderr)
        return 1
    installed, download = (best_of(runs[side]) for side in ("installed", "download"))
    ratios = {name: download["ms"][name] / installed["ms"][name] for name, _ in ROWS}
    if args.json:
        print(json.dumps({"installed": installed, "download": download, "ratios": ratios}))
        return 0
    print(
        f"numpy {installed['numpy']} as installed (BLAS: {installed['blas']}) against the "
        f"download's build (BLAS: {download['blas']})"
    )
    print(f"best of {passes} x {rounds} rounds, milliseconds\n")
    print(f"{'':44} {'installed':>10} {'download':>10} {'ratio':>7}")
    for name, title in ROWS:
        print(
            f"{title:44} {installed['ms'][name]:10.3f} {download['ms'][name]:10.3f} "
            f"{ratios[name]:6.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
