"""What the technician names, confined to the customer's shared folder and made safe to show.

Rules (the ``files`` capability's; every SFTP operation goes through them):

1. Every path an SFTP client names is canonicalised and confined by :func:`confine`:
   ``..`` above the shared folder is refused, and symbolic links are resolved, so a
   link that leads outside the folder is refused too.
2. What is checked is what is opened: :func:`open_confined` and :func:`open_parent`
   walk from the shared folder's descriptor one component at a time with
   ``O_NOFOLLOW`` (``dir_fd``), so a component swapped for a link after the check
   is refused (:class:`agent.errors.LinkRefused`), never followed. Hashes shown to
   the customer are taken from the opened descriptor.
3. Writes (create, write, rename onto, mkdir, setstat) to a start-up or
   shell-initialisation location (:func:`startup_location`) are refused, whatever
   folder the customer shared, and so is any mode with setuid or setgid
   (:func:`check_mode`).
4. The default folder is ``~/Puente shared`` (created on demand, 0700), never the
   home folder; :func:`check_folder` checks the customer's answer to "which folder?".
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

from agent.errors import LinkRefused, PathRefused, WriteRefused
from agent.i18n import t

#: The folder Files shares unless the customer picks another (inside their home).
SHARED_FOLDER_NAME = "Puente shared"

#: Start-up and shell-initialisation locations, relative to the home folder: a file
#: written there (or in a folder named here) runs later without Shell consent.
HOME_STARTUP_LOCATIONS = (
    # Shells (bash, sh, zsh, csh, ksh, fish) and login sessions.
    ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile", ".zshrc",
    ".zshenv", ".zprofile", ".zlogin", ".zlogout", ".cshrc", ".tcshrc", ".login",
    ".logout", ".kshrc", ".mkshrc", ".inputrc", ".xprofile", ".xinitrc", ".xsession",
    ".xsessionrc", ".pam_environment", ".config/fish", ".config/environment.d",
    # Keys and tools that run commands from their configuration.
    ".ssh", ".gnupg", ".gitconfig", ".config/git", ".forward", ".mailcap", ".npmrc",
    ".pythonrc", ".pythonrc.py",
    # Folders on the default PATH.
    "bin", ".local/bin",
    # Desktop autostart and user services (Linux).
    ".config/autostart", ".config/systemd", ".local/share/systemd", ".config/upstart",
    ".config/plasma-workspace", ".kde/Autostart", ".kde4/Autostart", ".config/lxsession",
    ".config/openbox/autostart", ".config/i3/config", ".config/sway/config",
    # macOS.
    "Library/LaunchAgents", "Library/LaunchDaemons", "Library/StartupItems",
    "Library/Preferences/com.apple.loginitems.plist",
    # Windows.
    "AppData/Roaming/Microsoft/Windows/Start Menu/Programs/Startup",
    "Documents/WindowsPowerShell", "Documents/PowerShell",
)  # fmt: skip

#: The same for the whole computer (writable only when the agent runs as an
#: administrator): system configuration, cron, services, autostart.
SYSTEM_STARTUP_LOCATIONS = (
    "/etc", "/var/spool/cron", "/var/spool/at", "/usr/lib/systemd", "/lib/systemd",
    "/usr/local/bin", "/usr/local/sbin", "/Library/LaunchAgents", "/Library/LaunchDaemons",
    "/Library/StartupItems", "C:/ProgramData/Microsoft/Windows/Start Menu/Programs/StartUp",
)  # fmt: skip

_SETID_BITS = stat.S_ISUID | stat.S_ISGID
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
#: Opening relative to a folder's descriptor without following links works on Linux and
#: macOS; elsewhere (Windows) opens fall back to the checked path.
DESCRIPTOR_WALK = bool(_NOFOLLOW) and os.open in os.supports_dir_fd

# Paths ------------------------------------------------------------------------------


def confine(root: str, client_path: str, *, follow: bool = True) -> str:
    """The local path for ``client_path`` inside ``root``, or :class:`PathRefused`.

    ``root`` must already be canonical (``os.path.realpath``). The client sees the
    shared folder as ``/``: absolute and relative paths both start there. A ``..``
    that climbs above it is refused, as is any path whose canonical form (symbolic
    links resolved) lies outside. With ``follow=False`` the last component is not
    resolved (lstat, remove, rename act on a link itself), but every folder above it
    is.
    """
    parts: list[str] = []
    for part in client_path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise PathRefused(client_path)
            parts.pop()
            continue
        if os.name == "nt" and (":" in part):
            raise PathRefused(client_path)  # drive letters and streams (C:, file:ads)
        parts.append(part)
    local = os.path.join(root, *parts)
    if follow or not parts:
        canonical = os.path.realpath(local)
    else:
        canonical = os.path.join(os.path.realpath(os.path.dirname(local)), parts[-1])
    if canonical != root and not canonical.startswith(root.rstrip(os.sep) + os.sep):
        raise PathRefused(client_path)
    return canonical


def shown_path(root: str, local: str) -> str:
    """How a confined local path is shown to the technician: relative to ``/``."""
    relative = os.path.relpath(local, root)
    return "/" if relative == "." else "/" + relative.replace(os.sep, "/")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"  # pragma: no cover - loop always returns


def default_folder() -> str:
    """``~/Puente shared``: what Files shares unless the customer picks another folder."""
    return str(Path.home() / SHARED_FOLDER_NAME)


def check_folder(answer: str) -> str:
    """The canonical folder for the customer's answer, or ValueError saying what to do.

    The default folder is created on demand, readable by the customer only (0700).
    """
    path = Path(answer.strip()).expanduser()
    if not path.is_absolute():
        path = Path.home() / path
    if path == Path(default_folder()) and not path.exists():
        path.mkdir(mode=0o700)
        os.chmod(path, 0o700)
    if not path.is_dir():
        raise ValueError(t("files.no_folder", path=str(path)))
    return os.path.realpath(path)


# Start-up locations and modes -----------------------------------------------------------


def _comparable(path: str) -> str:
    path = os.path.normcase(path).replace("\\", "/").rstrip("/") or "/"
    return path.lower() if sys.platform in ("darwin", "win32") else path


def _startup_locations() -> list[str]:
    home = os.path.realpath(Path.home())
    return [
        _comparable(os.path.join(home, *name.split("/"))) for name in HOME_STARTUP_LOCATIONS
    ] + [_comparable(name) for name in SYSTEM_STARTUP_LOCATIONS]


def startup_location(local: str, *, holding: bool = False) -> str | None:
    """The start-up location ``local`` is or lies inside, or None.

    ``local`` is canonical (from :func:`confine`). With ``holding``, a folder that
    contains a start-up location counts too (a folder renamed onto ``~/.config``
    would bring its own ``autostart``).
    """
    path = _comparable(local)
    for location in _startup_locations():
        if path == location or path.startswith(location + "/"):
            return location
        if holding and location.startswith(path.rstrip("/") + "/"):
            return location
    return None


def check_write(root: str, local: str, *, holding: bool = False) -> None:
    """Refuse (:class:`WriteRefused`) a write that could make something run later."""
    if startup_location(local, holding=holding) is not None:
        raise WriteRefused(
            f"{shown_path(root, local)} is a start-up or shell-initialisation location "
            "(a file there runs programs later), so file transfer may not change it; "
            "ask the customer to allow Shell if this change is really needed."
        )


def check_mode(root: str, local: str, mode: int | None) -> None:
    """Refuse (:class:`WriteRefused`) a mode that sets setuid or setgid."""
    if mode is not None and mode & _SETID_BITS:
        raise WriteRefused(
            f"Setting the setuid or setgid bit (mode {mode & 0o7777:04o}) on "
            f"{shown_path(root, local)} is not allowed in a Puente session; "
            "use a mode without them, such as 0755 or 0644."
        )


# Opening without following links -----------------------------------------------------------


def _relative_parts(root: str, local: str) -> list[str]:
    relative = os.path.relpath(local, root)
    return [] if relative == "." else relative.split(os.sep)


def _refuse_links(root: str, local: str, exc: OSError) -> OSError | LinkRefused:
    """ELOOP (EMLINK on BSD) means a link where the check saw none; so does ENOTDIR
    when a link now stands in a folder's place."""
    if exc.errno in (errno.ELOOP, getattr(errno, "EMLINK", -1)):
        return LinkRefused(shown_path(root, local))
    if exc.errno == errno.ENOTDIR:
        walked = root
        for part in _relative_parts(root, local):
            walked = os.path.join(walked, part)
            if os.path.islink(walked):
                return LinkRefused(shown_path(root, local))
    return exc


