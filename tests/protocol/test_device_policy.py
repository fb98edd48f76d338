"""The device policy: its TOML source, its signature, and what an agent refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.device_policy import (
    CHECK_KINDS,
    POLICY_LABEL,
    DevicePolicy,
    default_policy,
    policy_from_toml,
    sign_policy,
    verify_policy,
    widenings,
)
from protocol.errors import ForeignSigner, MalformedDocument, SignatureMismatch, UnknownCheckKind
from protocol.identity import OrganisationSecret, sign_document

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "device-policy.toml"


def organisation(name: str = "Acme IT") -> OrganisationSecret:
    return OrganisationSecret(name, Ed25519PrivateKey.generate())


def at(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp())


def test_the_example_policy_signs_and_verifies() -> None:
    acme = organisation()
    policy = policy_from_toml(EXAMPLE.read_text(encoding="utf-8"), "", "")
    assert {check.kind for check in policy.checks} == set(CHECK_KINDS)
    signed = sign_policy(policy, acme)
    verified = verify_policy(signed, acme.public_key)
    assert verified.organisation == "Acme IT"
    assert verified.organisation_key == acme.key_id
    assert [c.body() for c in verified.checks] == [c.body() for c in policy.checks]
    assert verified.unattended.mode == "ask-deny" and verified.unattended.answer_seconds == 60
    assert not verified.details_to_help_desk
    disk = verified.check("disk-system")
    assert disk is not None and disk.action == "disk-cleanup" and disk.failures_before_alert == 3


def test_another_organisations_policy_is_refused() -> None:
    signed = sign_policy(default_policy(), organisation("Other Org"))
    with pytest.raises(ForeignSigner, match="another organisation's key"):
        verify_policy(signed, organisation().public_key)


def test_an_altered_policy_is_refused() -> None:
    acme = organisation()
    document = json.loads(sign_policy(default_policy(), acme))
    document["policy"]["details_to_help_desk"] = True
    with pytest.raises(SignatureMismatch, match="altered after signing"):
        verify_policy(json.dumps(document).encode(), acme.public_key)


def test_a_check_kind_the_agent_does_not_know_is_refused_even_when_signed() -> None:
    acme = organisation()
    body = default_policy().body() | {"organisation": acme.organisation}
    body["organisation_key"] = acme.key_id
    body["checks"].append({"id": "gpu", "kind": "gpu_temperature", "every_minutes": 5})
    signed = sign_document("policy", POLICY_LABEL, body, acme.private_key)
    with pytest.raises(UnknownCheckKind, match="'gpu_temperature', which this agent does not know"):
        verify_policy(signed, acme.public_key)


@pytest.mark.parametrize(
    ("source", "sentence"),
    [
        ('[[checks]]\nid = "d"\nkind = "disk_free"\npath = "/"\n', "needs min_free_percent"),
        ('[[checks]]\nid = "d"\nkind = "disk_free"\nmin_free_percent = 5\n', "needs path"),
        (
            '[[checks]]\nid = "d"\nkind = "disk_free"\npath = "/"\nmin_free_percent = 500\n',
            "from 0 to 100",
        ),
        ('[[checks]]\nid = "m"\nkind = "memory_pressure"\ncolour = "red"\n', "unknown setting"),
        ('[[checks]]\nid = "Bad Id"\nkind = "memory_pressure"\n', "needs an id"),
        ('[[checks]]\nid = "l"\nkind = "log_pattern"\npath = "/x"\npattern = "("\n', "regular"),
        ('[[checks]]\nid = "c"\nkind = "clock_drift"\nsource = "ntp.org"\n', "web address"),
        ('[[checks]]\nid = "m"\nkind = "memory_pressure"\nseverity = "dire"\n', "severity"),
        ('[[checks]]\nid = "m"\nkind = "memory_pressure"\nthreshold = 0.5\n', "unknown setting"),
        (
            '[[checks]]\nid = "m"\nkind = "memory_pressure"\n[[checks]]\nid = "m"\n'
            'kind = "memory_pressure"\n',
            "twice",
        ),
        ('[unattended]\nmode = "always"\n', "mode must be one of"),
        ('[unattended]\nmode = "allowed"\n', "one by one"),
        ('[[maintenance]]\ndays = ["sunday"]\nstart = "02:00"\nminutes = 60\n', "days"),
        ('[[maintenance]]\ndays = ["sun"]\nstart = "25:00"\nminutes = 60\n', "02:30"),
        ("checks = [", "not valid TOML"),
        ("colour = 1\n", "unknown setting"),
        ('[[checks]]\nid = "policy-update"\nkind = "pending_reboot"\n', "relay's alert"),
    ],
)
def test_bad_policy_files_get_a_sentence(source: str, sentence: str) -> None:
    with pytest.raises(MalformedDocument, match=sentence):
        policy_from_toml(source, "", "")


def test_maintenance_windows_are_weekly_in_utc() -> None:
    policy = policy_from_toml(
        '[[maintenance]]\ndays = ["sun"]\nstart = "23:00"\nminutes = 120\n'
        '[[maintenance]]\ndays = ["wed"]\nstart = "02:00"\nminutes = 30\n',
        "",
        "",
    )
    # 2026-12-06 is a Sunday.
    assert not policy.in_maintenance(at("2026-12-06 22:59"))
    assert policy.in_maintenance(at("2026-12-06 23:00"))
    assert policy.in_maintenance(at("2026-12-07 00:59"))  # past midnight into Monday
    assert not policy.in_maintenance(at("2026-12-07 01:00"))
    assert policy.in_maintenance(at("2026-12-09 02:29"))
    assert not policy.in_maintenance(at("2026-12-09 02:30"))


def test_the_default_policy_asks_and_denies_after_60_seconds() -> None:
    policy = default_policy()
    assert policy.unattended.mode == "ask-deny" and policy.unattended.answer_seconds == 60
    assert [c.kind for c in policy.checks] == ["disk_free", "memory_pressure", "pending_reboot"]
    assert not policy.maintenance and not policy.details_to_help_desk


def test_failure_actions_are_off_unless_the_signed_policy_says_so() -> None:
    acme = organisation()
    source = EXAMPLE.read_text(encoding="utf-8")
    plain = verify_policy(sign_policy(policy_from_toml(source, "", ""), acme), acme.public_key)
    assert plain.failure_actions is False
    assert "failure_actions" not in plain.body()  # policies signed before it keep their bytes
    assert "failure_actions = false" in source
    allowed = policy_from_toml(
        source.replace("failure_actions = false", "failure_actions = true"), "", ""
    )
    signed = sign_policy(allowed, acme)
    assert verify_policy(signed, acme.public_key).failure_actions is True
    # Turning it on after signing is an alteration.
    document = json.loads(sign_policy(policy_from_toml(source, "", ""), acme))
    document["policy"]["failure_actions"] = True
    with pytest.raises(SignatureMismatch):
        verify_policy(json.dumps(document).encode(), acme.public_key)
    with pytest.raises(MalformedDocument, match="failure_actions must be true or false"):
        policy_from_toml(
            source.replace("failure_actions = false", 'failure_actions = "yes"'), "", ""
        )


def _one_check(extra: str, top: str = "") -> str:
    return (
        f'{top}[[checks]]\nid = "disk"\nkind = "disk_free"\npath = "/"\n'
        f"min_free_percent = 10\n{extra}"
    )


def test_a_check_may_run_every_few_seconds_within_bounds() -> None:
    quick = policy_from_toml(_one_check("every_seconds = 5\n"), "", "")
    (check,) = quick.checks
    assert check.every_seconds == 5 and check.interval == 5
    assert check.body()["every_seconds"] == 5 and "every_minutes" not in check.body()
    acme = organisation()
    (signed,) = verify_policy(sign_policy(quick, acme), acme.public_key).checks
    assert signed == check
    week = policy_from_toml(_one_check("every_seconds = 604800\n"), "", "")
    assert week.checks[0].interval == 7 * 86400
    # Without it the minutes hold, and the signed body is what it was before.
    (minutes,) = policy_from_toml(_one_check("every_minutes = 2\n"), "", "").checks
    assert minutes.interval == 120 and "every_seconds" not in minutes.body()
    for wrong in (4, 0, 604801, "5", 5.5):
        with pytest.raises(MalformedDocument, match="every_seconds must be a whole number from 5"):
            policy_from_toml(_one_check(f"every_seconds = {json.dumps(wrong)}\n"), "", "")
    with pytest.raises(MalformedDocument, match="both every_minutes and every_seconds"):
        policy_from_toml(_one_check("every_seconds = 10\nevery_minutes = 1\n"), "", "")


def test_repeat_comment_seconds_has_an_hour_default_and_bounds() -> None:
    acme = organisation()
    default = policy_from_toml(_one_check(""), "", "")
    assert default.repeat_comment_seconds == 3600
    assert "repeat_comment_seconds" not in default.body()  # old signatures keep their bytes
    quick = policy_from_toml(_one_check("", "repeat_comment_seconds = 10\n"), "", "")
    assert quick.repeat_comment_seconds == 10
    verified = verify_policy(sign_policy(quick, acme), acme.public_key)
    assert verified.repeat_comment_seconds == 10
    for wrong in (9, 0, 604801, "60", True):
        with pytest.raises(
            MalformedDocument, match="repeat_comment_seconds must be a whole number from 10"
        ):
            policy_from_toml(
                _one_check("", f"repeat_comment_seconds = {json.dumps(wrong)}\n"), "", ""
            )


def _update(source: str) -> DevicePolicy:
    return policy_from_toml(source, "Acme IT", "0" * 64)


_CHECK_WITH_ACTION = '[[checks]]\nid = "d"\nkind = "disk_free"\npath = "/"\nmin_free_percent = 5\n'


@pytest.mark.parametrize(
    ("agreed", "offered", "widens"),
    [
        # Unattended access: a mode further along, a shorter countdown, a capability.
        ('[unattended]\nmode = "ask-deny"\n', '[unattended]\nmode = "ask-allow"\n', "ask-allow"),
        ('[unattended]\nmode = "never"\n', "", "'ask-deny', not 'never'"),
        (
            '[unattended]\nmode = "ask-allow"\ncountdown_seconds = 60\n',
            '[unattended]\nmode = "ask-allow"\ncountdown_seconds = 10\n',
            "countdown of 10 s",
        ),
        (
            '[unattended]\nmode = "allowed"\ncapabilities = ["diagnostics"]\n',
            '[unattended]\nmode = "allowed"\ncapabilities = ["diagnostics", "shell"]\n',
            "allow shell",
        ),
        # Failure actions: turned on, or another fix running by itself.
        (_CHECK_WITH_ACTION + 'action = "a"\n', "failure_actions = true\n" + _CHECK_WITH_ACTION
         + 'action = "a"\n', "run fixes by themselves"),
        ("failure_actions = true\n" + _CHECK_WITH_ACTION + 'action = "a"\n',
         "failure_actions = true\n" + _CHECK_WITH_ACTION + 'action = "b"\n',
         "run other fixes by themselves (b)"),
        # Details leaving the device.
        ("", "DETAILS_KEY", "send check details off this computer"),
    ],
)  # fmt: skip
def test_a_policy_that_widens_what_the_owner_agreed_to_says_how(
    agreed: str, offered: str, widens: str
) -> None:
    if offered == "DETAILS_KEY":  # a real key, made here
        from protocol.sealed_details import new_details_key, public_text

        offered = f'details_key = "{public_text(new_details_key())}"\n'
    found = widenings(_update(agreed), _update(offered))
    assert any(widens in phrase for phrase in found), found


@pytest.mark.parametrize(
    ("agreed", "offered"),
    [
        ('[unattended]\nmode = "ask-allow"\n', '[unattended]\nmode = "ask-deny"\n'),
        ('[unattended]\nmode = "allowed"\ncapabilities = ["diagnostics", "shell"]\n',
         '[unattended]\nmode = "allowed"\ncapabilities = ["shell"]\n'),
        ("failure_actions = true\n" + _CHECK_WITH_ACTION + 'action = "a"\n', _CHECK_WITH_ACTION),
        ('[unattended]\nmode = "ask-allow"\ncountdown_seconds = 10\n',
         '[unattended]\nmode = "ask-allow"\ncountdown_seconds = 60\n'),
        # Checks, thresholds and maintenance windows are the organisation's to change.
        ("", _CHECK_WITH_ACTION + '[[maintenance]]\ndays = ["sun"]\nstart = "02:00"\nminutes = 60\n'),
        ("", ""),
    ],
)  # fmt: skip
def test_a_narrower_or_equal_policy_widens_nothing(agreed: str, offered: str) -> None:
    assert widenings(_update(agreed), _update(offered)) == []
