"""Session console commands for fixes and triage: ``fix`` and ``triage``.

``fix BUNDLE_OR_ID [--dry-run | --undo] [NAME=VALUE ...]`` sends a fix to the
customer's agent: a bundle file, a fix directory (sent unsigned, which an agent with
a pinned key refuses) or an id from the library (``--fixes DIR`` / ``PUENTE_FIXES``),
picking the variant for the customer's platform. The agent verifies it and asks the
customer; output lines stream here as ``  stdout| ...`` / ``  stderr| ...`` (``preview
stdout|`` for a dry run) and one result line carries the exit status.

``triage [FILE]`` matches a diagnostics snapshot against the knowledge base: FILE, or
a fresh snapshot from the customer (asks for diagnostics if not yet allowed). It
prints the findings with the suggested fixes ranked by past cases: the
organisation's, from the relay (:mod:`technician.past_cases`; the local outcomes
file is the cache and fallback). A later ``fix`` run is reported to the relay against
the problems the last triage suggested it for; a later fresh ``triage`` of the same
session tells it whether those problems are gone.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.errors import FixRequestError
from protocol.fixbundle import resolve_parameters
from protocol.messages import ReplyStatus
from protocol.safe_text import safe_text

from .client import TechnicianSession
from .console import Result, SessionConsole, command, need, reply_result
from .errors import UsageError
from .fixlib import FixLibrary, FixLibraryError, load_fix_target
from .outcomes import OutcomeStore
from .past_cases import PastCases
from .triage import Finding, RuleError, describe, load_rules, platform_of, rank, triage


def _library(console: SessionConsole) -> FixLibrary | None:
    directory = console.settings.get("fixes_dir")
    return FixLibrary(Path(directory)) if directory else None


def _past_cases(console: SessionConsole) -> PastCases:
    """The session's past cases: the relay's figures, the local file as cache and fallback."""
    past: PastCases | None = console.state.get("past_cases")
    if past is None:
        store = None
        if console.settings.get("outcomes"):
            try:
                store = OutcomeStore(Path(console.settings["outcomes"]))
            except (OSError, sqlite3.Error):
                store = None  # past cases are a help, never a reason to fail a command
        past = console.state["past_cases"] = PastCases(console.settings.get("api"), store)
    return past


def _parse_fix_words(words: list[str]) -> tuple[str, dict[str, str]]:
    action = "run"
    params: dict[str, str] = {}
    for word in words:
        if word in ("--dry-run", "--preview"):
            action = "dry_run"
        elif word == "--undo":
            action = "undo"
        else:
            name, sep, value = word.partition("=")
            if not sep or not name:
                raise UsageError(f"{word!r} is not NAME=VALUE")
            if name in params:
                raise UsageError(f"{name} is given twice")
            params[name] = value
    return action, params


@dataclass
class FixOutcome:
    """How a fix request ended: the result line, and what past cases should record."""

    result: Result
    fix_id: str = ""
    version: str = ""
    exit_status: int | None = None
    #: A real run (not a preview, an undo or a refusal) whose outcome past cases count.
    counts: bool = False


#: ``on_line(phase, stream, line)``: phase "" or "preview ", stream stdout or stderr,
#: the line already through safe_text.
FixLine = Callable[[str, str, str], None]


async def run_fix(
    session: TechnicianSession,
    target: str,
    action: str,
    params: dict[str, str],
    library: FixLibrary | None,
    on_line: FixLine,
) -> FixOutcome:
    """Send a fix (bundle file, fix directory or library id) to the agent; stream its lines.

    ``action`` is run, dry_run or undo. The agent verifies the fix and asks the customer;
    the session's journal notes the run. The console and the viewer both call this.
    """
    platform = session.agent_hello.platform or None
    try:
        data, bundle = load_fix_target(target, library, platform)
    except FixLibraryError as exc:
        return FixOutcome(Result("error", str(exc)))
    if bundle is not None:
        try:  # the agent checks again; this only saves a round trip for a typo
            resolve_parameters(bundle.manifest, params)
        except FixRequestError as exc:
            return FixOutcome(Result("error", str(exc)))

    def on_progress(progress: dict[str, Any]) -> None:
        stream = progress.get("stream")
        line = progress.get("line")
        if stream not in ("stdout", "stderr") or not isinstance(line, str):
            return  # anything else from the agent is not shown
        on_line("preview " if progress.get("phase") == "preview" else "", stream, safe_text(line))

    reply = await session.request(
        "fixes", action, {"bundle": data, "parameters": params}, on_progress
    )
    _journal_fix(session, action, target, reply.status, reply.result or {})
    if reply.status == ReplyStatus.REFUSED:
        return FixOutcome(
            Result("error", f"refused before anything ran: {safe_text(reply.message, 600)}")
        )
    refused = reply_result("fix", reply.status, safe_text(reply.message, 600))
    if refused:
        return FixOutcome(refused)
    result = reply.result or {}
    fix_id = safe_text(result.get("fix", target), 64)
    version = safe_text(result.get("version", ""), 32)
    exit_status = result.get("exit_status")
    if not isinstance(exit_status, int) or isinstance(exit_status, bool):
        exit_status = None
    counts = action == "run" and not result.get("stopped_after_preview")
    data_out = {k: result[k] for k in result if isinstance(k, str)}

    def outcome(status: str, message: str) -> FixOutcome:
        return FixOutcome(Result(status, message, data_out), fix_id, version, exit_status, counts)

    if result.get("stopped_after_preview"):
        return outcome(
            "error",
            f"{fix_id} {version}: the preview exited with status {exit_status}; "
            "the fix was not run",
        )
    what = {"run": "", "dry_run": " (preview)", "undo": " (undo)"}[action]
    if result.get("timed_out"):
        return outcome("error", f"{fix_id} {version}{what} was stopped at its time limit")
    lines = result.get("output_lines", 0)
    if exit_status == 0:
        return outcome(
            "ok", f"{fix_id} {version}{what} finished with exit status 0 ({lines} lines of output)"
        )
    return outcome(
        "error",
        f"{fix_id} {version}{what} finished with exit status {exit_status} "
        f"({lines} lines of output)",
    )


@command(
    "fix",
    "fix BUNDLE_OR_ID [--dry-run|--undo] [NAME=VALUE ...]",
    "run a signed fix (the customer approves each run); output streams here",
)
async def _fix(console: SessionConsole, args: list[str]) -> Result:
    need(args, 1)
    action, params = _parse_fix_words(args[1:])

    def on_line(phase: str, stream: str, line: str) -> None:
        console.stream("fix", f"{phase}{stream}", line, stream=stream)

    done = await run_fix(console.session, args[0], action, params, _library(console), on_line)
    if done.counts:
        await _record(console, done.fix_id, done.version, done.exit_status)
    return done.result


def _journal_fix(
    session: TechnicianSession, action: str, target: str, status: int, result: dict[str, Any]
) -> None:
    """Note a run or an undo in the session journal, for the ticket's summary."""
    if action == "dry_run":
        return  # a preview changes nothing on the customer's computer
    exit_status = result.get("exit_status")
    if not isinstance(exit_status, int) or isinstance(exit_status, bool):
        exit_status = None
    if status == ReplyStatus.OK:
        failed = result.get("timed_out") or result.get("stopped_after_preview") or exit_status
        outcome = "failed" if failed else "succeeded"
    else:
        outcomes: dict[int, str] = {
            ReplyStatus.DECLINED: "declined",
            ReplyStatus.REVOKED: "stopped",
            ReplyStatus.REFUSED: "refused",
        }
        outcome = outcomes.get(status, "failed")
    fix_id = safe_text(result.get("fix") or Path(target).name, 64)
    version = safe_text(result.get("version", ""), 32)
    title = f"{fix_id} {version}".strip() + (" (undo)" if action == "undo" else "")
    session.journal.fix_run(time.time(), fix_id, title, outcome, exit_status)


