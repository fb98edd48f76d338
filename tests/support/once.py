"""Expensive things made once per test run, however many pytest-xdist workers there are.

Session-scoped fixtures run once *per worker*: under ``pytest -n 2`` two workers would
each build the relay's image into the same folder at once. :func:`once_per_run` makes
the first worker build while the others wait on a file lock, then hands every worker
the same result (or the same failure, or the same reason to skip).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder shared by every worker of this run (and by no other run)."""
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's base is <run's base>/popen-gwN.
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def once_per_run(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[], str]
) -> str:
    """``make()`` in the first worker that asks; its result (a string) for every worker.

    A failure or a skip is remembered too: the other workers fail or skip with the same
    sentence instead of trying again.
    """
    folder = run_folder(tmp_path_factory)
    outcome_path = folder / f"once-{name}.json"
    with open(folder / f"once-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not outcome_path.exists():
            try:
                outcome = {"made": make()}
            except pytest.skip.Exception as exc:
                outcome = {"skipped": str(exc.msg)}
            except BaseException as exc:
                outcome = {"failed": f"{type(exc).__name__}: {exc}"}
            outcome_path.write_text(json.dumps(outcome), encoding="utf-8")
    outcome = json.loads(outcome_path.read_text(encoding="utf-8"))
    if "skipped" in outcome:
        pytest.skip(outcome["skipped"])
    if "failed" in outcome:
        pytest.fail(f"making {name} failed in this run: {outcome['failed']}", pytrace=False)
    return str(outcome["made"])
