"""An enrolled device's updates (agent/device_updates.py) with real signatures, a real
state folder and the real hash-chained audit log: a newer policy that widens nothing
applies; one that widens what the owner agreed to, an older one, or another
organisation's is refused and changes nothing; fix bundles are verified, kept, and
never rolled back; every outcome is in the audit log."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.audit import verify_log
from agent.device_updates import apply_update
from agent.enrolment import AUDIT_FILE, STATE_FILE, DeviceState, read_state
from agent.failure_actions import bundle_path
from protocol.device_policy import policy_from_toml, sign_policy
from protocol.fixbundle import make_bundle
from protocol.identity import OrganisationSecret, key_id, private_key_pem, public_key_pem
from tests.support.device_fixtures import FREE_SPACE_MANIFEST, FREE_SPACE_SCRIPT
from tests.support.trust_fixtures import Organisation, make_organisation

BASE = '[[checks]]\nid = "d"\nkind = "disk_free"\npath = "/"\nmin_free_percent = 5\n'


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Organisation:
    return make_organisation(tmp_path_factory.mktemp("org"), "Acme IT")


def signed(secret: OrganisationSecret, number: int, extra: str = "") -> str:
    source = f"number = {number}\n{extra}{BASE}"
    policy = policy_from_toml(source, secret.organisation, secret.key_id)
    return sign_policy(policy, secret).decode()


def enrolled(acme: Organisation, folder: Path, policy: str) -> DeviceState:
    """A device's state folder as 'puente-agent enrol' leaves it."""
    folder.mkdir(mode=0o700)
    key = Ed25519PrivateKey.generate()
    (folder / "device.key").write_bytes(private_key_pem(key))
    pem = public_key_pem(acme.secret().private_key.public_key()).decode()
    state = {"relay": "ws://127.0.0.1:9", "device_id": "ab" * 16, "organisation_key": pem,
             "policy": policy, "enrolled_at": 0}  # fmt: skip
    (folder / STATE_FILE).write_text(json.dumps(state))
    found = read_state(folder)
    assert found is not None
    return found


def audit(folder: Path) -> list[str]:
    path = folder / AUDIT_FILE
    assert verify_log(path).ok
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


def test_a_newer_narrower_policy_applies_and_is_kept(acme: Organisation, tmp_path: Path) -> None:
    secret = acme.secret()
    state = enrolled(
        acme, tmp_path / "state", signed(secret, 1, '[unattended]\nmode = "ask-allow"\n')
    )
    newer = signed(secret, 2, '[unattended]\nmode = "ask-deny"\n')
    done = apply_update(state, state.verified_policy(), newer, [])
    assert (done.outcome, done.policy_number) == ("applied", 2)
    assert done.note == "Applied the organisation's update: policy 2 (was 1)."
    assert done.state is not None and done.state.verified_policy().unattended.mode == "ask-deny"
    kept = read_state(state.folder)  # the service's next start runs it
    assert kept is not None and kept.verified_policy().number == 2
    assert audit(state.folder) == [done.note]
    # The same update again (a reconnect): nothing changes.
    again = apply_update(kept, kept.verified_policy(), newer, [])
    assert (again.outcome, again.state) == ("unchanged", None)


def test_a_policy_that_widens_the_owners_consent_is_refused_and_changes_nothing(
    acme: Organisation, tmp_path: Path
) -> None:
    secret = acme.secret()
    agreed = signed(secret, 1)  # ask-deny, no failure actions
    state = enrolled(acme, tmp_path / "state", agreed)
    wider = signed(
        secret,
        2,
        'failure_actions = true\n[unattended]\nmode = "allowed"\ncapabilities = ["shell"]\n',
    )
    before = (state.folder / STATE_FILE).read_bytes()
    done = apply_update(state, state.verified_policy(), wider, [])
    assert (done.outcome, done.policy_number, done.state) == ("refused", 1, None)
    assert "The new policy 2 was refused: it would let technicians in unattended as " in done.note
    assert "allow shell in unattended sessions" in done.note
    assert "run fixes by themselves" in done.note
    assert "the owner of this computer did not agree to" in done.note
    assert (state.folder / STATE_FILE).read_bytes() == before
    assert audit(state.folder) == [done.note]


