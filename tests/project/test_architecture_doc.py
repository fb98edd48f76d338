"""docs/ARCHITECTURE.md stays the map of the tree: it names every package and module
that exists (by path, in backticks), and no path that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
PACKAGES = ("protocol", "link", "relay", "agent", "technician")
#: A path in backticks that starts at one of the project's top-level folders.
NAMED_PATH = re.compile(
    r"`((?:protocol|link|relay|agent|technician|installers|bench|tests|docs)(?:/[\w.*-]+)*/?)`"
)


def named_paths() -> set[str]:
    return set(NAMED_PATH.findall(DOC.read_text(encoding="utf-8")))


def product_modules_and_packages() -> set[str]:
    found: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            if path.name == "__init__.py":
                found.add(relative.removesuffix("__init__.py"))
            elif path.name != "__main__.py":
                found.add(relative)
    return found


def test_every_package_and_module_is_named() -> None:
    missing = sorted(product_modules_and_packages() - named_paths())
    assert not missing, "docs/ARCHITECTURE.md does not name: " + ", ".join(missing)


def test_every_named_path_exists() -> None:
    wrong = [
        path
        for path in sorted(named_paths())
        if not (list(ROOT.glob(path.rstrip("/"))) if "*" in path else (ROOT / path).exists())
    ]
    assert not wrong, "docs/ARCHITECTURE.md names paths that do not exist: " + ", ".join(wrong)


def test_the_allowed_arrows_are_the_ones_the_import_test_enforces() -> None:
    from tests.project.test_imports import ALLOWED

    text = DOC.read_text(encoding="utf-8")
    for package, allowed in ALLOWED.items():
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| `{package}/` |"))
        shown = set(re.findall(r"`(\w+)/`", line.split("|")[3]))
        assert shown == allowed, f"{package}: the doc says {shown}, the test allows {allowed}"
