"""Triage for technicians: the knowledge base's engine (:mod:`protocol.triage`, shared
with the customer's agent for self-help) and how findings read in the console.

The engine's names are re-exported here, so ``technician.triage.triage``, ``rank``,
``load_rules``, ``Finding``, ``RuleError`` and the others keep working. What only the
technician needs lives here: :func:`describe`, the findings as console lines with
each suggestion's ``fix`` command and its past cases.
"""

from __future__ import annotations

from protocol.triage import (
    OPERATORS,
    RULES_DIR,
    SEVERITIES,
    Finding,
    FixSuggestion,
    Rule,
    RuleError,
    Suggestion,
    derived_facts,
    evaluate,
    load_rules,
    lookup,
    parse_rules,
    platform_of,
    rank,
    render,
    triage,
)

__all__ = [
    "Finding",
    "FixSuggestion",
    "OPERATORS",
    "RULES_DIR",
    "Rule",
    "RuleError",
    "SEVERITIES",
    "Suggestion",
    "derived_facts",
    "describe",
    "evaluate",
    "load_rules",
    "lookup",
    "parse_rules",
    "platform_of",
    "rank",
    "render",
    "triage",
]


def describe(findings: list[Finding]) -> list[str]:
    """Human lines for findings (evidence escaped: it comes from the customer's machine)."""
    from protocol.safe_text import safe_text

    if not findings:
        return ["No known problem found in this snapshot."]
    lines: list[str] = []
    for finding in findings:
        lines.append(f"[{finding.severity}] {finding.problem}: {finding.title}")
        for evidence in finding.evidence[:10]:
            lines.append(f"    evidence: {safe_text(evidence, 300)}")
        if len(finding.evidence) > 10:
            lines.append(f"    evidence: ... and {len(finding.evidence) - 10} more")
        lines.append(f"    advice: {finding.advice}")
        for rank_number, suggestion in enumerate(finding.suggestions, start=1):
            past = (
                f"solved {suggestion.solved} of {suggestion.runs} past cases"
                if suggestion.runs
                else "no past cases"
            )
            if suggestion.available is False:
                past += "; not in your fix library for this platform"
            lines.append(
                f"    suggested {rank_number}: {safe_text(suggestion.command, 300)}   ({past})"
            )
    return lines