@pytest.mark.parametrize(
    ("make", "sentence"),
    [
        (lambda own, other: signed(other, 2), "signed by another organisation's key"),
        (lambda own, other: signed(own, 2).replace('"number": 2', '"number": 3'), "altered"),
        (lambda own, other: signed(own, 1, "repeat_comment_seconds = 60\n"), "not newer"),
    ],
)
def test_a_foreign_altered_or_older_policy_is_refused(
    acme: Organisation, tmp_path: Path, make: object, sentence: str
) -> None:
    own = acme.secret()
    other = OrganisationSecret("Evil Corp", Ed25519PrivateKey.generate())
    state = enrolled(acme, tmp_path / "state", signed(own, 1))
    done = apply_update(state, state.verified_policy(), make(own, other), [])  # type: ignore[operator]
    assert done.outcome == "refused" and sentence in done.note, done.note
    kept = read_state(state.folder)
    assert kept is not None and kept.policy == state.policy


def bundle(secret: OrganisationSecret, version: str, target: str = "/tmp/x") -> str:
    now = int(time.time())
    manifest = FREE_SPACE_MANIFEST.format(target=target).replace('"1.0.0"', f'"{version}"')
    data = make_bundle(
        manifest.encode(), FREE_SPACE_SCRIPT.encode(), signer=secret,
        signed_at=now, expires_at=now + 86400,
    )  # fmt: skip
    return base64.b64encode(data).decode()


def test_fix_bundles_are_verified_kept_and_never_rolled_back(
    acme: Organisation, tmp_path: Path
) -> None:
    secret = acme.secret()
    state = enrolled(acme, tmp_path / "state", signed(secret, 1))
    policy = state.verified_policy()
    done = apply_update(state, policy, None, [bundle(secret, "1.1.0")])
    assert (done.outcome, done.note) == (
        "applied",
        "Applied the organisation's update: fix free-space 1.1.0.",
    )
    path = bundle_path(state.folder, "free-space")
    assert path.stat().st_mode & 0o777 == 0o600
    kept = path.read_bytes()
    older = apply_update(state, policy, None, [bundle(secret, "1.0.0")])
    assert older.outcome == "refused" and "keeps version 1.1.0, which is newer" in older.note
    assert path.read_bytes() == kept
    foreign = OrganisationSecret("Evil Corp", Ed25519PrivateKey.generate())
    refused = apply_update(state, policy, None, [bundle(foreign, "9.0.0"), "not base64!"])
    assert refused.outcome == "refused" and path.read_bytes() == kept
    assert "another organisation" in refused.note and "not base64" in refused.note
    assert apply_update(state, policy, None, [bundle(secret, "1.1.0")]).outcome == "unchanged"
    assert len(audit(state.folder)) == 4
    assert key_id(secret.private_key.public_key()) == policy.organisation_key


def test_a_policy_narrowed_for_a_while_may_widen_again_up_to_what_the_owner_agreed(
    acme: Organisation, tmp_path: Path
) -> None:
    secret = acme.secret()
    agreed = signed(secret, 1, '[unattended]\nmode = "ask-allow"\ncountdown_seconds = 30\n')
    state = enrolled(acme, tmp_path / "state", agreed)
    narrowed = apply_update(
        state, state.verified_policy(), signed(secret, 2, '[unattended]\nmode = "never"\n'), []
    )
    assert narrowed.outcome == "applied" and narrowed.state is not None
    state = narrowed.state
    kept = json.loads((state.folder / STATE_FILE).read_text())
    assert kept["agreed_policy"] == agreed  # kept once another policy is in force
    back = signed(secret, 3, '[unattended]\nmode = "ask-allow"\ncountdown_seconds = 30\n')
    again = apply_update(state, state.verified_policy(), back, [])
    assert again.outcome == "applied" and again.policy_number == 3
    assert again.state is not None
    beyond = signed(secret, 4, '[unattended]\nmode = "ask-allow"\ncountdown_seconds = 5\n')
    refused = apply_update(again.state, again.state.verified_policy(), beyond, [])
    assert refused.outcome == "refused" and "countdown of 5 s, not 30 s" in refused.note
    kept = json.loads((state.folder / STATE_FILE).read_text())
    assert kept["agreed_policy"] == agreed
