"""The service definitions and their install and removal, with real files: the systemd
unit passes ``systemd-analyze verify``, the launchd plist reads back with plistlib, the
Task Scheduler XML parses; a per-user unit lands in ~/.config/systemd/user and
uninstall removes exactly what install wrote. (This sandbox runs no systemd, so
starting the unit is not exercised here: tests/e2e/test_enrolled_service.py runs the
unit's own command line as a supervised process.)"""

from __future__ import annotations

import json
import plistlib
import shlex
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from agent import service_install
from agent.service_install import (
    EXIT_NOT_ENROLLED,
    RECORD_FILE,
    definition_for,
    install,
    install_problem,
    service_command,
    systemd_unit,
    uninstall,
)
from tests.support.device_fixtures import agent_command

ODD_FOLDER = Path("/tmp/odd folder/100% $HOME")


def exec_start(unit: str) -> list[str]:
    """The ExecStart words as systemd reads them (for the words this module writes)."""
    (line,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    return [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(line[10:])]


def test_the_systemd_unit_verifies_and_keeps_odd_paths_literal(tmp_path: Path) -> None:
    command = service_command(ODD_FOLDER)
    unit = systemd_unit(command, "system", "Acme IT")
    assert exec_start(unit) == command
    assert f"RestartPreventExitStatus={EXIT_NOT_ENROLLED}" in unit
    assert "UMask=0077" in unit and "WantedBy=multi-user.target" in unit
    assert "WantedBy=default.target" in systemd_unit(command, "user", "Acme IT")
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is missing: install the Debian package systemd")
    path = tmp_path / "puente-device-0123456789ab.service"
    path.write_text(unit, encoding="utf-8")
    done = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, check=False
    )
    # Other units on this machine may draw warnings; ours must draw none.
    assert done.returncode == 0, done.stderr
    assert path.name not in done.stderr, done.stderr


def test_the_launchd_plist_and_the_windows_task_are_well_formed(tmp_path: Path) -> None:
    command = service_command(ODD_FOLDER, Path("/Applications/Puente/puente-agent"))
    plist = plistlib.loads(
        definition_for("macos", "system", "puente-device-x", command, ODD_FOLDER, "Acme IT")
    )
    assert plist["Label"] == "org.puente.puente-device-x"
    assert plist["ProgramArguments"] == command
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
    windows = ["C:\\Program Files\\Puente\\puente-agent.exe", "service", "run"]
    task = definition_for("windows", "system", "puente-device-x", windows, ODD_FOLDER, "Acme")
    root = ET.fromstring(task.decode("utf-16").split("\n", 1)[1])
    space = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
    assert root.findtext("t:Actions/t:Exec/t:Command", namespaces=space) == windows[0]
    assert root.find("t:Triggers/t:BootTrigger", space) is not None
    assert root.findtext("t:Principals/t:Principal/t:UserId", namespaces=space) == "S-1-5-18"
    # The command line prints the same definitions (the CI build workflow lints them).
    shown = agent_command("service", "show", "--os", "macos", "--state-dir", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert plistlib.loads(shown.stdout.encode())["ProgramArguments"][-1] == str(tmp_path)


def test_a_user_service_is_installed_and_removed_leaving_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setattr(service_install, "systemd_running", lambda scope: False)
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    service, lines = install(folder, "ab" * 16, "user", "Acme IT")
    unit = config / "systemd" / "user" / "puente-device-abababababab.service"
    assert service.files == (str(unit),) and not service.started
    assert exec_start(unit.read_text(encoding="utf-8")) == list(service.command)
    assert stat.S_IMODE((folder / RECORD_FILE).stat().st_mode) == 0o600
    assert json.loads((folder / RECORD_FILE).read_text())["files"] == [str(unit)]
    assert lines[0] == f"Installed the service file {unit}."
    assert "systemd is not running on this computer" in lines[1]

    said = uninstall(folder)
    assert said == [f"Removed: {unit}."]
    assert not unit.exists() and not (folder / RECORD_FILE).exists()
    assert uninstall(folder) == []  # nothing recorded, nothing to say


def test_where_no_service_can_be_installed_enrol_says_so_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service_install, "current_system", lambda: "macos")
    assert "on macos is not in this build yet; add --no-service" in str(install_problem("user"))
    monkeypatch.setattr(service_install, "current_system", lambda: "linux")
    monkeypatch.setattr(service_install, "default_scope", lambda: "user")
    assert "A system-wide service needs root" in str(install_problem("system"))
    assert install_problem("user") is None


