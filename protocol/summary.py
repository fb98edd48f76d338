"""The session summary: its JSON schema and the relay's check of an upload.

The technician's client writes the summary (it alone sees the session's content)
and uploads it with ``PUT /api/sessions/{id}/summary``; the relay stores it and
forwards it to the help desk. The schema is closed (``additionalProperties: false``
everywhere), so a summary can carry only what is listed here: who, when, how long,
consents, a diagnostics digest, triage findings, fixes, file names moved and the
customer's rating — never screen content, keystrokes or file contents.

Every string is one printable line (no control characters), because summaries are
shown in terminals and help-desk tickets. The same schema is published in the
OpenAPI document (``components.schemas.Summary``).
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from .device_policy import UNATTENDED_MODES
from .errors import SummaryInvalid

__all__ = [
    "MAX_SUMMARY_BYTES",
    "SUMMARY_SCHEMA",
    "SummaryInvalid",
    "check_summary",
    "summary_lines",
]

#: Largest summary accepted, in bytes of JSON.
MAX_SUMMARY_BYTES = 48 * 1024

#: A single printable line: no C0/C1 control characters (terminal escapes), no newline.
_LINE = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"

_TIME = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?Z$"


def _text(max_length: int, min_length: int = 0) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": max_length, "pattern": _LINE}


_WHEN = {
    "type": "string",
    "pattern": _TIME,
    "description": "ISO 8601 UTC, e.g. 2026-01-02T03:04:05Z",
}

SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "What happened in a session, written by the technician's client.",
    "properties": {
        "version": {"const": 1},
        "technician": _text(100, 1),
        "agent_software": _text(100),
        "started_at": _WHEN,
        "ended_at": _WHEN,
        "duration_seconds": {"type": "number", "minimum": 0, "maximum": 31_536_000},
        "ended_by": {"enum": ["technician", "customer", "connection"]},
        "end_reason": _text(500),
        "consents": {
            "type": "array",
            "maxItems": 200,
            "items": {
                "type": "object",
                "properties": {
                    "capability": _text(64, 1),
                    "state": {"enum": ["granted", "declined", "revoked"]},
                    "at": _WHEN,
                    "message": _text(500),
                },
                "required": ["capability", "state", "at"],
                "additionalProperties": False,
            },
        },
        "diagnostics": {
            "type": ["object", "null"],
            "properties": {
                "collected_at": _WHEN,
                "facts": {"type": "array", "maxItems": 50, "items": _text(300)},
            },
            "required": ["collected_at", "facts"],
            "additionalProperties": False,
        },
        "findings": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "properties": {"title": _text(200, 1), "detail": _text(1000)},
                "required": ["title"],
                "additionalProperties": False,
            },
        },
        "fixes": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "properties": {
                    "fix_id": _text(100, 1),
                    "title": _text(200),
                    "status": {"enum": ["succeeded", "failed", "declined", "stopped", "refused"]},
                    "exit_code": {"type": ["integer", "null"]},
                    "at": _WHEN,
                },
                "required": ["fix_id", "status", "at"],
                "additionalProperties": False,
            },
        },
        "files": {
            "type": "array",
            "maxItems": 100,
            "items": {
                "type": "object",
                "properties": {
                    "direction": {"enum": ["to_customer", "from_customer"]},
                    "name": _text(255, 1),
                    "size": {"type": "integer", "minimum": 0},
                    "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
                    "at": _WHEN,
                },
                "required": ["direction", "name", "size", "at"],
                "additionalProperties": False,
            },
        },
        "unattended": {
            "type": "object",
            "properties": {
                "device_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "mode": {"enum": list(UNATTENDED_MODES)},
            },
            "required": ["device_id", "mode"],
            "additionalProperties": False,
        },
        "rating": {
            "type": ["object", "null"],
            "properties": {
                "score": {"type": "integer", "minimum": 1, "maximum": 5},
                "comment": _text(500),
            },
            "required": ["score"],
            "additionalProperties": False,
        },
    },
    "required": [
        "version",
        "technician",
        "started_at",
        "ended_at",
        "duration_seconds",
        "ended_by",
        "consents",
        "rating",
    ],
    "additionalProperties": False,
}

_VALIDATOR = Draft202012Validator(SUMMARY_SCHEMA)


def check_summary(value: Any) -> dict[str, Any]:
    """Return ``value`` if it is a valid summary; raise SummaryInvalid naming the first problem."""
    error = next(iter(sorted(_VALIDATOR.iter_errors(value), key=lambda e: list(e.path))), None)
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the summary"
        if error.validator == "pattern" and isinstance(error.instance, str):
            why = "must be one printable line without control characters"
            if error.validator_value != _LINE:
                why = "is not in the expected format"
        elif error.validator == "additionalProperties":
            why = f"has a field the summary format does not have ({error.message})"
        else:
            why = error.message[:200]
        raise SummaryInvalid(f"The summary is invalid: {where} {why}.")
    assert isinstance(value, dict)
    return value


def summary_lines(summary: dict[str, Any], session: dict[str, Any]) -> list[str]:
    """A summary as plain-text lines, for tickets and terminals."""
    rating = summary.get("rating")
    if rating:
        comment = rating.get("comment") or ""
        rated = f"{rating['score']}/5" + (f' - "{comment}"' if comment else "")
    else:
        rated = "not given"
    lines = [
        f"Technician: {summary.get('technician') or session.get('technician')}",
        f"Started: {summary.get('started_at')}   Ended: {summary.get('ended_at')}   "
        f"Duration: {_duration(summary.get('duration_seconds'))}",
        f"Ended by: {summary.get('ended_by')}"
        + (f" ({summary['end_reason']})" if summary.get("end_reason") else ""),
        f"Customer rating: {rated}",
    ]
    unattended = summary.get("unattended")
    if unattended:
        lines.append(
            f"Unattended: on enrolled device {unattended['device_id']}, under its owner's "
            f"policy (mode {unattended['mode']})"
        )
    lines.append("Consent:")
    consents = summary.get("consents") or []
    lines += [
        f"  - {c['at']} {c['capability']} {c['state']}"
        + (f" ({c['message']})" if c.get("message") else "")
        for c in consents
    ] or ["  - nothing was asked"]
    diagnostics = summary.get("diagnostics")
    lines.append("Diagnostics digest:")
    if diagnostics:
        lines += [f"  - {fact}" for fact in diagnostics.get("facts", [])] or ["  - no facts"]
    else:
        lines.append("  - not collected")
    lines.append("Findings:")
    lines += [
        f"  - {f['title']}" + (f": {f['detail']}" if f.get("detail") else "")
        for f in summary.get("findings") or []
    ] or ["  - none"]
    lines.append("Fixes run:")
    lines += [
        f"  - {f['at']} {f['fix_id']} {f.get('title', '')} {f['status']}"
        + (f" (exit {f['exit_code']})" if f.get("exit_code") is not None else "")
        for f in summary.get("fixes") or []
    ] or ["  - none"]
    lines.append("Files moved:")
    lines += [
        f"  - {f['at']} {f['direction'].replace('_', ' ')}: {f['name']} ({f['size']} bytes)"
        for f in summary.get("files") or []
    ] or ["  - none"]
    return lines


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "unknown"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
