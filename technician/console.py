"""The technician's session console: one command per line in, one result line out.

``puente-tech session --ticket T`` opens a session, then reads commands from stdin
(typed, or piped from a script) and prints exactly one result line per command:

    ok <command>: <what happened>
    declined <command>: <the customer's answer>
    error <command>: <what went wrong and what to do>

With ``--json`` each result is one JSON object instead. Commands are registered with
:func:`command`; feature modules add their own (screen, shell, fixes, ...) by
importing this module and decorating coroutines; :mod:`technician.console_commands`
imports them all (this module cannot: they import it). A command that needs consent asks
for it through the session and reports a refusal as a result line, never a crash.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from link.errors import LinkError
from protocol.messages import ReplyStatus
from protocol.safe_text import safe_text

from .client import TechnicianSession
from .errors import UsageError
from .output import write_private


@dataclass
class Result:
    status: str  # "ok" | "declined" | "error"
    message: str
    data: dict[str, Any] | None = None


CommandFunction = Callable[["SessionConsole", list[str]], Awaitable[Result]]


@dataclass(frozen=True)
class ConsoleCommand:
    name: str
    usage: str
    help: str
    run: CommandFunction


COMMANDS: dict[str, ConsoleCommand] = {}


def command(name: str, usage: str, help: str) -> Callable[[CommandFunction], CommandFunction]:
    """Register a console command."""

    def register(function: CommandFunction) -> CommandFunction:
        if name in COMMANDS:
            raise ValueError(f"console command {name!r} registered twice")
        COMMANDS[name] = ConsoleCommand(name, usage, help, function)
        return function

    return register


def reply_result(what: str, status: int, message: str) -> Result | None:
    """Turn a non-OK reply status into a result line; None when it was OK."""
    if status == ReplyStatus.OK:
        return None
    if status == ReplyStatus.DECLINED:
        return Result("declined", message or f"the customer declined {what}")
    if status == ReplyStatus.REVOKED:
        return Result("declined", message or f"the customer stopped {what}")
    if status == ReplyStatus.UNKNOWN:
        return Result("error", message or f"the customer's agent cannot do {what}; update it")
    return Result("error", message or f"{what} failed on the customer's computer")


class SessionConsole:
    """Runs command lines against one session.

    ``settings`` holds the command line's options for feature commands (for example
    ``fixes_dir``, ``outcomes``); ``state`` is where feature commands keep what they
    learn during the session (for example the last triage's findings).
    """

    def __init__(
        self,
        session: TechnicianSession,
        as_json: bool = False,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.session = session
        self.as_json = as_json
        self.ended = False
        self.settings: dict[str, Any] = dict(settings or {})
        self.state: dict[str, Any] = {}

    def stream(self, name: str, event: str, text: str, **fields: Any) -> None:
        """An intermediate line of a running command (never a result line).

        Text mode prints ``  <event>| <text>``; JSON mode prints
        ``{"command": name, "event": event, "line": text, ...}``.
        """
        if self.as_json:
            print(json.dumps({"command": name, "event": event, "line": text, **fields}), flush=True)
        else:
            print(f"  {event}| {safe_text(text, 4000)}", flush=True)

    def emit(self, name: str, result: Result) -> None:
        if self.as_json:
            record: dict[str, Any] = {
                "command": name,
                "status": result.status,
                "message": result.message,
            }
            if result.data:
                record["data"] = result.data
            print(json.dumps(record), flush=True)
        else:
            print(f"{result.status} {name}: {safe_text(result.message, 4000)}", flush=True)

    async def execute(self, line: str) -> Result | None:
        """Run one command line; return its result (None for a blank line)."""
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            return Result("error", f"cannot read that line ({exc}); check the quotes")
        if not words:
            return None
        spec = COMMANDS.get(words[0])
        if spec is None:
            return Result("error", f"unknown command {words[0]!r}; type help for the list")
        try:
            return await spec.run(self, words[1:])
        except UsageError as exc:
            return Result("error", f"{exc}; usage: {spec.usage}")
        except LinkError as exc:
            self.ended = True
            return Result("error", str(exc))
        except OSError as exc:
            return Result("error", f"{exc.strerror or exc} ({getattr(exc, 'filename', '')})")

    async def run(self, lines: AsyncIterator[str]) -> None:
        async for line in lines:
            words = line.split(maxsplit=1)
            result = await self.execute(line)
            if result is not None:
                self.emit(words[0], result)
            if self.ended:
                return


def need(args: list[str], count: int) -> None:
    if len(args) < count:
        raise UsageError("missing arguments")


# Built-in commands --------------------------------------------------------------------


@command("help", "help", "list the commands")
async def _help(console: SessionConsole, args: list[str]) -> Result:
    names = sorted(COMMANDS)
    if not console.as_json:
        for name in names:
            spec = COMMANDS[name]
            print(f"  {spec.usage:<40} {spec.help}", flush=True)
    return Result("ok", f"{len(names)} commands", {"commands": names})


@command("status", "status", "what the customer has allowed right now")
async def _status(console: SessionConsole, args: list[str]) -> Result:
    granted = sorted(k for k, v in console.session.consent.items() if v == "granted")
    return Result(
        "ok",
        "allowed: " + (", ".join(granted) if granted else "nothing yet"),
        {"consent": dict(console.session.consent), "sas": console.session.sas},
    )


@command("diagnostics", "diagnostics FILE", "collect diagnostics (asks the customer) into FILE")
async def _diagnostics(console: SessionConsole, args: list[str]) -> Result:
    need(args, 1)
    reply = await console.session.request("diagnostics", "collect", {"sample_seconds": 0.5})
    refused = reply_result("diagnostics", reply.status, reply.message)
    if refused:
        return refused
    path = Path(args[0])
    write_private(path, json.dumps(reply.result, indent=2, sort_keys=True))
    return Result("ok", f"written to {path}", {"path": str(path)})


@command("chat", "chat TEXT", "send a message to the customer's screen")
async def _chat(console: SessionConsole, args: list[str]) -> Result:
    need(args, 1)
    await console.session.chat(" ".join(args))
    return Result("ok", "sent")


@command("end", "end", "end the session")
async def _end(console: SessionConsole, args: list[str]) -> Result:
    await console.session.end("the technician ended the session")
    console.ended = True
    return Result("ok", "session ended")
