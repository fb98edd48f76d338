"""Past cases: how fix runs ended, per problem and fix, as the relay serves them (pure).

The relay records the outcome of every fix run, a technician's or a customer's
self-help run, per problem (a knowledge-base rule's ``problem``), fix and category;
both triage rankings read the figures (:func:`protocol.triage.rank` takes a
:data:`History`). On the wire (``GET /api/outcomes``, and with the fixes an agent
fetches for self-help)::

    {"problems": {"disk-nearly-full": {"disk-cleanup": {"solved": 7, "runs": 9}}},
     "categories": {"printing": {"disk-nearly-full": {"disk-cleanup": {...}}}}}

:func:`parse_history` reads one such table from an answer that is not trusted for its
content (a relay is told what happened, it does not know): entries that are not
well formed are dropped, and ``0 <= solved <= runs <= MAX_RUNS`` is enforced, so a
bad answer can at worst reorder offers, never add one or change what runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: ``{problem: {fix_id: (solved, runs)}}``.
History = dict[str, dict[str, tuple[int, int]]]

#: A problem id as rules name it ("" for a fix run without triage).
PROBLEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: A fix id, as manifests name it (:mod:`protocol.fixbundle`).
FIX_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,63}")
#: Most runs believed for one problem and fix (a bound on what an answer may claim).
MAX_RUNS = 1_000_000_000
#: Most problems, and fixes per problem, read from one answer.
MAX_ENTRIES = 1000


def is_problem_id(value: Any) -> bool:
    return isinstance(value, str) and (value == "" or PROBLEM_ID.fullmatch(value) is not None)


def is_fix_id(value: Any) -> bool:
    return isinstance(value, str) and FIX_ID.fullmatch(value) is not None


def history_json(history: Mapping[str, Mapping[str, tuple[int, int]]]) -> dict[str, Any]:
    """The wire form of one history table."""
    return {
        problem: {fix: {"solved": solved, "runs": runs} for fix, (solved, runs) in fixes.items()}
        for problem, fixes in history.items()
    }


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_RUNS:
        return value
    return None


def parse_history(value: Any) -> History:
    """A history table read from an untrusted answer (see the module's rules)."""
    history: History = {}
    if not isinstance(value, Mapping):
        return history
    for problem, fixes in list(value.items())[:MAX_ENTRIES]:
        if not is_problem_id(problem) or not isinstance(fixes, Mapping):
            continue
        kept: dict[str, tuple[int, int]] = {}
        for fix, record in list(fixes.items())[:MAX_ENTRIES]:
            if not is_fix_id(fix) or not isinstance(record, Mapping):
                continue
            solved, runs = _count(record.get("solved")), _count(record.get("runs"))
            if solved is not None and runs is not None and solved <= runs:
                kept[fix] = (solved, runs)
        history[problem] = kept
    return history
