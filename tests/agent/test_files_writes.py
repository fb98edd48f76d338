"""Files cannot become code execution: the default folder, start-up locations, setuid,
and opening without following links (agent.capabilities.shell.confinement)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from agent.capabilities.shell.confinement import (
    check_folder,
    check_mode,
    check_write,
    confine,
    default_folder,
    open_confined,
    open_parent,
    startup_location,
)
from agent.capabilities.shell.service import _file_digest
from agent.errors import LinkRefused, WriteRefused


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return Path(os.path.realpath(home))


def test_the_default_folder_is_created_private_and_is_not_home(home: Path) -> None:
    assert default_folder() == str(home / "Puente shared")
    assert check_folder(default_folder()) == str(home / "Puente shared")
    assert stat.S_IMODE((home / "Puente shared").stat().st_mode) == 0o700
    assert check_folder(default_folder()) == str(home / "Puente shared")  # already there


@pytest.mark.parametrize(
    "relative",
    [
        ".bashrc",
        ".profile",
        ".bash_profile",
        ".zshrc",
        ".ssh",
        ".ssh/authorized_keys",
        ".config/autostart/x.desktop",
        ".config/systemd/user/evil.service",
        "Library/LaunchAgents/org.evil.plist",
        "AppData/Roaming/Microsoft/Windows/Start Menu/Programs/Startup/evil.bat",
    ],
)
def test_startup_locations_are_refused(home: Path, relative: str) -> None:
    local = str(home.joinpath(*relative.split("/")))
    assert startup_location(local) is not None
    with pytest.raises(WriteRefused, match="start-up or shell-initialisation location") as caught:
        check_write(str(home), local)
    assert "ask the customer to allow Shell" in str(caught.value)
    assert "/" + relative in str(caught.value)


def test_ordinary_files_and_system_folders(home: Path) -> None:
    check_write(str(home), str(home / "notes.txt"))
    check_write(str(home), str(home / ".config" / "app.ini"))
    check_write(str(home), str(home / ".bashrc-notes.txt"))
    with pytest.raises(WriteRefused):
        check_write("/", "/etc/cron.d/job")
    # Renaming a folder onto ~/.config would bring an autostart/ folder with it.
    check_write(str(home), str(home / ".config"))
    with pytest.raises(WriteRefused):
        check_write(str(home), str(home / ".config"), holding=True)


@pytest.mark.parametrize("mode", [0o4755, 0o2755, 0o6777])
def test_setuid_and_setgid_are_refused(home: Path, mode: int) -> None:
    with pytest.raises(WriteRefused, match="setuid or setgid") as caught:
        check_mode(str(home), str(home / "tool"), mode)
    assert f"{mode:04o}" in str(caught.value)
    assert "use a mode without them" in str(caught.value)
    check_mode(str(home), str(home / "tool"), 0o755)
    check_mode(str(home), str(home / "tool"), None)


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    root = tmp_path / "shared"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "report.txt").write_text("the customer's report")
    (tmp_path / "secret.txt").write_text("outside the shared folder")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "report.txt").write_text("outside too")
    return Path(os.path.realpath(root))


def test_a_file_swapped_for_a_link_after_the_check_is_not_followed(
    shared: Path, tmp_path: Path
) -> None:
    local = confine(str(shared), "docs/report.txt")  # the check: a plain file inside
    (shared / "docs" / "report.txt").unlink()
    (shared / "docs" / "report.txt").symlink_to(tmp_path / "secret.txt")  # the swap
    with pytest.raises(LinkRefused, match="does not follow links") as caught:
        open_confined(str(shared), local, os.O_RDONLY)
    assert "/docs/report.txt" in str(caught.value)
    # Nor is a file created through it (O_CREAT would follow a dangling link).
    (shared / "docs" / "report.txt").unlink()
    (shared / "docs" / "report.txt").symlink_to(tmp_path / "planted.txt")
    with pytest.raises(LinkRefused):
        open_confined(str(shared), local, os.O_WRONLY | os.O_CREAT)
    assert not (tmp_path / "planted.txt").exists()


def test_a_folder_swapped_for_a_link_after_the_check_is_not_followed(
    shared: Path, tmp_path: Path
) -> None:
    local = confine(str(shared), "docs/report.txt")
    (shared / "docs").rename(shared / "docs-moved")
    (shared / "docs").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(LinkRefused):
        open_confined(str(shared), local, os.O_RDONLY)
    with pytest.raises(LinkRefused):
        open_parent(str(shared), local)


def test_the_hash_is_of_what_was_opened(shared: Path, tmp_path: Path) -> None:
    original = (shared / "docs" / "report.txt").read_bytes()
    local = confine(str(shared), "docs/report.txt")
    fd = open_confined(str(shared), local, os.O_RDONLY)
    try:
        # Swapped after the open: the path now names the secret, the descriptor does not.
        (shared / "docs" / "swap").symlink_to(tmp_path / "secret.txt")
        os.replace(shared / "docs" / "swap", shared / "docs" / "report.txt")
        size, sha = _file_digest(fd, None, lambda: None)
    finally:
        os.close(fd)
    assert (size, sha) == (len(original), hashlib.sha256(original).hexdigest())
    assert sha != hashlib.sha256((tmp_path / "secret.txt").read_bytes()).hexdigest()


def test_links_checked_inside_the_folder_still_open(shared: Path) -> None:
    (shared / "inside-link").symlink_to(shared / "docs" / "report.txt")
    local = confine(str(shared), "inside-link")  # resolved by the check...
    fd = open_confined(str(shared), local, os.O_RDONLY)  # ...so the walk sees no link
    try:
        assert os.read(fd, 100) == b"the customer's report"
    finally:
        os.close(fd)