async def _record(
    console: SessionConsole, fix_id: str, version: str, exit_status: int | None
) -> None:
    findings: list[Finding] = console.state.get("last_findings", [])
    problems = [f.problem for f in findings if any(s.fix_id == fix_id for s in f.suggestions)]
    link = console.session.link
    problem = await asyncio.to_thread(
        _past_cases(console).record,
        session_id=link.session_id,
        ticket_id=str(link.paired_info.get("ticket_id", "")),
        problems=problems,
        fix_id=fix_id,
        version=version,
        exit_status=exit_status,
        now=time.time(),
    )
    if problem:
        console.stream("fix", "note", problem)


def run_triage(
    diagnostics: dict[str, Any],
    *,
    reference_time: float | None,
    rules_dirs: list[Path],
    library: FixLibrary | None,
    outcomes: OutcomeStore | PastCases | None,
    platform: str | None = None,
) -> list[Finding]:
    """Findings for a snapshot, suggestions ranked by past cases and marked by availability.

    ``outcomes`` is where past cases come from: :class:`PastCases` (the relay's
    figures; blocking, so call this from a thread), or a local file only.
    """
    findings = triage(diagnostics, load_rules(rules_dirs), reference_time)
    problems = [f.problem for f in findings]
    if isinstance(outcomes, PastCases):
        history = outcomes.history(problems, time.time())
    else:
        history = outcomes.history(problems) if outcomes else {}
    available = None
    if library is not None:
        platform = platform or platform_of(diagnostics)
        available = {}
        for finding in findings:
            for suggestion in finding.suggestions:
                try:
                    library.find(suggestion.fix_id, platform)
                    available[suggestion.fix_id] = True
                except FixLibraryError:
                    available[suggestion.fix_id] = False
    return rank(findings, history, available)


