"""The starter fix library: scripts are valid, and the Linux ones that are safe to run on
a test machine run for real through the agent's runner (real signatures, real processes).

Fixes that need administrator rights and change the system (print spooler, network,
clock) are only checked for syntax here; the Windows and macOS variants are checked
for a valid signed manifest in ``test_fixbundle.py``.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.capabilities.base import RequestContext
from agent.capabilities.fixes import FixRequest, prepare, run_script
from agent.consent import Authorization
from agent.errors import RequestRefused
from agent.trust import AgentTrust
from protocol.identity import OrganisationSecret
from technician.fixlib import sign_fix_directory
from tests.support.timeouts import scaled

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "fixes"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="runs the Linux variants")


@pytest.fixture(scope="module")
def acme() -> OrganisationSecret:
    return OrganisationSecret("Acme IT", Ed25519PrivateKey.generate())


@pytest.mark.parametrize(
    "script", sorted(EXAMPLES.glob("*/*/*.sh")), ids=lambda p: str(p.parent.relative_to(EXAMPLES))
)
def test_shell_scripts_parse(script: Path) -> None:
    assert subprocess.run(["sh", "-n", str(script)], timeout=scaled(10)).returncode == 0


def run_fix(
    acme: OrganisationSecret,
    directory: Path,
    parameters: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    action: str = "run",
    dry_run: bool = False,
) -> tuple[int | None, list[tuple[str, str]]]:
    """Sign ``directory``, check it as the agent would, run it once; (status, lines)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    bundle = sign_fix_directory(directory, acme, 1, int(time.time()))
    trust = AgentTrust(organisation_key=acme.public_key, platform="linux")
    lines: list[tuple[str, str]] = []

    async def main() -> int | None:
        prepared = await prepare(
            RequestContext(action, {"bundle": bundle, "parameters": parameters}, trust)
        )
        request: FixRequest = prepared.state

        async def output(stream: str, line: str) -> None:
            lines.append((stream, line))

        # The consent gate is the only minter in the product; a test plays its part.
        outcome = await run_script(request, Authorization._mint("fixes"), output, dry_run=dry_run)
        return outcome.exit_status

    status = asyncio.run(asyncio.wait_for(main(), scaled(60)))
    return status, lines


def test_end_process_closes_a_stuck_program(
    acme: OrganisationSecret, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = subprocess.Popen(["sleep", "300"])
    try:
        fix = EXAMPLES / "end-process" / "unix"
        status, lines = run_fix(
            acme, fix, {"pid": str(stuck.pid)}, tmp_path, monkeypatch, dry_run=True
        )
        assert status == 0
        assert (
            "stdout",
            f"would ask process {stuck.pid} to close, and force it after 5 seconds",
        ) in lines
        assert stuck.poll() is None  # the preview changed nothing
        status, lines = run_fix(acme, fix, {"pid": str(stuck.pid)}, tmp_path, monkeypatch)
        assert status == 0, lines
        assert ("stdout", f"process {stuck.pid} closed") in lines
        assert stuck.wait(timeout=scaled(5)) is not None
    finally:
        stuck.kill()
        stuck.wait()


def test_end_process_parameter_is_checked_before_running(
    acme: OrganisationSecret, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RequestRefused, match="pid must be at least 2"):
        run_fix(acme, EXAMPLES / "end-process" / "unix", {"pid": "1"}, tmp_path, monkeypatch)
    with pytest.raises(RequestRefused, match="whole number"):
        run_fix(
            acme, EXAMPLES / "end-process" / "unix", {"pid": "1; reboot"}, tmp_path, monkeypatch
        )


def test_flush_dns_runs(
    acme: OrganisationSecret, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, lines = run_fix(acme, EXAMPLES / "flush-dns" / "linux", {}, tmp_path, monkeypatch)
    assert status == 0, lines
    assert ("stdout", "  localhost: ok") in lines


@pytest.mark.skipif(
    not any(shutil.which(m) for m in ("apt", "dnf", "zypper", "pacman")),
    reason="no package manager to ask",
)
def test_show_pending_updates_runs(
    acme: OrganisationSecret, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, lines = run_fix(
        acme, EXAMPLES / "show-pending-updates" / "linux", {}, tmp_path, monkeypatch
    )
    assert status == 0, lines
    assert lines[-1][1] in ("A restart is pending.", "No restart is pending.")


def test_admin_fixes_are_refused_for_ordinary_users(
    acme: OrganisationSecret, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agent.capabilities.fixes

    monkeypatch.setattr(agent.capabilities.fixes, "is_admin", lambda: False)
    with pytest.raises(RequestRefused, match="needs administrator rights"):
        run_fix(acme, EXAMPLES / "restart-print-spooler" / "linux", {}, tmp_path, monkeypatch)


def test_time_limit_stops_the_whole_process_group(
    acme: OrganisationSecret, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fix = tmp_path / "hang"
    fix.mkdir()
    (fix / "manifest.toml").write_text(
        'id = "hang"\nversion = "1"\ntitle = "Hang"\ndescription = "Never ends."\n'
        'platforms = ["linux"]\ninterpreter = "sh"\nscript = "fix.sh"\ntimeout = 1\n'
        'needs_admin = false\nrisk = "low"\n'
    )
    pid_file = tmp_path / "child.pid"
    (fix / "fix.sh").write_text(f"sleep 300 &\necho $! > {pid_file}\necho waiting\nwait\n")
    started = time.monotonic()
    status, lines = run_fix(acme, fix, {}, tmp_path, monkeypatch)
    assert status is None and ("stdout", "waiting") in lines
    assert time.monotonic() - started < scaled(10)
    child = int(pid_file.read_text())
    time.sleep(0.2)
    assert (
        not Path(f"/proc/{child}").exists()
        or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
    )
    assert list((tmp_path / "state" / "puente" / "fix-runs").iterdir()) == []  # cleaned up


def test_undo_runs_the_signed_undo_script(
    acme: OrganisationSecret, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fix = tmp_path / "toggle"
    fix.mkdir()
    (fix / "manifest.toml").write_text(
        'id = "toggle"\nversion = "1"\ntitle = "Toggle"\ndescription = "Sets a flag."\n'
        'platforms = ["linux"]\ninterpreter = "sh"\nscript = "fix.sh"\nundo = "undo.sh"\n'
        'timeout = 10\nneeds_admin = false\nrisk = "low"\n'
    )
    (fix / "fix.sh").write_text("echo on\n")
    (fix / "undo.sh").write_text("echo off\n")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    bundle = sign_fix_directory(fix, acme, 1, int(time.time()))
    trust = AgentTrust(organisation_key=acme.public_key, platform="linux")

    async def main() -> list[tuple[str, str]]:
        prepared = await prepare(RequestContext("undo", {"bundle": bundle}, trust))
        lines: list[tuple[str, str]] = []

        async def output(stream: str, line: str) -> None:
            lines.append((stream, line))

        await run_script(prepared.state, Authorization._mint("fixes"), output, undo=True)
        return lines

    assert asyncio.run(main()) == [("stdout", "off")]
    with pytest.raises(RequestRefused, match="no undo script"):
        run_fix(acme, EXAMPLES / "flush-dns" / "linux", {}, tmp_path, monkeypatch, action="undo")
