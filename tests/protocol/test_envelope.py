"""The relay envelope: small JSON text messages, checked strictly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from protocol import envelope
from protocol.envelope import ENVELOPE_VERSION, MAX_ENVELOPE_SIZE, Role
from protocol.errors import ERROR_SENTENCES, EnvelopeError, ErrorCode, PuenteError


def test_role_peer() -> None:
    assert Role.AGENT.peer is Role.TECHNICIAN
    assert Role.TECHNICIAN.peer is Role.AGENT


@pytest.mark.parametrize("role", list(Role))
def test_claim_round_trips(role: Role) -> None:
    text = envelope.claim(role, "417")
    assert json.loads(text) == {
        "type": "claim",
        "version": ENVELOPE_VERSION,
        "role": role.value,
        "nameplate": "417",
    }
    assert envelope.parse_claim(envelope.decode(text)) == (role, "417")


def test_encode_needs_a_type() -> None:
    assert envelope.encode({"type": "end", "reason": "done"}) == '{"type":"end","reason":"done"}'
    with pytest.raises(ValueError):
        envelope.encode({"reason": "done"})


@pytest.mark.parametrize(
    "text",
    [
        b'{"type": "claim"}',
        bytearray(b"{}"),
        "x" * (MAX_ENVELOPE_SIZE + 1),
        "",
        "not json",
        "{",
        "[" * 3000,  # nests deeper than the JSON decoder recurses
        '{"a":' * 2000,
        "[]",
        "null",
        '"claim"',
        '{"type": 1}',
        '{"kind": "claim"}',
    ],
)
def test_decode_refuses_non_envelopes(text: str | bytes) -> None:
    with pytest.raises(EnvelopeError) as info:
        envelope.decode(text)
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert isinstance(info.value, PuenteError)


def valid_claim(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "claim",
        "version": ENVELOPE_VERSION,
        "role": "agent",
        "nameplate": "417",
    }
    message.update(changes)
    return {k: v for k, v in message.items() if v is not ...}


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (valid_claim(type="burn"), ErrorCode.BAD_REQUEST),
        (valid_claim(version=2), ErrorCode.VERSION),
        (valid_claim(version=...), ErrorCode.VERSION),
        (valid_claim(version=True), ErrorCode.VERSION),
        (valid_claim(version=1.0), ErrorCode.VERSION),
        (valid_claim(version="1"), ErrorCode.VERSION),
        (valid_claim(role="relay"), ErrorCode.BAD_REQUEST),
        (valid_claim(role="AGENT"), ErrorCode.BAD_REQUEST),
        (valid_claim(role=...), ErrorCode.BAD_REQUEST),
        (valid_claim(role=["agent"]), ErrorCode.BAD_REQUEST),
        (valid_claim(role={"agent": 1}), ErrorCode.BAD_REQUEST),
        (valid_claim(nameplate=417), ErrorCode.BAD_REQUEST),
        (valid_claim(nameplate="41"), ErrorCode.BAD_REQUEST),
        (valid_claim(nameplate="1234567890"), ErrorCode.BAD_REQUEST),
        (valid_claim(nameplate="41a"), ErrorCode.BAD_REQUEST),
        (valid_claim(nameplate="٤١٧"), ErrorCode.BAD_REQUEST),
        (valid_claim(nameplate="²¹⁷"), ErrorCode.BAD_REQUEST),
        (valid_claim(nameplate=...), ErrorCode.BAD_REQUEST),
    ],
)
def test_parse_claim_refuses_bad_claims(message: dict[str, Any], code: ErrorCode) -> None:
    with pytest.raises(EnvelopeError) as info:
        envelope.parse_claim(message)
    assert info.value.code is code


def test_parse_claim_accepts_nine_digit_nameplates() -> None:
    assert envelope.parse_claim(valid_claim(nameplate="123456789", role="technician")) == (
        Role.TECHNICIAN,
        "123456789",
    )


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_has_a_sentence(code: ErrorCode) -> None:
    message = json.loads(envelope.error(code))
    assert message == {"type": "error", "code": code.value, "message": ERROR_SENTENCES[code]}
    assert ERROR_SENTENCES[code].endswith(".")


def test_error_with_own_message() -> None:
    message = json.loads(envelope.error(ErrorCode.IDLE, "Nothing for 5 minutes."))
    assert message["message"] == "Nothing for 5 minutes."
