"""Issue 13: the project installs from its lock files, the same versions on any day."""

from __future__ import annotations

import importlib.metadata
import os
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.support.lockfiles import PIN, canonical, locked_versions

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "requirements" / "dev.txt"
RUNTIME = ROOT / "requirements" / "runtime.txt"
RELAY_IMAGE = ROOT / "installers" / "relay" / "requirements.txt"
LOCKS = [DEV, RUNTIME, RELAY_IMAGE]


def pinned_lines(path: Path) -> set[tuple[str, str, str | None]]:
    """(name, version, marker) of every pin, whatever the platform."""
    found = (PIN.match(line) for line in path.read_text(encoding="utf-8").splitlines())
    return {(canonical(m[1]), m[2], m[3]) for m in found if m}


def test_every_lock_pins_every_package_with_hashes_and_names_no_host() -> None:
    for path in LOCKS:
        text = path.read_text(encoding="utf-8")
        assert "://" not in text, f"{path.name} names a registry's address"
        blocks = [b for b in text.split("\n") if b and not b.startswith((" ", "#"))]
        assert blocks and all(PIN.match(line) for line in blocks), path
        assert text.count("--hash=sha256:") >= len(blocks), f"{path.name}: a pin without hashes"


def test_the_smaller_locks_take_their_versions_from_the_dev_lock() -> None:
    dev = {(name, version) for name, version, _ in pinned_lines(DEV)}
    for path in (RUNTIME, RELAY_IMAGE):
        pins = {(name, version) for name, version, _ in pinned_lines(path)}
        assert pins <= dev, f"{path.name} disagrees with dev.txt: {sorted(pins - dev)}"


def test_the_lock_satisfies_pyproject() -> None:
    """A range changed in pyproject.toml without .ci/refresh-lock fails here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += [r for r in extra if not r.startswith("puente[")]
    locked = locked_versions(DEV)
    for text in wanted:
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate():
            continue
        name = canonical(requirement.name)
        assert name in locked, f"{name} is not in the lock: run .ci/refresh-lock --keep"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"the lock has {name} {locked[name]}, pyproject asks {requirement.specifier}: "
            "run .ci/refresh-lock --keep"
        )


def test_the_lock_brings_a_cryptography_that_deprecates_dsa() -> None:
    """The warning fix is not 'pin an older cryptography': 51 deprecated DSA."""
    assert Version(locked_versions(DEV)["cryptography"]) >= Version("51")


@pytest.mark.skipif(
    os.environ.get("PUENTE_UNLOCKED") == "1",
    reason="the newest-releases check (.ci/newest) installs without the lock on purpose",
)
def test_the_suite_runs_on_the_locked_versions() -> None:
    locked = locked_versions(DEV)
    installed = {
        canonical(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions()
        if canonical(d.metadata["Name"]) in locked
    }
    assert installed == locked, "reinstall from the lock: see the README's test command"
