"""The device WebSocket's messages: what is accepted, and that anything else is refused
with a sentence (a MalformedDocument), never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import device_wire as wire
from protocol.errors import MalformedDocument

DEVICE = "0123456789abcdef0123456789abcdef"


def test_the_messages_of_a_session_parse() -> None:
    assert wire.parse_device_message(wire.encode("hello", device_id=DEVICE))["device_id"] == DEVICE
    assert wire.parse_device_message(wire.encode("welcome", heartbeat=30))["heartbeat"] == 30
    results = [
        {"check": "disk-system", "kind": "disk_free", "status": "failing", "severity": "critical"}
    ]
    assert (
        wire.parse_device_message(wire.encode("results", at=1_800_000_000, results=results))[
            "results"
        ]
        == results
    )
    shared = [{**results[0], "sealed": "c2VhbGVk"}]
    assert (
        wire.parse_device_message(wire.encode("results", at=1_800_000_000, results=shared))[
            "results"
        ]
        == shared
    )
    assert wire.parse_device_message(wire.encode("heartbeat")) == {"type": "heartbeat"}


@pytest.mark.parametrize(
    "message",
    [
        {"type": "hello", "device_id": "ABC"},
        {"type": "hello", "device_id": DEVICE, "extra": 1},
        {"type": "shell", "command": "rm -rf /"},
        {"type": "welcome", "heartbeat": 0},
        {"type": "results", "at": 1, "results": [{"check": "x"}]},
        {
            "type": "results",
            "results": [
                {"check": "Bad Name", "kind": "disk_free", "status": "ok", "severity": "info"}
            ],
        },
        {
            "type": "results",
            "results": [{"check": "d", "kind": "disk_free", "status": "fine", "severity": "info"}],
        },
        {
            "type": "results",
            "results": [
                {"check": "d", "kind": "k", "status": "ok", "severity": "info", "secret": 1}
            ],
        },
        {"type": "results", "at": 1, "results": [{}] * 101},
        {"type": "proof", "signature": 5},
        {"type": "results", "results": []},
        {"type": "results", "at": "now", "results": []},
        {"type": "results", "at": -1, "results": []},
        [1, 2],
    ],
)
def test_bad_messages_are_refused_with_a_sentence(message: object) -> None:
    with pytest.raises(MalformedDocument):
        wire.parse_device_message(json.dumps(message))


def test_binary_huge_and_broken_messages_are_refused() -> None:
    for text in (b"{}", "x" * (wire.MAX_MESSAGE + 1), "{not json"):
        with pytest.raises(MalformedDocument):
            wire.parse_device_message(text)


@given(st.text(max_size=300))
def test_any_text_is_a_message_or_a_sentence(text: str) -> None:
    try:
        wire.parse_device_message(text)
    except MalformedDocument:
        pass


def test_the_proof_binds_the_device_and_the_nonce() -> None:
    nonce = bytes(32)
    assert wire.proof_message(DEVICE, nonce) != wire.proof_message(DEVICE, bytes([1]) * 32)
    assert wire.proof_message(DEVICE, nonce).startswith(wire.PROOF_LABEL)


def test_an_unattended_request_names_a_nameplate_and_a_ticket() -> None:
    message = wire.parse_device_message(
        wire.encode("unattended", nameplate="417", ticket_id="HD-1042")
    )
    assert (message["nameplate"], message["ticket_id"]) == ("417", "HD-1042")
    for nameplate, ticket in (("41", "HD-1"), ("abc", "HD-1"), ("417", ""), ("417", "x" * 201)):
        with pytest.raises(MalformedDocument, match="names a nameplate and a ticket"):
            wire.parse_device_message(
                wire.encode("unattended", nameplate=nameplate, ticket_id=ticket)
            )
    with pytest.raises(MalformedDocument):
        wire.parse_device_message(json.dumps({"type": "unattended", "nameplate": "417"}))


def test_a_failure_action_outcome_parses_and_bad_ones_get_a_sentence() -> None:
    fields = {"check": "disk-system", "fix": "free-space", "outcome": "ran", "note": "It ran."}
    assert wire.parse_device_message(wire.encode("action", **fields))["outcome"] == "ran"
    for bad, sentence in (
        ({**fields, "outcome": "exploded"}, "outcome is not one Puente knows"),
        ({**fields, "fix": "../x"}, "fix is not a name"),
        ({**fields, "note": ""}, "note is a text of 1 to"),
        ({**fields, "note": "x" * (wire.MAX_NOTE + 1)}, "note is a text of 1 to"),
    ):
        with pytest.raises(MalformedDocument, match=sentence):
            wire.parse_device_message(wire.encode("action", **bad))


def test_an_update_and_its_answer_parse_and_bad_ones_get_a_sentence() -> None:
    update = wire.parse_device_message(
        wire.encode("update", id=7, policy='{"policy": {}}', fixes=["YnVuZGxl"])
    )
    assert (update["id"], update["fixes"]) == (7, ["YnVuZGxl"])
    assert wire.parse_device_message(wire.encode("update", id=1, policy=None, fixes=[]))
    # An update may carry bundles (up to 1 MiB each): more than any other message.
    big = wire.encode("update", id=2, policy=None, fixes=["A" * (wire.MAX_MESSAGE * 4)])
    assert wire.parse_device_message(big)["id"] == 2
    with pytest.raises(MalformedDocument, match="small JSON texts"):
        wire.parse_device_message(wire.encode("heartbeat") + " " * wire.MAX_MESSAGE)
    answer = {"id": 7, "outcome": "refused", "policy": 3, "note": "It would widen."}
    assert wire.parse_device_message(wire.encode("updated", **answer))["outcome"] == "refused"
    for bad, sentence in (
        ({**answer, "outcome": "ignored"}, "outcome is not one Puente knows"),
        ({**answer, "id": 0}, "numbered by the relay"),
        ({**answer, "id": True}, "numbered by the relay"),
        ({**answer, "policy": -1}, "policy number"),
        ({**answer, "note": ""}, "note is a text of 1 to"),
    ):
        with pytest.raises(MalformedDocument, match=sentence):
            wire.parse_device_message(wire.encode("updated", **bad))
    for bad_update in (
        {"id": 1, "policy": 5, "fixes": []},
        {"id": 1, "policy": None, "fixes": "x"},
        {"id": 1, "policy": None, "fixes": [1]},
    ):
        with pytest.raises(MalformedDocument, match="signed policy or null"):
            wire.parse_device_message(wire.encode("update", **bad_update))
