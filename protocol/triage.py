"""Triage: match a diagnostics snapshot against the knowledge base; suggest fixes. Pure.

The knowledge base is data, not code: TOML rule files. ``protocol/rules/default.toml``
ships the defaults (the technician's ``--rules DIR`` adds more; an organisation's
signed rule book, :mod:`protocol.rulebook`, adds more for self-help). Each rule names
a problem, its severity, a condition over the diagnostics JSON, the evidence to
print, and the fixes that solve it. The condition language is documented at the top
of ``protocol/rules/default.toml``.

Both sides use this one engine: the technician's console and viewer
(:mod:`technician.triage` re-exports it) and the customer's agent, which triages its
own diagnostics for self-help (:mod:`agent.self_help`).

:func:`triage` is pure: snapshot (and an optional reference time) in, findings out.
:func:`rank` orders each finding's fixes by past cases: how often each fix solved the
same problem before (``(solved + 1) / (runs + 2)``, so a fix with no history scores
one half and keeps the rule's order among equals). The snapshot comes from the
customer's machine and is hostile: it is only compared and formatted, never
evaluated, and evidence is escaped before it is printed. No I/O but reading rule
files in :func:`load_rules`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import RuleError

#: The built-in rules (shipped with every program, the one-file agent included).
RULES_DIR = Path(__file__).with_name("rules")
SEVERITIES = ("low", "medium", "high", "critical")
OPERATORS = (
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not in",
    "contains",
    "matches",
    "exists",
    "missing",
)
_RULE_KEYS = {"problem", "title", "severity", "for_each", "when", "evidence", "advice", "fixes"}
_PLACEHOLDER = re.compile(r"\{([^{}|]+)(?:\|(\w+))?\}")
_MISSING = object()
_LOOPBACK = {"lo", "lo0"}


@dataclass(frozen=True)
class FixSuggestion:
    fix_id: str
    params: dict[str, str]  # templates, e.g. {"pid": "{pid}"}


@dataclass(frozen=True)
class Rule:
    problem: str
    title: str
    severity: str
    when: dict[str, Any]
    evidence: str
    advice: str
    fixes: tuple[FixSuggestion, ...]
    for_each: str | None = None
    source: str = ""


@dataclass
class Suggestion:
    """A fix for a finding, with its console command and its record in past cases."""

    fix_id: str
    params: dict[str, str]
    solved: int = 0
    runs: int = 0
    available: bool | None = None  # in the technician's library for this platform; None = unknown

    @property
    def score(self) -> float:
        return (self.solved + 1) / (self.runs + 2)

    @property
    def command(self) -> str:
        import shlex

        words = ["fix", self.fix_id, *(f"{k}={v}" for k, v in self.params.items())]
        return " ".join(shlex.quote(w) for w in words)

    def as_dict(self) -> dict[str, Any]:
        return {
            "fix": self.fix_id,
            "params": self.params,
            "command": self.command,
            "solved": self.solved,
            "runs": self.runs,
            "score": round(self.score, 3),
            "available": self.available,
        }


@dataclass
class Finding:
    problem: str
    title: str
    severity: str
    evidence: list[str]
    advice: str
    suggestions: list[Suggestion] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "title": self.title,
            "severity": self.severity,
            "evidence": self.evidence,
            "advice": self.advice,
            "suggestions": [s.as_dict() for s in self.suggestions],
        }


# Loading rules ------------------------------------------------------------------------


def _check_condition(condition: Any, where: str) -> None:
    if not isinstance(condition, dict):
        raise RuleError(f"{where}: a condition must be a table.")
    keys = set(condition)
    if keys in ({"all"}, {"any"}):
        items = condition[next(iter(keys))]
        if not isinstance(items, list) or not items:
            raise RuleError(f"{where}: all/any takes a non-empty list of conditions.")
        for item in items:
            _check_condition(item, where)
    elif keys == {"not"}:
        _check_condition(condition["not"], where)
    elif keys in ({"some", "where"}, {"none", "where"}):
        if not isinstance(condition.get("some", condition.get("none")), str):
            raise RuleError(f"{where}: some/none takes the path of a list.")
        _check_condition(condition["where"], where)
    elif "path" in keys and "op" in keys and keys <= {"path", "op", "value"}:
        if not isinstance(condition["path"], str) or condition["op"] not in OPERATORS:
            raise RuleError(f"{where}: op must be one of {', '.join(OPERATORS)}.")
        if condition["op"] not in ("exists", "missing") and "value" not in condition:
            raise RuleError(f"{where}: op {condition['op']!r} needs a value.")
    else:
        raise RuleError(f"{where}: unknown condition {sorted(keys)}.")


def _rule(table: Any, where: str) -> Rule:
    if not isinstance(table, dict):
        raise RuleError(f"{where}: a rule must be a table.")
    unknown = sorted(set(table) - _RULE_KEYS)
    if unknown:
        raise RuleError(f"{where}: unknown key {unknown[0]!r}.")
    for key in ("problem", "title", "evidence", "advice"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise RuleError(f"{where}: {key} must be text.")
    if table.get("severity") not in SEVERITIES:
        raise RuleError(f"{where}: severity must be one of {', '.join(SEVERITIES)}.")
    for_each = table.get("for_each")
    if for_each is not None and not isinstance(for_each, str):
        raise RuleError(f"{where}: for_each must be the path of a list.")
    _check_condition(table.get("when"), where)
    fixes = []
    for entry in table.get("fixes", []):
        if isinstance(entry, str):
            fixes.append(FixSuggestion(entry, {}))
        elif isinstance(entry, dict) and isinstance(entry.get("id"), str):
            params = entry.get("params", {})
            if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
                raise RuleError(f"{where}: a fix's params must be text templates.")
            fixes.append(FixSuggestion(entry["id"], dict(params)))
        else:
            raise RuleError(f"{where}: fixes are ids or {{ id = ..., params = {{...}} }}.")
    return Rule(
        problem=table["problem"],
        title=table["title"],
        severity=table["severity"],
        when=table["when"],
        evidence=table["evidence"],
        advice=table["advice"],
        fixes=tuple(fixes),
        for_each=for_each,
        source=where,
    )


def parse_rules(text: str, source: str) -> list[Rule]:
    """The ``[[rule]]`` tables of one rule file's text; ``source`` names it in errors."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{source}: cannot read the rules ({exc}).") from None
    entries = document.get("rule", [])
    if not isinstance(entries, list):
        raise RuleError(f"{source}: rules are [[rule]] tables.")
    name = Path(source).name
    return [_rule(entry, f"{name} rule {i + 1}") for i, entry in enumerate(entries)]


