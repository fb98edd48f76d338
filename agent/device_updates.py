"""An enrolled device takes its organisation's newer policy and fix bundles without
enrolling again, and refuses what its owner did not agree to.

The relay passes on what the organisation published (``puente-relay enrolment
publish``) as an ``update`` message (:mod:`protocol.device_wire`); it cannot read or
change anything without breaking a signature. Rules (deny by default):

1. A policy is taken only through :func:`protocol.device_policy.verify_policy` with
   the pinned organisation key: another organisation's or an altered one is refused.
2. Only a newer policy (a higher ``number``) can replace the one in force; the same
   document again is "unchanged"; an older or different one with the same number is
   refused (no rollback).
3. A newer policy that widens what the owner agreed to — the policy they read and
   accepted at enrolment, kept as ``agreed_policy`` in the state file once another is
   in force — (:func:`protocol.device_policy.widenings`: unattended access,
   capabilities, failure actions, details leaving the device) is refused: the owner's
   consent cannot be widened from afar. The help desk sees it as the ``policy-update``
   alert; the owner may unenrol and enrol again to accept it. A narrower or equal one
   applies at once (so a policy narrowed for a while may widen again up to what the
   owner agreed to, never beyond).
4. A fix bundle is taken only if :func:`protocol.fixbundle.verify_bundle` accepts it
   (signed by the pinned key, unaltered, in date, for this system) and it is not older
   than the copy kept (no rollback); it is kept in ``fixes/`` for the failure actions,
   which verify it again at every run (:mod:`agent.failure_actions`).
5. Nothing is half applied: everything is verified before anything is written; the
   policy goes into the state file in one replacement, bundles one file each.
6. Every outcome is an entry of the device's hash-chained audit log (``audit.log``)
   and the ``updated`` answer to the relay: applied, unchanged or refused, with the
   sentence (never a bundle's content) and the number of the policy in force.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.audit import AgentLog
from agent.enrolment import AUDIT_FILE, STATE_FILE, DeviceState
from agent.failure_actions import bundle_path, keep_bundles
from agent.trust import current_platform
from protocol.device_policy import DevicePolicy, verify_policy, widenings
from protocol.errors import TrustError
from protocol.fixbundle import MAX_BUNDLE_SIZE, verify_bundle, version_key
from protocol.identity import load_public_key


@dataclass(frozen=True)
class UpdateOutcome:
    """What became of one update: ``outcome`` applied, unchanged or refused; the
    sentence for the logs and the relay; the policy number in force; the new state
    when the policy in force changed (else None)."""

    outcome: str
    note: str
    policy_number: int
    state: DeviceState | None = None


def apply_update(
    state: DeviceState, in_force: DevicePolicy, document: str | None, fixes: list[str]
) -> UpdateOutcome:
    """Rules 1 to 6 for one ``update`` message: ``document`` the signed policy or None,
    ``fixes`` the bundles in base64."""
    organisation_key = load_public_key(state.organisation_key_pem.encode())
    now = int(time.time())
    refusals: list[str] = []
    applied: list[str] = []
    new_policy: DevicePolicy | None = None
    if document is not None:
        try:
            offered = verify_policy(document.encode(), organisation_key)
        except TrustError as exc:
            refusals.append(f"The new policy was refused: {exc}")
        else:
            verdict = _judge_policy(state, in_force, document, offered, _agreed(state))
            if verdict is None:
                new_policy = offered
                applied.append(f"policy {offered.number} (was {in_force.number})")
            elif verdict:
                refusals.append(verdict)
    kept: dict[str, bytes] = {}
    for text in fixes:
        try:
            data = _bundle_bytes(text)
            fix = verify_bundle(data, organisation_key, now, current_platform())
        except TrustError as exc:
            refusals.append(f"A fix bundle was refused: {exc}")
            continue
        manifest = fix.manifest
        older = _kept_version(state.folder, manifest.id, organisation_key, now)
        if older is not None and version_key(manifest.version) < version_key(older):
            refusals.append(
                f"The fix {manifest.id} {manifest.version} was refused: this computer keeps "
                f"version {older}, which is newer."
            )
        elif older is None or version_key(manifest.version) > version_key(older):
            kept[manifest.id] = data
            applied.append(f"fix {manifest.id} {manifest.version}")
    # Rule 5: everything was verified; now write.
    new_state = _write_policy(state, document) if new_policy is not None and document else None
    keep_bundles(state.folder, kept)
    number = (new_policy or in_force).number
    if refusals:
        note = " ".join(refusals)
        if applied:
            note += " Applied: " + ", ".join(applied) + "."
        outcome = UpdateOutcome("refused", note, number, new_state)
    elif applied:
        outcome = UpdateOutcome(
            "applied", "Applied the organisation's update: " + ", ".join(applied) + ".",
            number, new_state,
        )  # fmt: skip
    else:
        outcome = UpdateOutcome(
            "unchanged", "The organisation's update was already in force; nothing changed.", number
        )
    _audit(state.folder, outcome.note)
    return outcome


def _agreed(state: DeviceState) -> DevicePolicy:
    """The policy the owner accepted at enrolment (rule 3), verified again."""
    kept = json.loads((state.folder / STATE_FILE).read_text(encoding="utf-8"))
    document = kept["agreed_policy"] if "agreed_policy" in kept else kept.get("policy")
    return replace(state, policy=document).verified_policy()


def _judge_policy(
    state: DeviceState,
    in_force: DevicePolicy,
    document: str,
    offered: DevicePolicy,
    agreed: DevicePolicy,
) -> str | None:
    """None: apply ``offered``; "": the same policy again; else why it is refused."""
    if offered.number <= in_force.number:
        if offered.number == in_force.number and _same(document, state.policy):
            return ""
        return (
            f"The new policy was refused: its number {offered.number} is not newer than the "
            f"policy {in_force.number} in force (an older policy is never taken back)."
        )
    wider = widenings(agreed, offered)
    if wider:
        return (
            f"The new policy {offered.number} was refused: it would {'; '.join(wider)}, "
            "which the owner of this computer did not agree to. It needs the owner: unenrol "
            "this computer and enrol it again with a token that carries it."
        )
    return None


def _same(document: str, kept: str | None) -> bool:
    if kept is None:
        return False
    try:
        return bool(json.loads(document) == json.loads(kept))
    except ValueError:
        return False


def _bundle_bytes(text: str) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise TrustError("it is not base64, as the relay should have sent it.") from None
    if len(data) > MAX_BUNDLE_SIZE:
        raise TrustError(f"it is larger than {MAX_BUNDLE_SIZE} bytes.")
    return data


def _kept_version(folder: Path, fix_id: str, organisation_key: Any, now: int) -> str | None:
    """The version of the bundle kept for ``fix_id``, if one is kept and still verifies."""
    try:
        data = bundle_path(folder, fix_id).read_bytes()
        return verify_bundle(data, organisation_key, now, current_platform()).manifest.version
    except (OSError, TrustError):
        return None


def _write_policy(state: DeviceState, document: str) -> DeviceState:
    """The state file with ``document`` as the policy, replaced whole (0600)."""
    path = state.folder / STATE_FILE
    kept = json.loads(path.read_text(encoding="utf-8"))
    kept.setdefault("agreed_policy", kept.get("policy"))  # what the owner accepted
    kept["policy"] = document
    kept["policy_updated_at"] = int(time.time())
    partial = path.with_name(path.name + ".new")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(kept, file, indent=2)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    return replace(state, policy=document)


def _audit(folder: Path, line: str) -> None:
    log = AgentLog(folder / AUDIT_FILE)
    try:
        log.write(line)
    finally:
        log.close()
