"""What the customer may strike out of a result before it leaves the machine.

Pure functions over the JSON-like result of a capability (diagnostics first):
:func:`outline` lists what can be struck (each top-level section, and each entry of a
list inside one), :func:`strike` returns a copy without the struck items and with a
``withheld`` list naming them, so the technician knows something was held back and
never sees what. The agent applies :func:`strike` itself, after the customer's
review and before sending: the technician's side is never trusted to drop anything.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str | int, ...]

#: Keys that describe the result itself rather than the computer; never offered.
METADATA = frozenset({"schema", "collected_at", "redactions", "withheld"})

#: Lists longer than this are offered as one item (nobody ticks 500 boxes).
MAX_ENTRIES = 60

PREVIEW_CHARS = 160


@dataclass(frozen=True)
class ReviewItem:
    path: Path
    label: str
    preview: str
    children: tuple[ReviewItem, ...] = field(default=())


def path_text(path: Path) -> str:
    """``("system_log", "lines", 3)`` -> ``system_log.lines[3]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _preview(value: Any) -> str:
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _entries(path: Path, value: Any) -> tuple[ReviewItem, ...]:
    """Items for each entry of a list at ``path``, or of lists one level down."""
    if isinstance(value, list) and 0 < len(value) <= MAX_ENTRIES:
        return tuple(
            ReviewItem((*path, i), f"{i + 1}", _preview(entry)) for i, entry in enumerate(value)
        )
    if isinstance(value, dict):
        items: list[ReviewItem] = []
        for key, inner in value.items():
            if isinstance(inner, list) and 0 < len(inner) <= MAX_ENTRIES:
                items += [
                    ReviewItem((*path, key, i), f"{key} {i + 1}", _preview(entry))
                    for i, entry in enumerate(inner)
                ]
        return tuple(items)
    return ()


def outline(result: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> list[ReviewItem]:
    """What the customer can strike out of ``result``, in its order.

    ``labels`` maps top-level keys to the customer's words for them (translated);
    unknown keys show as they are.
    """
    labels = labels or {}
    return [
        ReviewItem((key,), labels.get(key, key), _preview(value), _entries((key,), value))
        for key, value in result.items()
        if key not in METADATA
    ]


def _order(path: Path) -> tuple[int, list[tuple[int, int, str]]]:
    """Sort key: deeper paths, and higher list indexes, come last (removed first)."""
    return len(path), [(0, x, "") if isinstance(x, int) else (1, 0, x) for x in path]


def strike(result: Mapping[str, Any], paths: Iterable[Path]) -> dict[str, Any]:
    """A copy of ``result`` without the items at ``paths``, plus ``withheld``.

    Paths that do not exist are ignored (the result is the agent's own). Entries of
    one list are removed from the highest index down so the others keep their place.
    """
    kept: dict[str, Any] = copy.deepcopy(dict(result))
    wanted = sorted(set(paths), key=_order, reverse=True)
    withheld: list[str] = []
    for path in wanted:
        if not path or any(
            path[: len(other)] == other for other in wanted if len(other) < len(path)
        ):
            continue  # a whole section struck already covers its entries
        parent: Any = kept
        try:
            for part in path[:-1]:
                parent = parent[part]
            del parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue
        withheld.append(path_text(path))
    if withheld:
        kept["withheld"] = sorted(withheld)
    return kept