def load_rules(directories: Iterable[Path] = ()) -> list[Rule]:
    """The built-in rules, then every ``*.toml`` in ``directories`` (in name order)."""
    rules: list[Rule] = []
    for directory in [RULES_DIR, *directories]:
        if not directory.is_dir():
            raise RuleError(f"The rules folder {directory} does not exist; check --rules.")
        for path in sorted(directory.glob("*.toml")):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise RuleError(f"{path}: cannot read the rules ({exc}).") from None
            rules += parse_rules(text, str(path))
    return rules


# Evaluating ----------------------------------------------------------------------------


def lookup(path: str, scope: Any, root: Any) -> Any:
    """The value at a dotted path (list indexes are numbers); ``_MISSING`` if absent."""
    if path.startswith("$."):
        scope, path = root, path[2:]
    elif path.startswith("derived.") and scope is not root:
        scope = root
    value = scope
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "exists":
        return actual is not _MISSING and actual is not None
    if op == "missing":
        return actual is _MISSING or actual is None
    if actual is _MISSING:
        return False
    if op == "==":
        # true is not 1 here: booleans only equal booleans.
        if isinstance(actual, bool) or isinstance(expected, bool):
            return actual is expected
        return bool(actual == expected)
    if op == "!=":
        return not _compare("==", actual, expected)
    if op in ("<", "<=", ">", ">="):
        if not (_number(actual) and _number(expected)):
            return False
        left, right = float(actual), float(expected)
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    if op == "in":
        return isinstance(expected, list) and actual in expected
    if op == "not in":
        return isinstance(expected, list) and actual not in expected
    if op == "contains":
        if isinstance(actual, str) and isinstance(expected, str):
            return expected in actual
        return isinstance(actual, list) and expected in actual
    if op == "matches":
        return isinstance(actual, str) and re.search(str(expected), actual) is not None
    return False


def evaluate(condition: Mapping[str, Any], scope: Any, root: Any) -> bool:
    if "all" in condition:
        return all(evaluate(c, scope, root) for c in condition["all"])
    if "any" in condition:
        return any(evaluate(c, scope, root) for c in condition["any"])
    if "not" in condition:
        return not evaluate(condition["not"], scope, root)
    if "some" in condition or "none" in condition:
        items = lookup(condition.get("some", condition.get("none")), scope, root)
        found = isinstance(items, list) and any(
            evaluate(condition["where"], item, root) for item in items
        )
        return found if "some" in condition else not found
    return _compare(condition["op"], lookup(condition["path"], scope, root), condition.get("value"))


def _format_value(value: Any, style: str | None) -> str:
    if value is _MISSING or value is None:
        return "unknown"
    if style == "bytes" and _number(value):
        size = float(value)
        for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
            if abs(size) < 1024 or unit == "TiB":
                return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
            size /= 1024
    if style == "percent" and _number(value):
        return f"{value:.0f}%"
    if style == "seconds" and _number(value):
        sign = "-" if value < 0 else "+"
        seconds = abs(int(value))
        hours, rest = divmod(seconds, 3600)
        return f"{sign}{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{sign}{seconds} s"
    if style == "int" and _number(value):
        return str(int(value))
    if style == "list" and isinstance(value, list):
        return "; ".join(str(v) for v in value) or "none given"
    return str(value)


