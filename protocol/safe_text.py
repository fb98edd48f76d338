"""The one way any text from outside reaches a screen.

Names, ticket ids and links, chat, file names, fix titles and descriptions, diagnostics:
everything that came from the technician, the relay or the customer's machine goes
through :func:`safe_text` before a UI (console, Tk window, viewer, CLI) shows it. One
rule, everywhere:

* a character that is not printable is shown as its escape instead of acting: terminal
  control (``ESC [ 1 A`` moves the cursor, so ``\\x1b`` is shown), carriage returns and
  newlines (they would start a forged line), bidirectional overrides and isolates
  (``\\u202e`` turns ``exe.txt`` around), zero-width characters and other format
  characters, line and paragraph separators, private-use and unassigned code points;
* with ``multiline=True`` (a script the customer reads, a report) newlines and tabs
  stay, and nothing else does;
* at most ``limit`` characters are shown, the cut marked with ``…``.

The result is plain text. A UI that interprets markup (Qt rich text, HTML) must still
escape it for that markup, or show it as plain text.
"""

from __future__ import annotations

#: Longer texts are cut; a UI may ask for less.
DEFAULT_LIMIT = 2000

ELLIPSIS = "…"

_KEPT_IN_MULTILINE = frozenset("\n\t")


def safe_text(value: object, limit: int = DEFAULT_LIMIT, *, multiline: bool = False) -> str:
    """``value`` (any object; ``str()`` of it) made inert for display; see the module doc."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    text = value if isinstance(value, str) else str(value)
    pieces: list[str] = []
    size = 0
    for char in text:
        if char.isprintable() or (multiline and char in _KEPT_IN_MULTILINE):
            piece = char
        else:
            piece = char.encode("unicode_escape").decode("ascii")
        if size + len(piece) > limit:
            # Cut: drop whole pieces (an escape is never halved) until "…" fits.
            while pieces and size + len(ELLIPSIS) > limit:
                size -= len(pieces.pop())
            return "".join(pieces) + ELLIPSIS
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces)
