"""The habits of STYLE.md, enforced: ruff clean, formatted, protocol/ strictly typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(300),
    )


@pytest.mark.parametrize(
    "argv",
    [("ruff", "check", "."), ("ruff", "format", "--check", ".")],
    ids=["ruff-check", "ruff-format"],
)
def test_ruff(argv: tuple[str, ...]) -> None:
    result = run(*argv)
    assert result.returncode == 0, result.stdout + result.stderr


def test_protocol_is_strictly_typed() -> None:
    result = run("mypy", "--strict", "protocol")
    assert result.returncode == 0, result.stdout + result.stderr
