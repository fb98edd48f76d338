"""An enrolled agent as a service: the definitions, and installing and removing them.

Rules:

1. The service runs :func:`service_command` (``puente-agent service run --state-dir
   FOLDER``: the enrolled agent in the foreground) under the account that enrolled:
   system-wide when that is root (``/etc/systemd/system``), per user otherwise
   (``~/.config/systemd/user``). The state folder stays 0700 and its files 0600, so
   the key and state are readable by the service's account only.
2. Everything installed is written down in ``service.json`` in the state folder
   (the unit, and the copied program of a one-file agent), so that unenrolling
   removes exactly that, stopping and disabling the service first.
3. Where systemd is not running (a container, a test sandbox) the unit is still
   written and the owner is told so, with the command to run under another
   supervisor; nothing pretends the service started.
4. The service exits with :data:`EXIT_NOT_ENROLLED` when it is not enrolled or the
   relay refused it; the unit tells systemd not to restart it then
   (``RestartPreventExitStatus``), as restarting cannot help.
5. A system-wide service has no display: it also installs an XDG autostart entry
   (``/etc/xdg/autostart``, the first of ``$XDG_CONFIG_DIRS``) that starts
   ``puente-agent user-helper`` in the desktop of whoever signs in, pointed at the
   service's socket (:mod:`agent.helper_hub`); the socket's path is kept in
   ``service.json`` for ``service run``, and the entry is removed with the unit.
6. Windows (a Task Scheduler definition run at start-up as SYSTEM) and macOS (a
   launchd plist) definitions are generated here (``puente-agent service show``) and
   linted by the CI build workflow; installing them is not in this build, and
   ``enrol`` says so on those systems before anything is spent.
"""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from agent.errors import EnrolmentFailed
from agent.i18n import t
from protocol.safe_text import safe_text

RECORD_FILE = "service.json"
EXIT_NOT_ENROLLED = 4
SYSTEMS = ("linux", "macos", "windows")
SCOPES = ("system", "user")


def current_system() -> str:
    if sys.platform.startswith("win"):
        return "windows"
    return "macos" if sys.platform == "darwin" else "linux"


def default_scope() -> str:
    """System-wide for root (or an administrator on Windows), per user otherwise."""
    geteuid = getattr(os, "geteuid", None)
    return "system" if geteuid is not None and geteuid() == 0 else "user"


def service_name(device_id: str) -> str:
    return f"puente-device-{device_id[:12]}"


def service_command(folder: Path, program: Path | None = None) -> list[str]:
    """The command line the service runs. ``program`` is the one-file agent's copy;
    an installed package runs through this Python."""
    if program is not None:
        return [str(program), "service", "run", "--state-dir", str(folder)]
    return [sys.executable, "-m", "agent.cli", "service", "run", "--state-dir", str(folder)]


