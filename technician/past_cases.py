"""Past cases for the technician's triage: the organisation's figures at the relay first.

The relay records the outcome of every fix run, technicians' and customers' self-help
runs alike (``/api/outcomes``, :mod:`relay.self_help`); that is the source of truth
both triage rankings read. :class:`PastCases` is where the console and the viewer
read it and report to it:

* :meth:`PastCases.history` asks the relay (with the technician's API token) and keeps
  its answer in the local outcomes file (:class:`technician.outcomes.OutcomeStore`);
  when the relay cannot be reached it uses the figures kept last time, or, if there
  are none, this technician's own runs from that file.
* :meth:`PastCases.record` reports a run to the relay and notes it locally;
  :meth:`PastCases.recheck` tells both that a later triage still finds a problem.

Past cases help rank fixes; they are never a reason to fail a command, so relay and
file problems become a sentence (or nothing), never an exception. Blocking: call it
from a thread in asyncio code.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from link.errors import LinkError
from protocol.past_cases import History, parse_history
from protocol.safe_text import safe_text

from .client import RelayAPI
from .outcomes import OutcomeStore


class PastCases:
    """The relay's figures (``api``), with the local file (``local``) as cache and fallback."""

    def __init__(self, api: RelayAPI | None, local: OutcomeStore | None) -> None:
        self.api = api
        self.local = local
        #: Where the last :meth:`history` came from: relay, cache, local or none.
        self.source = "none"

    def history(self, problems: Iterable[str], now: float) -> History:
        """``{problem: {fix: (solved, runs)}}`` for ``problems``."""
        wanted = set(problems)
        if self.api is not None:
            try:
                answer = self.api.outcomes()
            except LinkError:
                pass
            else:
                figures = parse_history(answer.get("problems"))
                if self.local is not None:
                    try:
                        self.local.cache_figures(figures, now)
                    except sqlite3.Error:
                        pass
                self.source = "relay"
                return {p: figures.get(p, {}) for p in wanted}
        if self.local is None:
            self.source = "none"
            return {}
        try:
            cached = self.local.cached_figures(wanted)
            if cached is not None:
                self.source = "cache"
                return cached
            self.source = "local"
            return self.local.history(wanted)
        except sqlite3.Error:
            self.source = "none"
            return {}

    def record(
        self,
        *,
        session_id: str,
        ticket_id: str,
        problems: list[str],
        fix_id: str,
        version: str,
        exit_status: int | None,
        now: float,
    ) -> str | None:
        """Report a run; a sentence if the relay could not be told, else None."""
        if self.local is not None:
            try:
                self.local.record(
                    session_id=session_id,
                    ticket_id=ticket_id,
                    problems=problems,
                    fix_id=fix_id,
                    fix_version=version,
                    exit_status=exit_status,
                    now=now,
                )
            except sqlite3.Error:
                pass
        if self.api is None:
            return None
        try:
            self.api.report_outcome(session_id, problems, fix_id, version, exit_status)
        except LinkError as exc:
            return (
                "the relay could not record this run in the organisation's past cases "
                f"({safe_text(str(exc), 300)}); it is noted on this computer only"
            )
        return None

    def recheck(self, session_id: str, present: Iterable[str]) -> None:
        """A later triage of the session still finds ``present``."""
        found = sorted(set(present))
        if self.local is not None:
            try:
                self.local.recheck(session_id, found)
            except sqlite3.Error:
                pass
        if self.api is not None and found:
            try:
                self.api.recheck_outcomes(session_id, found)
            except LinkError:
                pass
