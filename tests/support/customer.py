"""Honest test doubles for people: a scripted customer and a technician process.

``ScriptedCustomer`` runs the real ``puente-agent --console`` in a subprocess and
answers its questions on stdin the way a customer at the keyboard would, following
a script: which permissions to allow, and lines to type when something appears.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.timeouts import scaled

ASK = re.compile(r"^Allow (.+)\? Type y")
RATE = re.compile(r"^How would you rate this help, 1 to 5\?")
COMMENT = re.compile(r"^Any comment for the help desk\?")
#: A follow-up question after a yes (files: which folder); Enter keeps the default.
CHOICE = re.compile(r"^(Which .+\?) Press Enter for")


#: Every process a test started; the ``reap_processes`` fixture ends them all.
LIVE: list[Process] = []


class Process:
    """A subprocess whose stdout lines are collected by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, stdin: bool = False):
        LIVE.append(self)
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # English unless a test asks otherwise, whatever this machine's locale.
            env={**os.environ, "PUENTE_LANG": "en", **(env or {})},
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.stderr = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait for a stdout line matching ``pattern``; return the match."""
        deadline = time.monotonic() + scaled(timeout)
        regex = re.compile(pattern)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} in {self.lines!r}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"process ended before {pattern!r}: {self.lines!r} {self.read_stderr()}"
                )
            match = regex.search(line)
            if match:
                return match

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout=scaled(timeout))
        self.read_stderr()
        return code

    def read_stderr(self) -> str:
        if self.proc.poll() is not None and self.proc.stderr and not self.proc.stderr.closed:
            self.stderr = self.proc.stderr.read()
            self.proc.stderr.close()
        return self.stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.close()

    def close(self) -> None:
        """Release the pipes (the process must have ended)."""
        self.read_stderr()
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        self._reader.join(scaled(5))
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


class ScriptedCustomer(Process):
    """The real agent, driven through its console by a script.

    ``answers`` maps a capability title ("Diagnostics") to "y" or "n", or to a list of
    lines typed at successive showings of that question (["script", "y"]: read the
    script first, then allow). ``after`` maps a regex to a line to type once a
    matching line appears (once each). Questions not in ``answers`` (or past the end
    of a list) are declined, as a cautious customer would. ``env`` adds environment
    variables (a test HOME, for example).
    ``choices`` maps a regex of a follow-up question ("Which folder") to the answer
    typed every time it is asked; unlisted follow-ups get Enter (the default).
    At the end, the rating question is answered with ``rating`` (Enter skips it when
    None) and the comment question with ``comment``. ``program`` runs another build of
    the agent (the one-file download) instead of ``python -m agent.cli``.
    ``code_via`` gives the code as the last argument (``"argv"``), in ``PUENTE_CODE``
    (``"env"``) or typed at the code prompt (``"stdin"``).
    """

    def __init__(
        self,
        relay_url: str,
        code: str,
        log_dir: Path,
        answers: dict[str, str | list[str]] | None = None,
        after: dict[str, str] | None = None,
        extra: list[str] | None = None,
        on_line: Callable[[str], None] | None = None,
        env: dict[str, str] | None = None,
        choices: dict[str, str] | None = None,
        rating: int | None = None,
        comment: str = "",
        program: list[str] | None = None,
        code_via: str = "argv",
    ) -> None:
        self.answers = {
            k: list(v) if isinstance(v, list) else v for k, v in (answers or {}).items()
        }
        self.rating = rating
        self.comment = comment
        self.rating_asked = False
        self.choices = choices or {}
        self.after = dict(after or {})
        self.questions: list[str] = []
        self._on_line = on_line
        super().__init__(
            [
                *(program or [sys.executable, "-m", "agent.cli"]),
                "--relay",
                relay_url,
                "--console",
                "--log-dir",
                str(log_dir),
                *(extra or []),
                *([code] if code_via == "argv" else []),
            ],
            stdin=True,
            env={**(env or {}), **({"PUENTE_CODE": code} if code_via == "env" else {})},
        )
        if code_via == "stdin":
            self.send(code)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            self._queue.put(line)
            if self._on_line:
                self._on_line(line)
            try:
                ask = ASK.search(line)
                if ask:
                    self.questions.append(ask.group(1))
                    answer = self.answers.get(ask.group(1), "n")
                    if isinstance(answer, list):
                        answer = answer.pop(0) if answer else "n"
                    self.send(answer)
                if RATE.search(line):
                    self.rating_asked = True
                    self.send(str(self.rating) if self.rating is not None else "")
                if COMMENT.search(line):
                    self.send(self.comment)
                choice = CHOICE.search(line)
                if choice:
                    self.questions.append(choice.group(1))
                    answer = next(
                        (a for pattern, a in self.choices.items() if re.search(pattern, line)), ""
                    )
                    self.send(answer)
                for pattern, reply in list(self.after.items()):
                    if re.search(pattern, line):
                        del self.after[pattern]
                        self.send(reply)
            except (BrokenPipeError, OSError):
                pass
        self._queue.put(None)


def technician(relay_url: str, token: str, *args: str, stdin: bool = False) -> Process:
    """Run ``puente-tech`` with the given arguments (``stdin``: to type console commands)."""
    return Process(
        [sys.executable, "-m", "technician.cli", "--relay", relay_url, "--token", token, *args],
        stdin=stdin,
    )
