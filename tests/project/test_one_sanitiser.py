"""One function makes outside text safe to show: protocol.safe_text.safe_text.

Issue 15 found several display helpers with different rules (one kept newlines, one
turned escapes into "?", one cut at 300 characters): each UI showed the same hostile
text differently, and one let a forged line through. This test reads the product code
and fails if a display sanitiser other than safe_text comes back: a helper by one of
the old names, or a character-by-character ``isprintable()`` rewrite of text.

Allowed, by name, because they do not make text for display:
* ``protocol/fixbundle.py`` ``_is_printable_text``: validates a manifest (returns bool).
* ``protocol/messages.py`` ``rating_comment``: normalises the customer's own typed
  comment to the one-line wire format of a rating; nothing shows it here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Where text is shown (the relay shows nothing to anyone: what it sends is shown by
#: these, through safe_text).
PACKAGES = ("agent", "technician", "protocol", "link")

#: The display helpers issue 15 removed; none may be defined again.
OLD_NAMES = {"printable", "_printable", "shown_text", "one_line", "clean_text", "sanitize"}

#: ``c if c.isprintable() else ...`` / ``... for c in text if c.isprintable()``: a
#: character-by-character rewrite of text, which is what a display sanitiser does.
REWRITE = re.compile(r"isprintable\(\)\s*(else|or\b)|if\s+\w+\.isprintable\(\)\s*\)")

ALLOWED = {
    ("protocol/safe_text.py", "safe_text"),
    ("protocol/fixbundle.py", "_is_printable_text"),
    ("protocol/messages.py", "rating_comment"),
}


def product_files() -> list[Path]:
    return sorted(f for package in PACKAGES for f in (ROOT / package).rglob("*.py"))


def enclosing_function(tree: ast.AST, line: int) -> str:
    found = "<module>"
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            end = node.end_lineno or node.lineno
            if node.lineno <= line <= end:
                found = node.name  # the innermost wins: ast.walk goes outside in
    return found


def test_no_display_sanitiser_but_safe_text() -> None:
    problems: list[str] = []
    for path in product_files():
        relative = path.relative_to(ROOT).as_posix()
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.name in OLD_NAMES and (relative, node.name) not in ALLOWED:
                    problems.append(f"{relative}:{node.lineno}: def {node.name}")
        for number, line in enumerate(source.splitlines(), start=1):
            if REWRITE.search(line):
                function = enclosing_function(tree, number)
                if (relative, function) not in ALLOWED:
                    problems.append(f"{relative}:{number} (in {function}): {line.strip()}")
    assert not problems, (
        "Show outside text with protocol.safe_text.safe_text, not another helper:\n"
        + "\n".join(problems)
    )


def test_the_check_finds_a_display_helper(tmp_path: Path) -> None:
    """The pattern catches the shapes the old helpers had (so the test above can fail)."""
    shapes = [
        '"".join(c if c.isprintable() else "?" for c in text)',
        '"".join(ch if ch.isprintable() or ch == "\\t" else esc(ch) for ch in text)',
        '"".join(c for c in name if c.isprintable())',
    ]
    for shape in shapes:
        assert REWRITE.search(shape), shape
    # Validators and line editors are not rewrites of text for display.
    for fine in (
        "if not value.isprintable():",
        "elif ch.isprintable():",
        "all(isinstance(c, str) and c.isprintable() for c in raw)",
    ):
        assert not REWRITE.search(fine), fine
