"""Acceptance point 1 of issue 18, on loopback, as root: ``puente-agent enrol`` without
``--no-service`` installs a systemd unit (system-wide in the real /etc/systemd/system,
or per user), the device is online for the technician (``puente-tech devices --json``), and
``puente-agent unenrol`` leaves nothing behind: no unit, no helper autostart entry, no
state, no relay record.

systemd does not run in this sandbox (no /run/systemd/system), so the unit cannot be
started by it: the test checks the unit with ``systemd-analyze verify`` and then runs
the unit's own ExecStart command line as a process it supervises itself, which is what
systemd would run. Where systemd does run, enrol starts the unit and unenrol stops it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from agent.service_install import RECORD_FILE, systemd_running
from tests.support.device_fixtures import agent_command, enrol_argv, enrolment_token, relay_cli
from tests.support.helpdesk import wait_until
from tests.support.relay import start_relay
from tests.support.timeouts import scaled
from tests.support.trust_fixtures import make_organisation, tech_cli

SYSTEM_UNITS = Path("/etc/systemd/system")
AUTOSTART = Path("/etc/xdg/autostart")


@pytest.mark.skipif(os.geteuid() != 0, reason="a system-wide service needs root")
@pytest.mark.parametrize("scope", ["system", "user"])
def test_enrol_as_a_service_see_it_online_unenrol_leaves_nothing(
    tmp_path: Path, scope: str
) -> None:
    """``system``: root's default, in /etc/systemd/system. ``user``: ``--service-scope
    user``, in $XDG_CONFIG_HOME/systemd/user (a folder of the test's)."""
    config = tmp_path / "config"
    units = SYSTEM_UNITS if scope == "system" else config / "systemd" / "user"

    def our_units() -> set[str]:
        return {path.name for path in units.glob("puente-device-*.service")}

    acme = make_organisation(tmp_path / "org", "Acme IT")
    relay = start_relay(tmp_path / "relay")
    state = tmp_path / "device-state"
    units_before = our_units()
    service = None
    try:
        token = enrolment_token(relay.data_dir, "--uses", "1", "--valid-days", "1")
        enrolled = subprocess.run(
            enrol_argv(relay.ws_url, acme.public, state, "--yes", "--service-scope", scope),
            capture_output=True,
            text=True,
            timeout=scaled(60),
            env={
                **os.environ,
                "PUENTE_ENROL_TOKEN": token,
                "PUENTE_LANG": "en",
                "XDG_CONFIG_HOME": str(config),
            },
        )
        assert enrolled.returncode == 0, enrolled.stderr
        (unit_name,) = our_units() - units_before
        unit = units / unit_name
        assert f"Installed the service file {unit}." in enrolled.stdout
        assert stat.S_IMODE(unit.stat().st_mode) == 0o644
        # The key and state: readable by the service's account (root) only.
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        for name in ("device.key", "device.json", RECORD_FILE):
            assert stat.S_IMODE((state / name).stat().st_mode) == 0o600
            assert (state / name).stat().st_uid == 0

        # A system service has no display: whoever signs in gets the helper that shows
        # its questions and banner (tests/e2e/test_user_helper.py), started from here.
        entry = AUTOSTART / f"{unit.stem}-helper.desktop"
        helper_socket = Path("/run/puente") / f"{unit.stem}.sock"
        if scope == "system":
            assert f"Installed {entry}: it starts the helper" in enrolled.stdout
            assert f"--socket {helper_socket}" in entry.read_text(encoding="utf-8")
        else:
            assert not entry.exists()

        text = unit.read_text(encoding="utf-8")
        (line,) = [line for line in text.splitlines() if line.startswith("ExecStart=")]
        command = shlex.split(line.removeprefix("ExecStart="))
        assert command[-4:] == ["service", "run", "--state-dir", str(state)]
        if systemd_running(scope):
            assert "is enabled and running" in enrolled.stdout
        else:
            assert "systemd is not running on this computer" in enrolled.stdout
            if shutil.which("systemd-analyze"):
                verified = subprocess.run(
                    ["systemd-analyze", "verify", str(unit)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                assert verified.returncode == 0 and unit.name not in verified.stderr
            # What systemd would run, supervised by the test instead.
            service = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "PUENTE_LANG": "en"},
            )

        ana = relay.add_technician("Ana Technician")

        def listed() -> list[dict[str, object]]:
            done = tech_cli("--relay", relay.ws_url, "--token", ana, "--json", "devices")
            assert done.returncode == 0, done.stderr
            return list(json.loads(done.stdout)["devices"])

        wait_until(
            lambda: [d["online"] for d in listed()] == [True], scaled(30), "the device online"
        )

        gone = agent_command("unenrol", "--state-dir", str(state))
        assert gone.returncode == 0, gone.stderr
        removed = f"{unit}, {entry}" if scope == "system" else str(unit)
        assert f"Removed: {removed}." in gone.stdout
        assert "the relay forgot device" in gone.stdout
        if service is not None:
            # Under systemd, unenrol stopped the unit; here the relay's refusal stops it
            # for good (exit status 4: a supervisor must not restart it).
            output, _ = service.communicate(timeout=scaled(60))
            assert service.returncode == 4, output
            assert "The relay refused this device" in output
            if scope == "system":
                assert f"connect at {helper_socket}." in output
            assert not helper_socket.exists()
            service = None
        assert our_units() == units_before
        assert not entry.exists()
        assert not state.exists()
        assert listed() == []
        done = relay_cli("devices", "--data-dir", str(relay.data_dir), "--json")
        assert done.returncode == 0 and done.stdout.strip() == ""
    finally:
        if service is not None:
            service.kill()
            service.communicate()
        for leftover in our_units() - units_before:
            (units / leftover).unlink()
            (AUTOSTART / f"{Path(leftover).stem}-helper.desktop").unlink(missing_ok=True)
        relay.stop()
