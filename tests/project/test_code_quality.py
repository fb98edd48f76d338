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


def test_no_script_folder_hides_a_standard_library_module() -> None:
    """A script's own folder comes first on ``sys.path``: ``bench/queue.py`` once made
    every benchmark's ``import queue`` (deep inside asyncio) load the benchmark instead."""
    folders = ["bench", "installers", ".ci"]
    clashes = [
        str(path.relative_to(ROOT))
        for folder in folders
        for path in (ROOT / folder).glob("*.py")
        if path.stem in sys.stdlib_module_names
    ]
    assert clashes == [], f"rename these, they hide standard modules: {clashes}"