def render(template: str, scope: Any, root: Any) -> str:
    """Fill ``{path|style}`` placeholders; values are cut to 200 characters each."""
    return _PLACEHOLDER.sub(
        lambda m: _format_value(lookup(m.group(1).strip(), scope, root), m.group(2))[:200],
        template,
    )


def derived_facts(diagnostics: Mapping[str, Any], reference_time: float | None) -> dict[str, Any]:
    """Facts computed from the snapshot (and the technician's clock, when given)."""
    derived: dict[str, Any] = {"clock_skew_seconds": None, "usable_interfaces": None}
    clock = diagnostics.get("clock")
    if (
        reference_time is not None
        and isinstance(clock, Mapping)
        and isinstance(clock.get("utc"), str)
    ):
        try:
            remote = datetime.fromisoformat(clock["utc"]).timestamp()
            derived["clock_skew_seconds"] = round(remote - reference_time)
        except ValueError:
            pass
    network = diagnostics.get("network")
    interfaces = network.get("interfaces") if isinstance(network, Mapping) else None
    if isinstance(interfaces, list):
        usable = 0
        for interface in interfaces:
            if not isinstance(interface, Mapping) or interface.get("is_up") is not True:
                continue
            name = str(interface.get("name", ""))
            if name in _LOOPBACK or name.lower().startswith("loopback"):
                continue
            addresses = interface.get("addresses")
            if isinstance(addresses, list) and any(
                isinstance(a, Mapping)
                and isinstance(a.get("address"), str)
                and not a["address"].startswith(("127.", "::1", "fe80", "169.254."))
                for a in addresses
            ):
                usable += 1
        derived["usable_interfaces"] = usable
    return derived


def triage(
    diagnostics: Mapping[str, Any], rules: list[Rule], reference_time: float | None = None
) -> list[Finding]:
    """Findings for a snapshot, most severe first (rule order among equals).

    ``reference_time`` is the technician's wall clock when the snapshot arrived; the
    clock-skew rule needs it (a recorded snapshot without it cannot show skew).
    """
    root = {**diagnostics, "derived": derived_facts(diagnostics, reference_time)}
    findings: dict[str, Finding] = {}
    order: list[str] = []
    for rule in rules:
        scopes = lookup(rule.for_each, root, root) if rule.for_each else [root]
        if not isinstance(scopes, list):
            continue
        for scope in scopes:
            if not isinstance(scope, Mapping) or not evaluate(rule.when, scope, root):
                continue
            finding = findings.get(rule.problem)
            if finding is None:
                finding = Finding(rule.problem, rule.title, rule.severity, [], rule.advice)
                findings[rule.problem] = finding
                order.append(rule.problem)
            elif SEVERITIES.index(rule.severity) > SEVERITIES.index(finding.severity):
                finding.severity = rule.severity
            evidence = render(rule.evidence, scope, root)
            if evidence not in finding.evidence:
                finding.evidence.append(evidence)
            for fix in rule.fixes:
                params = {k: render(v, scope, root) for k, v in fix.params.items()}
                params = {k: v for k, v in params.items() if v != "unknown"}
                if not any(
                    s.fix_id == fix.fix_id and s.params == params for s in finding.suggestions
                ):
                    finding.suggestions.append(Suggestion(fix.fix_id, params))
    result = [findings[p] for p in order]
    result.sort(key=lambda f: -SEVERITIES.index(f.severity))
    return result


def rank(
    findings: list[Finding],
    history: Mapping[str, Mapping[str, tuple[int, int]]],
    available: Mapping[str, bool] | None = None,
) -> list[Finding]:
    """Order each finding's suggestions by past cases (best first) and mark availability.

    ``history[problem][fix_id] = (solved, runs)``; ``available[fix_id]`` says whether the
    technician's library has the fix for the customer's platform.
    """
    for finding in findings:
        past = history.get(finding.problem, {})
        for suggestion in finding.suggestions:
            suggestion.solved, suggestion.runs = past.get(suggestion.fix_id, (0, 0))
            if available is not None:
                suggestion.available = available.get(suggestion.fix_id, False)
        finding.suggestions.sort(key=lambda s: -s.score)  # stable: rule order among equals
    return findings


def platform_of(diagnostics: Mapping[str, Any]) -> str | None:
    """linux, macos or windows from the snapshot's os.system, None when unknown."""
    system = diagnostics.get("os")
    name = system.get("system") if isinstance(system, Mapping) else None
    return {"Linux": "linux", "Darwin": "macos", "Windows": "windows"}.get(str(name))
