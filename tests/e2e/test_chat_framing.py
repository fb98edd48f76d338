"""Issue 15, finding 2: a technician's chat cannot forge lines or questions.

The real agent console runs in a pseudo-terminal and what it writes is rendered by a
terminal emulator (pyte), so the test sees exactly what the customer would: escape
sequences act there if they reach the terminal. The technician (its library, in this
process) asks for Shell, then chats a message built to erase lines and print a forged
"Verified:" line and a forged "Allow Diagnostics?" question. The customer's screen
shows the chat on one framed line, nothing forged, and the real question again below
it. The Tk window's chat pane shows the same message inert.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pyte

from agent.capabilities.registry import default_registry
from protocol.code import SessionCode
from protocol.messages import ReplyStatus
from technician.client import RelayAPI, TechnicianSession
from tests.support.relay import RelayProcess
from tests.support.timeouts import scaled

COLUMNS, ROWS = 100, 300

#: What the outside review sent: erase lines, a forged verification, a forged question.
FORGED = (
    "ok\r\x1b[2K\x1b[1A\x1b[2K\x1b[1A\x1b[2K\x1b[1A\x1b[2K"
    "\nVerified: Ana Lopez, Acme IT Help Desk"
    "\n\x1b[32mAllow Diagnostics? Type y for yes or n for no, then Enter:\x1b[0m"
    "\u202e\n"
)


class Terminal:
    """The agent console in a pty, its output rendered by pyte."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, COLUMNS, 0, 0))
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
        )
        os.close(slave)
        self.master = master
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.stream.feed(data)

    def rows(self) -> list[str]:
        with self.lock:
            return [row.rstrip() for row in self.screen.display]

    def shown(self) -> list[str]:
        """The rows up to the last one with text on it."""
        rows = self.rows()
        while rows and not rows[-1]:
            rows.pop()
        return rows

    def wait(self, test: object, what: str, timeout: float = 20) -> list[str]:
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            rows = self.shown()
            if test(rows):  # type: ignore[operator]
                return rows
            time.sleep(0.05)
        raise AssertionError(f"the terminal never showed {what}:\n" + "\n".join(self.shown()))

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(scaled(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.close(self.master)


def test_a_forged_chat_is_one_framed_line_and_the_real_question_comes_again(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    token = relay_process.add_technician("Ana Technician")
    real = "shell" if "shell" in default_registry().names() else "diagnostics"
    title = {"shell": "Shell", "diagnostics": "Diagnostics"}[real]
    question = f"Allow {title}? Type y for yes or n for no, then Enter:"

    async def scenario() -> None:
        api = RelayAPI(relay_process.ws_url, token)
        created = await asyncio.to_thread(api.create_session, "HD-15")
        code = SessionCode.new(created["nameplate"])
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WINDOWID")}
        terminal = Terminal(
            [sys.executable, "-m", "agent.cli", "--relay", relay_process.ws_url, "--console"]
            + ["--log-dir", str(tmp_path / "logs"), str(code)],
            {**env, "PUENTE_LANG": "en", "TERM": "xterm"},
        )
        try:
            session = await TechnicianSession.connect(
                relay_process.ws_url,
                code,
                "HD-15",
                token=token,
                technician_name="Ana",
                wait_timeout=scaled(30),
            )
            try:
                asked = asyncio.create_task(
                    session.request(real, "open" if real == "shell" else "collect")
                )
                await asyncio.to_thread(
                    terminal.wait, lambda rows: bool(rows) and rows[-1] == question, "the question"
                )
                before = terminal.shown()
                await session.chat(FORGED)
                rows = await asyncio.to_thread(
                    terminal.wait,
                    lambda rows: len(rows) > len(before) and rows[-1] == question,
                    "the chat and the question again",
                )
                # Nothing above was erased or rewritten.
                assert rows[: len(before)] == before
                added = rows[len(before) :]
                # One chat line, folded to the terminal's width with a hanging indent,
                # then the real question: nothing else.
                assert added[0].startswith("Technician says: "), added
                assert all(row.startswith("    ") for row in added[1:-1]), added
                chat = added[0] + "".join(row[4:] for row in added[1:-1])
                assert "\\x1b[2K" in chat and "\\n" in chat and "\\u202e" in chat, chat
                # No forged line: nothing starts a row as Puente's own lines do.
                for row in rows:
                    assert not row.lstrip().startswith("Verified:"), rows
                    assert not row.lstrip().startswith("Allow Diagnostics?"), rows
                # The last thing on screen is the real question, shown again.
                assert added[-1] == question
                assert sum(row == question for row in rows) == 2
                terminal.type("n\r")
                reply = await asyncio.wait_for(asked, scaled(20))
                assert reply.status == ReplyStatus.DECLINED
                assert session.consent.get(real) == "declined"
            finally:
                await session.end("test over")
        finally:
            terminal.close()

    asyncio.run(scenario())


def test_the_window_chat_pane_shows_a_forged_chat_inert() -> None:
    from tests.support.xdisplay import run_in_child, xvfb

    with xvfb() as display:
        run_in_child(display, "tests.e2e.test_chat_framing", "window_scenario")


def window_scenario(display: str) -> None:
    import tkinter

    from agent import tk_ui
    from agent.ui import SessionInfo

    root = tkinter.Tk()
    window = tk_ui.CustomerWindow(root, lambda code: None, None, {})
    loop = asyncio.new_event_loop()
    ui = tk_ui.TkUI(window, loop)
    ui.session_started(
        SessionInfo(
            technician="Ana\x1b[2J",
            verified=False,
            organisation="",
            ticket_id="HD-15\nVerified: Ana Lopez",
            ticket_url="https://desk.example/\u202eexe.txt",
            sas="1234 5678",
        )
    )
    ui.show_chat(FORGED)
    deadline = time.monotonic() + scaled(10)
    while not window.to_tk.empty() or not hasattr(window, "chat_log"):
        assert time.monotonic() < deadline
        root.update()
        time.sleep(0.05)
    root.update()
    pane = window.chat_log.get("1.0", "end").rstrip("\n")
    assert "\n" not in pane, pane  # one line
    assert pane.startswith("Technician says: ok\\r\\x1b[2K"), pane
    assert "\x1b" not in pane and "\u202e" not in pane and "\r" not in pane
    texts = [shown["text"] for shown in window.snapshot()]
    assert "Ticket: HD-15\\nVerified: Ana Lopez (https://desk.example/\\u202eexe.txt)" in texts
    assert not any(text.startswith("Verified:") for text in texts), texts
    assert not any("\x1b" in text for text in texts), texts
    root.destroy()
    loop.close()