def _systemd_word(word: str) -> str:
    """One ExecStart word, quoted as systemd reads it (specifiers and variables
    escaped, so a path with % or $ is taken literally)."""
    word = word.replace("%", "%%").replace("$", "$$")
    if word and not any(c in word for c in " \t\"'\\;"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_unit(command: Sequence[str], scope: str, organisation: str) -> str:
    """The systemd unit that keeps the enrolled agent running."""
    target = "multi-user.target" if scope == "system" else "default.target"
    organisation = "".join(c for c in organisation if c.isprintable() and c not in "%$\\")
    return (
        "[Unit]\n"
        f"Description=Puente enrolled device (help desk: {organisation})\n"
        "Documentation=https://github.com/puente/puente/blob/main/docs/DEVICES.md\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={' '.join(_systemd_word(word) for word in command)}\n"
        "Environment=PYTHONUNBUFFERED=1\n"
        "Restart=on-failure\n"
        "RestartSec=10\n"
        f"RestartPreventExitStatus={EXIT_NOT_ENROLLED}\n"
        "UMask=0077\n"
        "\n"
        "[Install]\n"
        f"WantedBy={target}\n"
    )


def launchd_plist(label: str, command: Sequence[str], folder: Path) -> bytes:
    """A launchd property list (LaunchDaemons for system, LaunchAgents for a user)."""
    return plistlib.dumps(
        {
            "Label": label,
            "ProgramArguments": list(command),
            "RunAtLoad": True,
            "KeepAlive": {"SuccessfulExit": False},
            "Umask": 0o077,
            "WorkingDirectory": str(folder),
            "StandardErrorPath": str(folder / "service.log"),
        }
    )


def windows_task(name: str, command: Sequence[str], scope: str) -> str:
    """A Task Scheduler definition (``schtasks /Create /XML FILE /TN NAME``): at start-up
    as SYSTEM (system) or at logon (user), restarted on failure, never stopped."""
    program, *arguments = command
    quoted = " ".join(f'"{a}"' if " " in a else a for a in arguments)
    trigger = "<BootTrigger>" if scope == "system" else "<LogonTrigger>"
    principal = (
        "<UserId>S-1-5-18</UserId><RunLevel>HighestAvailable</RunLevel>"
        if scope == "system"
        else "<LogonType>InteractiveToken</LogonType><RunLevel>LeastPrivilege</RunLevel>"
    )
    return (
        '<?xml version="1.0" encoding="UTF-16"?>\n'
        '<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">\n'
        f"  <RegistrationInfo><Description>Puente enrolled device ({escape(name)})"
        "</Description></RegistrationInfo>\n"
        f"  <Triggers>{trigger}<Enabled>true</Enabled>{trigger.replace('<', '</')}"
        "</Triggers>\n"
        f'  <Principals><Principal id="Author">{principal}</Principal></Principals>\n'
        "  <Settings>\n"
        "    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>\n"
        "    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>\n"
        "    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>\n"
        "    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>\n"
        "    <RestartOnFailure><Interval>PT1M</Interval><Count>999</Count></RestartOnFailure>\n"
        "  </Settings>\n"
        '  <Actions Context="Author">\n'
        f"    <Exec><Command>{escape(program)}</Command>"
        f"<Arguments>{escape(quoted)}</Arguments></Exec>\n"
        "  </Actions>\n"
        "</Task>\n"
    )


def definition_for(
    system: str, scope: str, name: str, command: Sequence[str], folder: Path, organisation: str
) -> bytes:
    """The service definition for ``system`` (see rule 6 for Windows and macOS)."""
    if system == "linux":
        return systemd_unit(command, scope, organisation).encode()
    if system == "macos":
        return launchd_plist(f"org.puente.{name}", command, folder)
    return windows_task(name, command, scope).encode("utf-16")


#: What needs quoting in a desktop entry's Exec key (the Desktop Entry Specification's
#: reserved characters).
_EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def _exec_word(word: str) -> str:
    """One Exec argument as a desktop entry reads it: quoted when it must be, with the
    field-code ``%`` doubled and the string escapes of the key's value applied."""
    word = word.replace("%", "%%")
    if word and not any(c in _EXEC_RESERVED for c in word):
        return word
    quoted = '"' + "".join("\\" + c if c in '"`$\\' else c for c in word) + '"'
    # Then the escapes of any string value of a desktop entry.
    for plain, escaped in (("\\", "\\\\"), ("\n", "\\n"), ("\t", "\\t"), ("\r", "\\r")):
        quoted = quoted.replace(plain, escaped)
    return quoted


def helper_command(socket: Path, program: Path | None = None) -> list[str]:
    """What the autostart entry runs in a person's desktop (rule 5)."""
    start = [str(program)] if program is not None else [sys.executable, "-m", "agent.cli"]
    return [*start, "user-helper", "--socket", str(socket)]


def autostart_entry(command: Sequence[str], organisation: str) -> str:
    """The XDG autostart entry that starts the helper at every sign-in (rule 5)."""
    organisation = safe_text(organisation, 100).replace("\\", "")
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        f"Name=Puente help desk requests ({organisation})\n"
        "Comment=Asks you when your help desk wants to connect to this computer, and shows "
        "a banner while it is connected\n"
        f"Exec={' '.join(_exec_word(word) for word in command)}\n"
        "Terminal=false\n"
        "NoDisplay=true\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


def autostart_folder() -> Path:
    """Where system-wide autostart entries live: the first of $XDG_CONFIG_DIRS."""
    first = (os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":")[0] or "/etc/xdg"
    return Path(first) / "autostart"


def unit_folder(scope: str) -> Path:
    if scope == "system":
        return Path("/etc/systemd/system")
    config = os.environ.get("XDG_CONFIG_HOME")
    return (Path(config) if config else Path.home() / ".config") / "systemd" / "user"


def systemd_running(scope: str) -> bool:
    """Whether a systemd manager for ``scope`` runs here (systemd's own test)."""
    if not Path("/run/systemd/system").is_dir() or shutil.which("systemctl") is None:
        return False
    if scope == "user":
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        return runtime is not None and Path(runtime, "systemd", "private").exists()
    return True


def _systemctl(scope: str, *args: str) -> str | None:
    """Run systemctl; None, or what it said when it failed."""
    command = ["systemctl", *(["--user"] if scope == "user" else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        return (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
    return None


def install_problem(scope: str) -> str | None:
    """Why a service cannot be installed here (checked before anything is spent)."""
    if current_system() != "linux":
        return t("service.unsupported", system=current_system())
    if scope == "system" and default_scope() != "system":
        return t("service.needs_root")
    return None


@dataclass(frozen=True)
class InstalledService:
    """What :func:`install` put in place (also kept in ``service.json``)."""

    name: str
    scope: str
    files: tuple[str, ...]
    command: tuple[str, ...]
    started: bool
    #: A system service's socket for the signed-in users' helpers (rule 5).
    helper_socket: str | None = None


def install(
    folder: Path, device_id: str, scope: str, organisation: str
) -> tuple[InstalledService, list[str]]:
    """Install the systemd service for the enrolment in ``folder``; what was done and
    the lines to show. Raises EnrolmentFailed (having removed what it wrote)."""
    name = service_name(device_id)
    files: list[str] = []
    program = None
    unit = unit_folder(scope) / f"{name}.service"
    try:
        if getattr(sys, "frozen", False):
            # A one-file agent may have been run from Downloads: keep a copy of our own.
            program = folder / "puente-agent"
            shutil.copy2(sys.executable, program)
            os.chmod(program, 0o700)
            files.append(str(program))
        command = service_command(folder, program)
        unit.parent.mkdir(parents=True, exist_ok=True)
        unit.write_text(systemd_unit(command, scope, organisation), encoding="utf-8")
        os.chmod(unit, 0o644)  # systemd reads it; it holds no secret
        files.append(str(unit))
        helper_socket = autostart = None
        if scope == "system":
            helper_socket, autostart = _install_helper(name, program, organisation, files)
    except OSError as exc:
        _remove(files)
        raise EnrolmentFailed(t("service.write_failed", path=unit, reason=exc)) from None
    running = systemd_running(scope)
    lines = [t("service.unit_written", path=unit)]
    if autostart is not None:
        lines.append(t("service.autostart_written", path=autostart))
        program_path = Path(service_command(folder, program)[0])
        if program is None and not _everyone_can_run(program_path):
            lines.append(t("service.helper_unreachable", path=program_path))
    started = False
    if running:
        problem = _systemctl(scope, "daemon-reload") or _systemctl(
            scope, "enable", "--now", f"{name}.service"
        )
        if problem is not None:
            _remove(files)
            _systemctl(scope, "daemon-reload")
            raise EnrolmentFailed(t("service.start_failed", name=name, reason=problem))
        started = True
        lines.append(t("service.started", name=name))
        if scope == "user":
            lines.append(t("service.linger"))
    else:
        lines.append(t("service.no_systemd", command=" ".join(command)))
    service = InstalledService(name, scope, tuple(files), tuple(command), started, helper_socket)
    record = {
        "name": name,
        "scope": scope,
        "files": files,
        "command": command,
        "started": started,
        "helper_socket": helper_socket,
    }
    path = folder / RECORD_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(record, file, indent=2)
    return service, lines


def _install_helper(
    name: str, program: Path | None, organisation: str, files: list[str]
) -> tuple[str, Path]:
    """Rule 5: the autostart entry (and, for a one-file agent, a copy every account may
    run: the one in the state folder is the service's alone); the socket and the entry."""
    from agent.helper_hub import socket_path

    socket = socket_path(name)
    if program is not None:
        shared = Path("/usr/local/lib") / f"{name}-agent"
        shared.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(program, shared)
        os.chmod(shared, 0o755)
        files.append(str(shared))
        program = shared
    entry = autostart_folder() / f"{name}-helper.desktop"
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(autostart_entry(helper_command(socket, program), organisation), "utf-8")
    os.chmod(entry, 0o644)
    files.append(str(entry))
    return str(socket), entry


def _everyone_can_run(program: Path) -> bool:
    """Whether every account may run ``program`` (each folder above it searchable):
    the helper runs as the person signed in, not as the service."""
    try:
        resolved = program.resolve()
        folders_ok = all(p.stat().st_mode & stat.S_IXOTH for p in resolved.parents)
        return folders_ok and bool(resolved.stat().st_mode & stat.S_IXOTH)
    except OSError:
        return False


def read_record(folder: Path) -> InstalledService | None:
    try:
        raw = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise EnrolmentFailed(t("service.record_unreadable", folder=folder, reason=exc)) from None
    return InstalledService(
        str(raw["name"]),
        str(raw["scope"]),
        tuple(map(str, raw["files"])),
        tuple(map(str, raw["command"])),
        bool(raw.get("started")),
        str(raw["helper_socket"]) if raw.get("helper_socket") else None,
    )


def _remove(files: Sequence[str]) -> list[str]:
    removed = []
    for name in files:
        try:
            Path(name).unlink()
        except FileNotFoundError:
            continue
        removed.append(name)
    return removed


def uninstall(folder: Path) -> list[str]:
    """Stop, disable and remove the service recorded in ``folder``; the lines to show
    (none when no service was installed)."""
    service = read_record(folder)
    if service is None:
        return []
    lines = []
    if systemd_running(service.scope):
        unit = f"{service.name}.service"
        problem = _systemctl(service.scope, "disable", "--now", unit)
        lines.append(
            t("service.stopped", name=service.name)
            if problem is None
            else t("service.stop_failed", name=service.name, reason=problem)
        )
    removed = _remove(service.files)
    if systemd_running(service.scope):
        _systemctl(service.scope, "daemon-reload")
    (folder / RECORD_FILE).unlink(missing_ok=True)
    if removed:
        lines.append(t("service.removed", files=", ".join(removed)))
    return lines
