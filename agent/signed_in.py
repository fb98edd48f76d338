"""Who is signed in at this computer's screen: the rule by which an enrolled device's
service accepts the helper of a local user (:mod:`agent.helper_hub`).

The service runs as root, without a display; a helper in a user's desktop connects to
it over a Unix socket, and the kernel tells the service the helper's uid
(``SO_PEERCRED``). That uid may be asked "let the technician in?" only if it is the
person signed in at the screen, by these rules:

1. With systemd-logind (``loginctl`` answers), the uid must own a session that is
   active, local (``Remote=no``), graphical (``Type`` x11, wayland or mir) and a user's
   (``Class=user``: not the login screen's greeter). Only logind's word counts then.
2. Without logind (``loginctl`` is missing, or it cannot reach logind: a container, a
   computer without systemd), the uid must own the socket of the local X display the
   helper names (``:N`` -> ``/tmp/.X11-unix/XN``). Limits: an X server a user started
   themselves (Xvfb, Xephyr) counts as theirs; where the X server runs as root (a
   display manager without logind) nobody is accepted, and the console rule applies.
3. Everything else is refused, with a sentence for the service's log: another local
   user's helper, a process of a user not signed in, a remote display, a display
   that does not exist.

``loginctl`` is found on PATH; the tests put a scripted one there (real logind needs
systemd as init, which their sandbox lacks).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: The folder of the local X servers' sockets.
X11_SOCKETS = Path("/tmp/.X11-unix")
GRAPHICAL_TYPES = ("x11", "wayland", "mir")
LOGINCTL_TIMEOUT = 5.0
_DISPLAY = re.compile(r"(?:unix)?:(\d{1,5})(?:\.\d{1,3})?")


@dataclass(frozen=True)
class Verdict:
    """Whether a uid is signed in at the screen; ``how`` (``logind`` or ``x11``) when
    it is, and a sentence for the service's log either way."""

    signed_in: bool
    how: str
    sentence: str


def user_name(uid: int) -> str:
    """The account name of ``uid`` (its number if it has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class SignedInUsers:
    """Applies the module's rules; every call asks afresh (sessions come and go)."""

    def __init__(self, loginctl: str = "loginctl", x11_sockets: Path = X11_SOCKETS) -> None:
        self._loginctl = loginctl
        self._x11_sockets = x11_sockets

    def check(self, uid: int, display: str) -> Verdict:
        """Whether ``uid``, whose helper names ``display``, is signed in (rules 1-3)."""
        return self.check_many([(uid, display)])[0]

    def check_many(self, helpers: list[tuple[int, str]]) -> list[Verdict]:
        """:meth:`check` for each ``(uid, display)``, asking logind once for all."""
        owners = self.logind_owners()
        return [self._verdict(uid, display, owners) for uid, display in helpers]

    def _verdict(self, uid: int, display: str, owners: set[int] | None) -> Verdict:
        who = f"{user_name(uid)} (uid {uid})"
        if owners is not None:
            if uid in owners:
                return Verdict(True, "logind", f"{who} has an active graphical session.")
            return Verdict(
                False,
                "",
                f"{who} has no active graphical session on this computer (logind); only "
                "the person signed in at the screen may be asked.",
            )
        return self._x11_owner(uid, display, who)

    def logind_owners(self) -> set[int] | None:
        """The uids with an active local graphical session (rule 1); None without logind."""
        program = shutil.which(self._loginctl)
        if program is None:
            return None
        listed = self._run(program, "list-sessions", "--no-legend")
        if listed is None:
            return None
        owners: set[int] = set()
        for line in listed.splitlines():
            words = line.split()
            if not words:
                continue
            shown = self._run(
                program,
                "show-session",
                words[0],
                "--property=Uid",
                "--property=Type",
                "--property=Active",
                "--property=Remote",
                "--property=Class",
            )
            if shown is None:
                continue  # the session ended meanwhile
            values = dict(item.split("=", 1) for item in shown.splitlines() if "=" in item)
            if (
                values.get("Type") in GRAPHICAL_TYPES
                and values.get("Active") == "yes"
                and values.get("Remote") == "no"
                and values.get("Class") == "user"
                and values.get("Uid", "").isdigit()
            ):
                owners.add(int(values["Uid"]))
        return owners

    def _run(self, program: str, *args: str) -> str | None:
        try:
            done = subprocess.run(
                [program, *args, "--no-pager"],
                capture_output=True,
                text=True,
                timeout=LOGINCTL_TIMEOUT,
                env={**os.environ, "LC_ALL": "C", "SYSTEMD_COLORS": "0"},
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    def _x11_owner(self, uid: int, display: str, who: str) -> Verdict:
        """Rule 2: the owner of the named local display's socket."""
        found = _DISPLAY.fullmatch(display.strip())
        if found is None:
            return Verdict(
                False,
                "",
                f"{who} names the display {display!r}, which is not a local X display "
                "(:N); without logind only the owner of a local display may be asked.",
            )
        socket_path = self._x11_sockets / f"X{int(found.group(1))}"
        try:
            info = socket_path.lstat()
        except OSError:
            return Verdict(False, "", f"{who} names the display {display}, which is not running.")
        if not stat.S_ISSOCK(info.st_mode):
            return Verdict(False, "", f"{socket_path} is not an X server's socket.")
        if info.st_uid != uid:
            return Verdict(
                False,
                "",
                f"{who} is not signed in at the display {display}: it belongs to "
                f"{user_name(info.st_uid)}.",
            )
        return Verdict(True, "x11", f"{who} owns the display {display}.")


__all__ = ["SignedInUsers", "Verdict", "user_name"]