def test_the_service_without_an_enrolment_stops_for_good(tmp_path: Path) -> None:
    done = agent_command("service", "run", "--state-dir", str(tmp_path / "none"))
    assert done.returncode == EXIT_NOT_ENROLLED
    assert "This computer is not enrolled" in done.stderr
    assert "the service has nothing to do and stops" in done.stderr


def desktop_exec(value: str) -> list[str]:
    """An Exec value read as the Desktop Entry Specification says: the string escapes of
    the value first, then the arguments (quoted ones unescaped), then %% -> %."""
    text = value.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")
    text = text.replace("\\\\", "\\")
    words: list[str] = []
    word, quoted, escaped, started = "", False, False, False
    for char in text:
        if escaped:
            word, escaped = word + char, False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted, started = not quoted, True
        elif char == " " and not quoted:
            if word or started:
                words.append(word)
            word, started = "", False
        else:
            word += char
    if word or started:
        words.append(word)
    return [w.replace("%%", "%") for w in words]


def test_a_system_service_also_starts_the_helper_at_every_sign_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule 5: the autostart entry (listed in service.json, removed by uninstall) runs
    ``puente-agent user-helper`` pointed at the service's socket, which service.json keeps."""
    units, xdg = tmp_path / "units", tmp_path / "xdg"
    monkeypatch.setattr(service_install, "unit_folder", lambda scope: units)
    monkeypatch.setattr(service_install, "systemd_running", lambda scope: False)
    monkeypatch.setenv("XDG_CONFIG_DIRS", f"{xdg}:/etc/xdg")
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    service, lines = install(folder, "cd" * 16, "system", 'Acme "IT"\n%evil')
    entry = xdg / "autostart" / "puente-device-cdcdcdcdcdcd-helper.desktop"
    assert service.files == (str(units / "puente-device-cdcdcdcdcdcd.service"), str(entry))
    assert service.helper_socket == "/run/puente/puente-device-cdcdcdcdcdcd.sock"
    assert stat.S_IMODE(entry.stat().st_mode) == 0o644
    assert f"Installed {entry}: it starts the helper" in "\n".join(lines)
    text = entry.read_text(encoding="utf-8")
    keys = dict(line.split("=", 1) for line in text.splitlines()[1:])
    assert text.startswith("[Desktop Entry]\n") and keys["Type"] == "Application"
    assert keys["NoDisplay"] == "true" and "\n" not in keys["Name"]
    assert desktop_exec(keys["Exec"]) == service_install.helper_command(Path(service.helper_socket))
    recorded = json.loads((folder / RECORD_FILE).read_text())
    assert recorded["helper_socket"] == service.helper_socket
    assert service_install.read_record(folder) == service

    # The helper runs as whoever signs in: a program only root can reach is said.
    private = not service_install._everyone_can_run(Path(sys.executable))
    assert ("other accounts cannot run" in "\n".join(lines)) == private

    said = uninstall(folder)
    assert said == [f"Removed: {units / 'puente-device-cdcdcdcdcdcd.service'}, {entry}."]
    assert not entry.exists()
    # A per-user service runs in its user's session already: no entry, no socket.
    user_service, _ = install(folder, "ef" * 16, "user", "Acme IT")
    assert user_service.helper_socket is None and len(user_service.files) == 1
    uninstall(folder)


@pytest.mark.parametrize(
    "word",
    ["/usr/bin/python3", "/opt/odd folder/100% $HOME/puente-agent", 'say "hi" `now`',
     "back\\slash", "tab\there", ""],
)  # fmt: skip
def test_an_exec_argument_reads_back_as_it_was(word: str) -> None:
    value = " ".join(service_install._exec_word(w) for w in ["prog", word, "--socket", "/s"])
    assert desktop_exec(value) == ["prog", word, "--socket", "/s"]


def test_a_program_in_a_private_folder_is_one_others_cannot_run(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    program = private / "puente-agent"
    program.write_text("#!/bin/sh\n", encoding="utf-8")
    program.chmod(0o755)
    assert not service_install._everyone_can_run(program)
    private.chmod(0o755)
    tmp_path.chmod(0o755)
    everyone = all(p.stat().st_mode & stat.S_IXOTH for p in tmp_path.parents)
    assert service_install._everyone_can_run(program) == everyone
    assert not service_install._everyone_can_run(tmp_path / "missing")
