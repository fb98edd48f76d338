"""Processes for SSH sessions: the customer's shell, with pipes or in a terminal.

Copies bytes between an SSH channel and a child process (or a pseudo-terminal), and
reconstructs the lines typed into a terminal for the customer's record.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh

#: After a command exits, how long to wait for its last output (background jobs may
#: keep the terminal open).
OUTPUT_GRACE = 1.0


def shell_argv(command: str | None, terminal: bool) -> list[str]:
    """The customer's own shell: interactive, or running ``command``."""
    if os.name == "nt":
        powershell = shutil.which("pwsh") or shutil.which("powershell") or "powershell.exe"
        if command:
            return [powershell, "-NoLogo", "-NoProfile", "-Command", command]
        return [powershell, "-NoLogo", "-NoProfile", "-Command", "-"]
    shell = os.environ.get("SHELL") or ""
    if not shell:
        with contextlib.suppress(ImportError, KeyError):
            import pwd

            shell = pwd.getpwuid(os.getuid()).pw_shell
    shell = shell or "/bin/sh"
    if command:
        return [shell, "-c", command]
    return [shell, "-l"] if terminal else [shell]


async def run_with_pipes(
    process: asyncssh.SSHServerProcess[bytes],
    command: str | None,
    started: Callable[[asyncio.subprocess.Process], None],
) -> int:
    """Run ``command`` (or the shell) with pipes; ``started`` gets the child at once."""
    child = await asyncio.create_subprocess_exec(
        *shell_argv(command, terminal=False),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(Path.home()),
        start_new_session=os.name != "nt",
    )
    started(child)
    assert child.stdin and child.stdout and child.stderr
    feed = asyncio.ensure_future(_feed_pipe(process, child.stdin))
    try:
        await asyncio.gather(
            _drain(child.stdout.read, process.stdout),
            _drain(child.stderr.read, process.stderr),
        )
        return _exit_status(await child.wait())
    finally:
        feed.cancel()


async def run_in_terminal(
    process: asyncssh.SSHServerProcess[bytes],
    command: str | None,
    term: str,
    started: Callable[[asyncio.subprocess.Process], None],
    on_line: Callable[[str], None],
) -> int:
    """Run ``command`` (or a login shell) in a new terminal; ``started`` gets the child
    at once, ``on_line`` each line typed (see :func:`_feed_terminal`)."""
    import fcntl
    import termios

    master, slave = os.openpty()
    try:
        width, height, pixwidth, pixheight = process.term_size
        if width and height:
            _set_window(master, width, height, pixwidth, pixheight)
        env = dict(os.environ, TERM=term)

        def take_terminal() -> None:  # in the child, after setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        child = await asyncio.create_subprocess_exec(
            *shell_argv(command, terminal=True),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=str(Path.home()),
            env=env,
            start_new_session=True,
            preexec_fn=take_terminal,
        )
    finally:
        os.close(slave)
    started(child)
    os.set_blocking(master, False)
    feed = asyncio.ensure_future(_feed_terminal(process, master, on_line))
    output = asyncio.ensure_future(_drain(lambda n: _read_fd(master, n), process.stdout))
    try:
        status = _exit_status(await child.wait())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(output), OUTPUT_GRACE)
        return status
    finally:
        feed.cancel()
        output.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await output
        os.close(master)


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _set_window(fd: int, width: int, height: int, pixwidth: int, pixheight: int) -> None:
    import fcntl
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, pixwidth, pixheight))


async def _drain(read: Callable[[int], Any], writer: asyncssh.SSHWriter[bytes]) -> None:
    """Copy a child's output to the SSH channel until end of file."""
    while True:
        data = await read(65536)
        if not data:
            return
        writer.write(data)
        await writer.drain()


async def _feed_pipe(
    process: asyncssh.SSHServerProcess[bytes], stdin: asyncio.StreamWriter
) -> None:
    """Copy the SSH channel's input to a child's stdin; close it at end of input."""
    try:
        while True:
            try:
                data = await process.stdin.read(65536)
            except (asyncssh.BreakReceived, asyncssh.SignalReceived, asyncssh.TerminalSizeChanged):
                continue
            if not data:
                break
            stdin.write(data)
            await stdin.drain()
    except (ConnectionError, asyncssh.Error):
        pass
    finally:
        with contextlib.suppress(Exception):
            stdin.close()


async def _feed_terminal(
    process: asyncssh.SSHServerProcess[bytes], master: int, on_line: Callable[[str], None]
) -> None:
    """Copy keystrokes to the terminal; apply window size changes and Ctrl-Break.

    Each line the technician types is handed to ``on_line`` for the customer's record,
    except while the terminal does not echo (a password prompt): that is not recorded.
    """
    typed = TypedLines(master)
    with contextlib.suppress(ConnectionError, asyncssh.Error, OSError):
        while True:
            try:
                data = await process.stdin.read(65536)
            except asyncssh.TerminalSizeChanged as exc:
                _set_window(master, exc.width, exc.height, exc.pixwidth, exc.pixheight)
                continue
            except asyncssh.BreakReceived:
                data = b"\x03"
            except asyncssh.SignalReceived:
                continue
            if not data:
                return
            for line in typed.feed(data):
                on_line(line)
            await _write_fd(master, data)


class TypedLines:
    """Best-effort reconstruction of the lines typed into a terminal, for the audit.

    Printable characters are kept, backspace removes one, Ctrl-C or Ctrl-U forget
    the line, escape sequences (arrow keys) are dropped. What the shell finally runs
    can differ (tab completion, history), so the record says "typed".
    """

    def __init__(self, master: int) -> None:
        self._master = master
        self._line: list[str] = []
        self._escape = False

    def _echoing(self) -> bool:
        import termios

        try:
            return bool(termios.tcgetattr(self._master)[3] & termios.ECHO)
        except (termios.error, OSError):
            return True

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        for ch in data.decode("utf-8", "replace"):
            if self._escape:
                self._escape = ch in "[O0123456789;?"  # inside an escape sequence
                continue
            if ch == "\x1b":
                self._escape = True
            elif ch in "\r\n":
                text = "".join(self._line).strip()
                self._line = []
                if text and self._echoing():
                    lines.append(text)
            elif ch in "\x7f\x08":
                if self._line:
                    self._line.pop()
            elif ch in "\x03\x15":
                self._line = []
            elif ch.isprintable():
                self._line.append(ch)
        return lines


async def _read_fd(fd: int, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    while True:
        try:
            return os.read(fd, size)
        except BlockingIOError:
            ready = loop.create_future()
            loop.add_reader(fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
        except OSError as exc:
            if exc.errno == errno.EIO:  # the terminal's last user went away
                return b""
            raise


async def _write_fd(fd: int, data: bytes) -> None:
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            ready = loop.create_future()
            loop.add_writer(fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_writer(fd)
