"""Failure actions on an enrolled device (agent/failure_actions.py), with real signed
bundles, a real script run by /bin/sh and the real hash-chained audit log: the fix runs
once when the check's alert would open, only if the accepted policy allows it; a
tampered, unsigned, foreign or missing bundle is not run; every outcome is in the log."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.audit import verify_log
from agent.enrolment import AUDIT_FILE, FAILURE_COUNTS_FILE, DeviceState
from agent.errors import AgentError
from agent.failure_actions import FailureActions, bundle_path, keep_bundles, read_bundles
from agent.monitoring.checks import CheckResult
from agent.monitoring.runner import Report
from protocol.device_policy import DevicePolicy, policy_from_toml
from protocol.identity import key_id, public_key_pem
from technician.fixlib import unsigned_bundle
from tests.support.device_fixtures import FREE_SPACE_MANIFEST, FREE_SPACE_SCRIPT, free_space_fix
from tests.support.trust_fixtures import Organisation, make_organisation, write_fix


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Organisation:
    return make_organisation(tmp_path_factory.mktemp("org"), "Acme IT")


def device(acme: Organisation, folder: Path, allow: bool) -> tuple[DeviceState, DevicePolicy]:
    folder.mkdir(mode=0o700)
    organisation_key = acme.secret().private_key.public_key()
    source = (
        f"failure_actions = {'true' if allow else 'false'}\n"
        "[[checks]]\n"
        'id = "small-disk"\nkind = "disk_free"\npath = "/"\nmin_free_percent = 1\n'
        'failures_before_alert = 2\naction = "free-space"\n'
    )
    policy = policy_from_toml(source, "Acme IT", key_id(organisation_key))
    pem = public_key_pem(organisation_key).decode()
    state = DeviceState(
        folder, "ws://127.0.0.1:9", "ab" * 16, pem, None, Ed25519PrivateKey.generate()
    )
    return state, policy


def report(policy: DevicePolicy, status: str) -> Report:
    result = CheckResult("small-disk", "disk_free", "warning", status, "disk.low")
    return Report(policy, time.time(), [result])


def audit(folder: Path) -> list[str]:
    path = folder / AUDIT_FILE
    assert verify_log(path).ok
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


def test_an_allowed_action_runs_once_when_the_alert_opens_and_is_logged(
    acme: Organisation, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * 1000)
    state, policy = device(acme, tmp_path / "state", allow=True)
    keep_bundles(
        state.folder, {"free-space": free_space_fix(acme, big, tmp_path / "f").read_bytes()}
    )
    actions = FailureActions(state, policy)
    assert actions.due(report(policy, "failing")) == []  # 1 of 2 failures
    (due,) = actions.due(report(policy, "failing"))
    assert actions.due(report(policy, "failing")) == []  # once per run of failures
    done = asyncio.run(actions.run(due))
    assert done.outcome == "ran" and done.fix == "free-space" and done.check == "small-disk"
    assert "free-space 1.0.0 for the check small-disk ran by itself" in done.note
    assert "exit status 0" in done.note
    assert not big.exists()
    first, output = audit(state.folder)
    assert first == done.note and f"removed {big}" in output
    # A pass starts the count again.
    actions.due(report(policy, "ok"))
    assert actions.due(report(policy, "failing")) == []
    assert len(actions.due(report(policy, "failing"))) == 1


def test_a_policy_without_failure_actions_runs_nothing(acme: Organisation, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0")
    state, policy = device(acme, tmp_path / "state", allow=False)
    keep_bundles(
        state.folder, {"free-space": free_space_fix(acme, big, tmp_path / "f").read_bytes()}
    )
    actions = FailureActions(state, policy)
    check = policy.checks[0]
    done = asyncio.run(actions.run(check))
    assert done.outcome == "not_allowed" and big.exists()
    assert "does not let the fix free-space run by itself; it was not run" in done.note
    assert audit(state.folder) == [done.note]


def tampered(bundle: bytes) -> bytes:
    document = json.loads(bundle)
    text = json.dumps(document)
    assert "rm -f" not in text  # the script travels in base64: change the statement
    document["statement"]["version"] = "9.9.9"
    return json.dumps(document).encode()


@pytest.mark.parametrize("kind", ["tampered", "unsigned", "foreign", "missing"])
def test_a_bad_or_missing_bundle_is_not_run_and_is_reported(
    acme: Organisation, tmp_path: Path, kind: str
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0")
    state, policy = device(acme, tmp_path / "state", allow=True)
    good = free_space_fix(acme, big, tmp_path / "f").read_bytes()
    if kind == "tampered":
        keep_bundles(state.folder, {"free-space": tampered(good)})
    elif kind == "unsigned":
        source = write_fix(
            tmp_path / "src",
            {"manifest.toml": FREE_SPACE_MANIFEST.format(target=big), "fix.sh": FREE_SPACE_SCRIPT},
        )
        keep_bundles(state.folder, {"free-space": unsigned_bundle(source)})
    elif kind == "foreign":
        other = make_organisation(tmp_path / "other", "Other IT")
        keep_bundles(
            state.folder, {"free-space": free_space_fix(other, big, tmp_path / "o").read_bytes()}
        )
    done = asyncio.run(FailureActions(state, policy).run(policy.checks[0]))
    assert done.outcome == "refused" and big.exists(), done.note
    assert done.note.startswith("The fix free-space was not run: ")
    expected = {
        "tampered": "altered",
        "unsigned": "not signed",
        "foreign": "another organisation",
        "missing": "no copy of it",
    }[kind]
    assert expected in done.note
    assert audit(state.folder) == [done.note]


def test_enrol_refuses_a_bundle_the_organisation_did_not_sign(
    acme: Organisation, tmp_path: Path
) -> None:
    other = make_organisation(tmp_path / "other", "Other IT")
    foreign = free_space_fix(other, tmp_path / "x", tmp_path / "foreign.puentefix")
    with pytest.raises(
        AgentError, match="foreign.puentefix was refused, and nothing was installed"
    ):
        read_bundles([foreign], acme.public)
    good = free_space_fix(acme, tmp_path / "x", tmp_path / "good.puentefix")
    bundles = read_bundles([good], acme.public)
    assert list(bundles) == ["free-space"]
    (kept,) = keep_bundles(tmp_path / "state", bundles)
    assert kept == bundle_path(tmp_path / "state", "free-space")
    assert oct(kept.stat().st_mode & 0o777) == "0o600"


def test_the_failure_count_survives_a_restart_of_the_service(
    acme: Organisation, tmp_path: Path
) -> None:
    """The service stops between two failures (an update, a reboot): the count goes on
    where it stopped, so the action runs at the second failure, once; a restart after
    it does not run it again for the same run of failures."""
    state, policy = device(acme, tmp_path / "state", allow=True)
    first = FailureActions(state, policy)
    assert first.due(report(policy, "failing")) == []  # 1 of 2
    kept = state.folder / FAILURE_COUNTS_FILE
    assert json.loads(kept.read_text()) == {"failures": {"small-disk": 1}}
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600

    second = FailureActions(state, policy)  # the service started again
    assert second.counts == {"small-disk": 1}
    (due,) = second.due(report(policy, "failing"))  # 2 of 2: due now, not at 3
    assert due.action == "free-space"

    third = FailureActions(state, policy)  # and again, still failing
    assert third.due(report(policy, "failing")) == []  # once per run of failures
    assert third.counts == {"small-disk": 3}
    third.due(report(policy, "ok"))
    assert FailureActions(state, policy).counts == {}  # a pass is kept too


def test_an_unreadable_count_starts_from_zero_and_says_so(
    acme: Organisation, tmp_path: Path
) -> None:
    state, policy = device(acme, tmp_path / "state", allow=True)
    (state.folder / FAILURE_COUNTS_FILE).write_text("{not json")
    actions = FailureActions(state, policy)
    assert actions.counts == {}
    [line] = audit(state.folder)
    assert "could not be read" in line and "counting starts again from zero" in line
    # Counts of checks the policy no longer has (or without an action) are dropped.
    (state.folder / FAILURE_COUNTS_FILE).write_text(
        json.dumps({"failures": {"small-disk": 1, "gone": 5, "small-disk-2": True}})
    )
    assert FailureActions(state, policy).counts == {"small-disk": 1}
