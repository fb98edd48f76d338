"""Confinement of file-transfer paths to the customer's shared folder (agent.capabilities.shell.confinement.confine)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.capabilities.shell.confinement import check_folder, confine, shown_path
from agent.errors import PathRefused


@pytest.fixture
def shared(tmp_path: Path) -> str:
    root = tmp_path / "shared"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("a")
    (tmp_path / "outside.txt").write_text("secret")
    (root / "inside-link").symlink_to(root / "docs" / "a.txt")
    (root / "escape-link").symlink_to(tmp_path / "outside.txt")
    (root / "escape-dir").symlink_to(tmp_path)
    return os.path.realpath(root)


@pytest.mark.parametrize(
    ("client_path", "expected"),
    [
        ("docs/a.txt", "docs/a.txt"),
        ("/docs/a.txt", "docs/a.txt"),  # "/" is the shared folder
        ("docs/../docs/./a.txt", "docs/a.txt"),
        ("", ""),
        ("/", ""),
        ("new-file.bin", "new-file.bin"),  # need not exist yet (put)
        ("inside-link", "docs/a.txt"),  # links inside the folder are fine
        ("docs\\a.txt", "docs/a.txt"),
    ],
)
def test_paths_inside_are_mapped(shared: str, client_path: str, expected: str) -> None:
    assert confine(shared, client_path) == os.path.join(
        shared, *expected.split("/") if expected else []
    )


@pytest.mark.parametrize(
    "client_path",
    [
        "..",
        "../outside.txt",
        "/../outside.txt",
        "docs/../../outside.txt",
        "escape-link",  # a link inside pointing out
        "escape-dir/outside.txt",  # through a linked folder
        "escape-dir",
    ],
)
def test_escapes_are_refused(shared: str, client_path: str) -> None:
    with pytest.raises(PathRefused, match="outside the folder the customer shared"):
        confine(shared, client_path)


def test_no_follow_acts_on_the_link_itself(shared: str) -> None:
    # Removing or lstat-ing a link that points out is about the link, inside the folder...
    assert confine(shared, "escape-link", follow=False) == os.path.join(shared, "escape-link")
    # ...but folders above it are still resolved.
    with pytest.raises(PathRefused):
        confine(shared, "escape-dir/outside.txt", follow=False)


def test_shown_path(shared: str) -> None:
    assert shown_path(shared, shared) == "/"
    assert shown_path(shared, os.path.join(shared, "docs", "a.txt")) == "/docs/a.txt"


def test_check_folder(tmp_path: Path) -> None:
    assert check_folder(str(tmp_path)) == os.path.realpath(tmp_path)
    with pytest.raises(ValueError, match="There is no folder"):
        check_folder(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="There is no folder"):
        check_folder(str(tmp_path / "shared-file"))


def test_typed_lines_for_the_record() -> None:
    import termios

    from agent.capabilities.shell.processes import TypedLines

    master, slave = os.openpty()
    try:
        typed = TypedLines(master)
        assert typed.feed(b"ls -l\r") == ["ls -l"]
        assert typed.feed(b"ech") == []
        assert typed.feed(b"o hi\x7f\x7fyo\r") == ["echo yo"]  # backspaces
        assert typed.feed(b"\x1b[A\x1b[B\r") == []  # arrow keys alone: nothing typed
        assert typed.feed(b"oops\x03\r") == []  # Ctrl-C forgets the line
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO  # a password prompt turns echo off
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        assert typed.feed(b"secret-password\r") == []
    finally:
        os.close(master)
        os.close(slave)
