"""protocol.allocator: freed buffers stay in the process instead of being faulted in again."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]

# What a file copy does in every process on the way: buffers of 256 KiB, a few MiB of
# them alive at once, all freed again, thousands of times.
CHURN = textwrap.dedent(
    """
    import resource, sys
    from protocol.allocator import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(100):
        held = [bytes([n]) * (256 * 1024) for n in range(16)]
        del held
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def page_faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CHURN, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=scaled(30),
    )
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the setting exists in glibc's allocator only (elsewhere it does nothing)",
)
def test_freed_buffers_are_not_faulted_in_again() -> None:
    default, kept = page_faults("default"), page_faults("keep")
    # 100 rounds of 4 MiB: glibc's default gives most pages back and takes them again.
    assert default > 20_000
    assert kept < default // 10


def test_elsewhere_it_reports_that_nothing_was_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from protocol import allocator

    monkeypatch.setattr(allocator.platform, "system", lambda: "Darwin")
    assert allocator.keep_freed_memory() is False
