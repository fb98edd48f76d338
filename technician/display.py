"""Showing what the customer's machine reported: everything it sends is hostile text.

A fix's output, a process name in a diagnostics snapshot or a file name could carry
terminal escape sequences that recolour, hide or rewrite what the technician sees,
or bidirectional-override characters that reorder it. :func:`printable` shows them
as escapes instead.
"""

from __future__ import annotations


def printable(text: object, limit: int = 4000) -> str:
    """``text`` as a string with control and format characters escaped, cut to ``limit``."""
    value = text if isinstance(text, str) else str(text)
    return "".join(
        c if c.isprintable() or c == "\t" else c.encode("unicode_escape").decode("ascii")
        for c in value[:limit]
    )
