"""Which checks are due: a schedule in minutes or, for a quick one, in seconds."""

from __future__ import annotations

from agent.monitoring.runner import due_checks
from protocol.device_policy import policy_from_toml

POLICY = """\
[[checks]]
id = "quick"
kind = "disk_free"
path = "/"
min_free_percent = 10
every_seconds = 5

[[checks]]
id = "slow"
kind = "memory_pressure"
every_minutes = 1
"""


def test_a_check_every_few_seconds_is_due_that_often() -> None:
    policy = policy_from_toml(POLICY, "", "")
    never_ran = [check.id for check in due_checks(policy, {}, 1000.0)]
    assert never_ran == ["quick", "slow"]
    ran = {"quick": 1000.0, "slow": 1000.0}
    assert due_checks(policy, ran, 1004.9) == []
    assert [c.id for c in due_checks(policy, ran, 1005.0)] == ["quick"]
    assert [c.id for c in due_checks(policy, ran, 1060.0)] == ["quick", "slow"]