def open_parent(root: str, local: str) -> tuple[int, str]:
    """A descriptor of the folder holding ``local`` and ``local``'s last name.

    The folder is reached from ``root``'s descriptor one component at a time, never
    following a link (:class:`LinkRefused` if one appeared since :func:`confine`).
    The caller closes the descriptor. ``local`` must be canonical and inside
    ``root``, and not ``root`` itself.
    """
    parts = _relative_parts(root, local)
    if not parts:
        raise PathRefused("/")
    if not DESCRIPTOR_WALK:  # pragma: no cover - Windows
        return os.open(os.path.dirname(local), os.O_RDONLY), parts[-1]
    fd = os.open(root, os.O_RDONLY | _DIRECTORY)
    try:
        for part in parts[:-1]:
            following = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = following
    except OSError as exc:
        os.close(fd)
        raise _refuse_links(root, local, exc) from None
    return fd, parts[-1]


def open_confined(root: str, local: str, flags: int, mode: int = 0o666) -> int:
    """``os.open`` of the checked path ``local``, walked from ``root`` without following links.

    Returns the descriptor (the caller closes it). A link anywhere on the way,
    including the last component, is refused with :class:`LinkRefused`.
    """
    if not DESCRIPTOR_WALK:  # pragma: no cover - Windows
        return os.open(local, flags, mode)
    if not _relative_parts(root, local):
        return os.open(root, flags)
    parent, name = open_parent(root, local)
    try:
        return os.open(name, flags | _NOFOLLOW, mode, dir_fd=parent)
    except OSError as exc:
        raise _refuse_links(root, local, exc) from None
    finally:
        os.close(parent)