def note_findings(session: TechnicianSession, findings: list[Finding]) -> None:
    """Note what triage found in the session's journal (for the ticket's summary)."""
    session.journal.triaged(
        [(f.title, f"{f.severity}: " + "; ".join(f.evidence)) for f in findings]
    )


@command(
    "triage",
    "triage [FILE]",
    "find known problems in diagnostics (FILE, or fresh from the customer) and suggest fixes",
)
async def _triage(console: SessionConsole, args: list[str]) -> Result:
    reference_time: float | None = None
    if args:
        try:
            diagnostics = json.loads(Path(args[0]).read_text(encoding="utf-8"))
        except ValueError as exc:
            return Result("error", f"{args[0]} is not diagnostics JSON ({exc})")
        if not isinstance(diagnostics, dict):
            return Result("error", f"{args[0]} is not diagnostics JSON (not an object)")
    else:
        reply = await console.session.request("diagnostics", "collect", {"sample_seconds": 0.5})
        refused = reply_result("diagnostics", reply.status, safe_text(reply.message, 600))
        if refused:
            return refused
        reference_time = time.time()
        diagnostics = reply.result or {}
    past = _past_cases(console)
    try:
        findings = await asyncio.to_thread(
            run_triage,
            diagnostics,
            reference_time=reference_time,
            rules_dirs=[Path(p) for p in console.settings.get("rules_dirs", [])],
            library=_library(console),
            outcomes=past,
            platform=console.session.agent_hello.platform or None,
        )
    except (RuleError, FixLibraryError) as exc:
        return Result("error", str(exc))
    if not args:
        present = {f.problem for f in findings}
        await asyncio.to_thread(past.recheck, console.session.link.session_id, present)
    console.state["last_findings"] = findings
    note_findings(console.session, findings)
    if not console.as_json:
        for line in describe(findings):
            print(f"  {line}", flush=True)
    summary = ", ".join(f"{f.problem} ({f.severity})" for f in findings) or "no known problem"
    return Result(
        "ok",
        f"{len(findings)} problem(s): {summary}",
        {"findings": [f.as_dict() for f in findings]},
    )
