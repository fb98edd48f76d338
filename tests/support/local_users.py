"""Other local accounts for tests of what an enrolled device's service lets a local
user do (the signed-in user's helper): real accounts made with useradd, real processes
run as them with setpriv, removed afterwards.

Needs root, useradd/userdel and setpriv (util-linux); a test that needs them is
skipped, saying so, where they are missing.

The project's own interpreter may live where other accounts cannot reach it (this
sandbox's venv points into /root, which is 0700): :func:`python_for_others` then uses
the system's interpreter of the same version with the project and the venv's packages
on PYTHONPATH, so the code that runs as the other account is the same code.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LocalUser:
    """A local account made for a test, with a home folder of its own."""

    name: str
    uid: int
    gid: int
    home: Path

    def argv(self, *command: str) -> list[str]:
        """``command`` run as this account (no other groups, no capabilities)."""
        return [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            *command,
        ]

    def env(self, **extra: str) -> dict[str, str]:
        """A plain environment for this account's processes (nothing of root's)."""
        return {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            **extra,
        }


def need_local_users() -> None:
    if os.geteuid() != 0:
        pytest.skip("making local accounts needs root; run the tests as root (CI does)")
    for program in ("useradd", "userdel", "setpriv"):
        if shutil.which(program) is None:
            pytest.skip(f"{program} is missing (Debian: passwd, util-linux)")


@contextmanager
def local_users(count: int) -> Iterator[list[LocalUser]]:
    """``count`` new local accounts (puente-tPID-N), removed afterwards with their files."""
    need_local_users()
    made: list[LocalUser] = []
    try:
        for number in range(count):
            name = f"puente-t{os.getpid()}-{number}"
            subprocess.run(
                ["useradd", "--system", "--user-group", "--no-create-home",
                 "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            account = pwd.getpwnam(name)
            home = Path(tempfile.mkdtemp(prefix=f"{name}-home-"))
            os.chown(home, account.pw_uid, account.pw_gid)
            made.append(LocalUser(name, account.pw_uid, account.pw_gid, home))
        yield made
    finally:
        for user in made:
            subprocess.run(["userdel", user.name], check=False, capture_output=True)
            shutil.rmtree(user.home, ignore_errors=True)


def _reachable(path: Path) -> bool:
    """Whether any account can read ``path`` (every folder above it searchable)."""
    path = path.resolve()
    for folder in [*reversed(path.parents)]:
        if not folder.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IROTH)


def python_for_others() -> tuple[list[str], dict[str, str]]:
    """An interpreter another account can run with this checkout's code, and the
    environment it needs: this one if it is reachable, else the system's of the same
    version with the project and the venv's packages on PYTHONPATH (module docstring)."""
    if _reachable(Path(sys.executable)):
        return [str(Path(sys.executable).resolve())], {"PYTHONPATH": str(ROOT)}
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = Path("/usr/bin") / version
    packages = [Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")]
    if not system.exists() or not all(map(_reachable, [ROOT / "agent", *packages])):
        pytest.skip(
            f"no {version} that other accounts may run: this one is in a private folder "
            f"and /usr/bin/{version} is missing (apt-get install {version})"
        )
    path = ":".join(dict.fromkeys(str(p) for p in [ROOT, *packages]))
    return [str(system)], {"PYTHONPATH": path}


def shared_folder(prefix: str, owner: LocalUser | None = None) -> Path:
    """A new folder in /tmp that every account can search (0755), owned by ``owner``
    (or root): pytest's own tmp_path is private to root."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(folder, 0o755)
    if owner is not None:
        os.chown(folder, owner.uid, owner.gid)
    return folder
