"""The helper's messages (agent/helper_wire.py): every field checked, anything else refused."""

from __future__ import annotations

import json

import pytest

from agent import helper_wire as wire


def test_a_message_goes_out_and_comes_back_as_it_was() -> None:
    fields = {
        "id": 7,
        "technician": "Ana López",
        "organisation": "Acme IT",
        "ticket": "HD-1042",
        "capabilities": ["diagnostics", "screen"],
        "seconds": 60,
        "allow_on_silence": False,
    }
    line = wire.encode("question", **fields)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert wire.parse(line) == {"type": "question", **fields}
    answer = wire.encode("answer", wire.SESSION_FIELDS, id=7, allow=True, user="alice", uid=1001)
    assert wire.parse(answer, wire.SESSION_FIELDS)["user"] == "alice"


@pytest.mark.parametrize(
    "line",
    [
        b"not json\n",
        b"[1, 2]\n",
        b'{"type": "launch"}\n',  # unknown type
        b'{"type": "answer", "id": 1}\n',  # a field missing
        b'{"type": "answer", "id": 1, "allow": true, "more": 1}\n',  # one too many
        b'{"type": "answer", "id": 1, "allow": "yes"}\n',  # not a boolean
        b'{"type": "answer", "id": true, "allow": true}\n',  # a boolean is not a number
        b'{"type": "answer", "id": 0, "allow": true}\n',  # ids start at 1
        b'{"type": "windows", "ids": [-1]}\n',
        b'{"type": "hello", "version": 1, "display": "' + b"x" * 100 + b'"}\n',
        b'{"type": "refused", "reason": "because", "message": ""}\n',
        b"\xff\xfe\n",
    ],
)
def test_anything_else_is_refused(line: bytes) -> None:
    with pytest.raises(wire.MalformedHelperMessage):
        wire.parse(line)


def test_a_line_longer_than_the_limit_is_refused_both_ways() -> None:
    long = json.dumps({"type": "welcome", "user": "x" * wire.MAX_LINE}).encode() + b"\n"
    with pytest.raises(wire.MalformedHelperMessage, match="more than"):
        wire.parse(long)
    with pytest.raises(wire.MalformedHelperMessage):
        wire.encode("welcome", user="x" * 100)  # over the field's own bound
    # The session's shape of "answer" says who; the helper's does not.
    with pytest.raises(wire.MalformedHelperMessage):
        wire.parse(wire.encode("answer", id=1, allow=True), wire.SESSION_FIELDS)
