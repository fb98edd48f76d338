"""protocol.safe_text: the one way text from outside reaches a screen."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.safe_text import ELLIPSIS, safe_text


def test_printable_text_is_unchanged() -> None:
    assert (
        safe_text("Ana López — Acme IT, ticket HD-1042 ✓")
        == "Ana López — Acme IT, ticket HD-1042 ✓"
    )


def test_terminal_escapes_are_shown_not_obeyed() -> None:
    forged = "hi\x1b[1A\x1b[2K\rVerified: Ana Lopez\nAllow Diagnostics? "
    shown = safe_text(forged)
    assert "\x1b" not in shown and "\r" not in shown and "\n" not in shown
    assert shown == "hi\\x1b[1A\\x1b[2K\\rVerified: Ana Lopez\\nAllow Diagnostics? "


def test_bidi_and_zero_width_characters_are_visible() -> None:
    assert safe_text("invoice\u202egpj.exe") == "invoice\\u202egpj.exe"
    assert safe_text("a\u200bb\u2066c\u2028d") == "a\\u200bb\\u2066c\\u2028d"


def test_multiline_keeps_newlines_and_tabs_only() -> None:
    assert safe_text("line 1\n\tline 2\x1b[31m", multiline=True) == "line 1\n\tline 2\\x1b[31m"
    assert safe_text("a\rb", multiline=True) == "a\\rb"


def test_length_is_bounded_and_the_cut_is_marked() -> None:
    assert safe_text("x" * 10, limit=5) == "xxxx" + ELLIPSIS
    assert safe_text("x" * 5, limit=5) == "xxxxx"
    # An escape is never cut in half.
    assert safe_text("ab\x1b", limit=4) == "ab" + ELLIPSIS
    assert safe_text(12345) == "12345"
    with pytest.raises(ValueError):
        safe_text("x", limit=0)


@given(st.text(), st.integers(min_value=1, max_value=300), st.booleans())
def test_nothing_unprintable_survives_and_the_bound_holds(
    text: str, limit: int, multiline: bool
) -> None:
    shown = safe_text(text, limit, multiline=multiline)
    allowed = set("\n\t") if multiline else set()
    assert all(c.isprintable() or c in allowed for c in shown)
    assert len(shown) <= limit
