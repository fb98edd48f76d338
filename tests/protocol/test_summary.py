"""The session summary's unattended part (protocol/summary.py): which device and under
which policy mode; checked like the rest, and shown on the ticket. The rest of the
summary is tested with the help-desk events (tests/relay/test_events.py)."""

from __future__ import annotations

import copy

import pytest

from protocol.summary import SummaryInvalid, check_summary, summary_lines
from tests.relay.test_events import SUMMARY

DEVICE = "0123456789abcdef0123456789abcdef"


def test_an_unattended_session_names_its_device_and_mode_on_the_ticket() -> None:
    summary = {**copy.deepcopy(SUMMARY), "unattended": {"device_id": DEVICE, "mode": "ask-allow"}}
    assert check_summary(summary) == summary
    lines = summary_lines(summary, {"technician": "Ana"})
    assert (
        f"Unattended: on enrolled device {DEVICE}, under its owner's policy (mode ask-allow)"
        in lines
    )
    assert not any(line.startswith("Unattended") for line in summary_lines(SUMMARY, {}))


@pytest.mark.parametrize(
    "unattended",
    [
        {"device_id": DEVICE, "mode": "sometimes"},
        {"device_id": "not-a-device", "mode": "never"},
        {"device_id": DEVICE},
        {"device_id": DEVICE, "mode": "never", "extra": 1},
    ],
)
def test_a_bad_unattended_part_is_refused(unattended: dict[str, object]) -> None:
    with pytest.raises(SummaryInvalid):
        check_summary({**copy.deepcopy(SUMMARY), "unattended": unattended})
