"""Session codes: what a customer may type, what is refused, and what never leaks."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocol.code import SECRET_DIGITS, SessionCode
from protocol.errors import InvalidCodeError

nameplates = st.text(alphabet="0123456789", min_size=3, max_size=9)
secrets_ = st.text(alphabet="0123456789", min_size=SECRET_DIGITS, max_size=SECRET_DIGITS)


@pytest.mark.parametrize(
    ("typed", "nameplate", "secret"),
    [
        ("417-862-093", "417", "862093"),
        ("417 862 093", "417", "862093"),
        ("417862093", "417", "862093"),
        ("  417.862_093\n", "417", "862093"),
        ("417 - 862 - 093", "417", "862093"),
        ("4170-862-093", "4170", "862093"),
        ("12345-678-901", "12345", "678901"),
        ("123456789-000-001", "123456789", "000001"),
        ("000-000-000", "000", "000000"),
    ],
)
def test_parse_accepts_what_customers_type(typed: str, nameplate: str, secret: str) -> None:
    code = SessionCode.parse(typed)
    assert (code.nameplate, code.secret) == (nameplate, secret)


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "417-862",
        "41786209",  # eight digits: one short
        "abc-def-ghi",
        "417-862-09a",
        "417-862-093!",
        "417/862/093",
        "1234567890-123-456",  # a ten-digit nameplate is not one the relay hands out
        "²¹⁷-862-093",  # superscripts are digits to str.isdigit(), not decimal digits
        "1" * 20,
    ],
)
def test_parse_rejects_what_is_not_a_code(typed: str) -> None:
    with pytest.raises(InvalidCodeError) as info:
        SessionCode.parse(typed)
    message = str(info.value)
    # The message shows what a code looks like and quotes what was typed.
    assert "417-862-093" in message
    assert repr(typed) in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "typed",
    [
        "４１７-８６２-０９３",  # full-width digits from an input method
        "٤١٧-٨٦٢-٠٩٣",  # Arabic-Indic digits
        "४१७ ८६२ ०९३",  # Devanagari digits
    ],
)
def test_parse_reads_other_scripts_digits_as_ascii(typed: str) -> None:
    code = SessionCode.parse(typed)
    assert str(code) == "417-862-093"
    assert code == SessionCode("417", "862093")


@pytest.mark.parametrize(
    ("nameplate", "secret"),
    [
        ("41", "862093"),
        ("1234567890", "862093"),
        ("41a", "862093"),
        ("417", "86209"),
        ("417", "8620934"),
        ("417", "86209x"),
        ("٤١٧", "862093"),  # only ASCII digits inside a SessionCode
        ("417", "８６２０９３"),
    ],
)
def test_constructor_validates_both_parts(nameplate: str, secret: str) -> None:
    with pytest.raises(InvalidCodeError):
        SessionCode(nameplate, secret)


def test_str_is_the_customer_form() -> None:
    assert str(SessionCode("417", "862093")) == "417-862-093"
    assert str(SessionCode("12345", "678901")) == "12345-678-901"


@given(nameplate=nameplates, secret=secrets_)
@settings(deadline=None, max_examples=200)
def test_str_round_trips(nameplate: str, secret: str) -> None:
    code = SessionCode(nameplate, secret)
    assert SessionCode.parse(str(code)) == code
    assert SessionCode.parse(str(code).replace("-", " ")) == code
    assert SessionCode.parse(nameplate + secret) == code


@given(nameplate=nameplates, secret=secrets_)
@settings(deadline=None, max_examples=200)
def test_repr_never_contains_the_secret(nameplate: str, secret: str) -> None:
    assume(secret not in nameplate)
    code = SessionCode(nameplate, secret)
    assert secret not in repr(code)
    assert secret[:3] not in repr(code).replace(nameplate, "")
    assert repr(code) == f"SessionCode(nameplate={nameplate!r}, secret=<hidden>)"
    assert secret not in f"{[code]}"  # containers use repr() too


def test_new_makes_six_digit_secrets() -> None:
    codes = [SessionCode.new("417") for _ in range(200)]
    for code in codes:
        assert code.nameplate == "417"
        assert len(code.secret) == SECRET_DIGITS == 6
        assert code.secret.isascii() and code.secret.isdigit()
    # 200 draws from a million: a repeat-only generator would be a broken CSPRNG.
    assert len({code.secret for code in codes}) > 190


def test_new_refuses_a_bad_nameplate() -> None:
    with pytest.raises(InvalidCodeError):
        SessionCode.new("12")


def test_codes_are_values() -> None:
    assert SessionCode.parse("417-862-093") == SessionCode.parse("417862093")
    assert len({SessionCode.parse("417-862-093"), SessionCode("417", "862093")}) == 1
    with pytest.raises(AttributeError):
        SessionCode("417", "862093").secret = "000000"  # type: ignore[misc]  # frozen on purpose
