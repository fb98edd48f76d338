"""``puente-agent enrol`` and ``unenrol``: this computer becomes (or stops being) a device
its help desk looks after.

Enrolling, in this order, so that a refusal or a "no" leaves nothing behind:

1. Refuse at once if this computer is already enrolled, or if a service is asked for
   where this build cannot install one (:func:`agent.service_install.install_problem`).
2. Ask the relay which policy the token carries (spending nothing) and verify it
   against the pinned organisation key; without one, the default policy.
3. Show the owner the policy in plain words (:func:`policy_words`, English or
   Spanish) and ask; anything but yes stops here.
4. Make the device key, register its public half with the relay (spending one use),
   and keep the key and the state in the state folder, readable by this account only.
5. Install the service (:mod:`agent.service_install`, done by the command) or stay
   online in the foreground (:mod:`agent.device_link`).

Unenrolling removes the state folder's enrolment (key, state, measurements, the
failure actions' bundles and audit log); the command removes the service first.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl as ssl_module
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import EnrolmentFailed
from agent.i18n import t
from agent.monitoring.checks import clock_offset
from agent.monitoring.history import FILE_NAME as HISTORY_FILE
from agent.monitoring.history import owner_only_directory
from agent.service_install import install_problem
from agent.trust import load_pinned_key
from link.relay_address import http_url
from protocol.device_policy import DevicePolicy, default_policy, verify_policy
from protocol.device_wire import ENROL_PATH, ENROL_POLICY_PATH
from protocol.errors import TrustError
from protocol.identity import (
    b64encode,
    key_id,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    raw_public_key,
)
from protocol.safe_text import safe_text

#: Kept in the state folder by agent.failure_actions (named here, which it imports).
AUDIT_FILE, FIXES_FOLDER = "audit.log", "fixes"
FAILURE_COUNTS_FILE = "failure-counts.json"
KEY_FILE = "device.key"
STATE_FILE = "device.json"
TIMEOUT = 15.0
#: Seconds this clock may be off the relay's before enrolling is refused.
MAX_CLOCK_OFFSET = 300


@dataclass(frozen=True)
class DeviceState:
    """What an enrolled device keeps: where its relay is, who it is, whom it trusts."""

    folder: Path
    relay: str
    device_id: str
    organisation_key_pem: str
    policy: str | None
    key: Ed25519PrivateKey

    def verified_policy(self) -> DevicePolicy:
        """The kept policy, verified again (the state file is not trusted on its own)."""
        organisation_key = load_public_key(self.organisation_key_pem.encode())
        if self.policy is None:
            return default_policy(organisation_key=key_id(organisation_key))
        return verify_policy(self.policy.encode(), organisation_key)


def policy_words(policy: DevicePolicy, organisation: str) -> list[str]:
    """The policy as the owner reads it before agreeing, in the current language."""
    unattended = policy.unattended
    seconds = (
        unattended.countdown_seconds
        if unattended.mode == "ask-allow"
        else unattended.answer_seconds
    )
    lines = [
        t("enrol.policy_intro", organisation=safe_text(organisation), number=policy.number),
        t(
            f"enrol.unattended.{unattended.mode}",
            seconds=seconds,
            capabilities=", ".join(unattended.capabilities),
        ),
        t(
            "enrol.details.private"
            if not policy.details_key
            else "enrol.details.shared"
            if policy.details_to_help_desk
            else "enrol.details.sealed"
        ),
    ]
    kinds = list(dict.fromkeys(check.kind for check in policy.checks))
    if kinds:
        lines.append(t("enrol.checks", checks=", ".join(t(f"kind.{kind}") for kind in kinds)))
    fixes = list(dict.fromkeys(check.action for check in policy.checks if check.action))
    if fixes:
        words = "enrol.actions.automatic" if policy.failure_actions else "enrol.actions.reported"
        lines.append(t(words, fixes=", ".join(fixes)))
    if policy.maintenance:
        windows = "; ".join(
            f"{' '.join(w.days)} {w.body()['start']} +{w.minutes} min" for w in policy.maintenance
        )
        lines.append(t("enrol.maintenance", windows=windows))
    return lines


def _request(
    url: str, relay: str, ssl: ssl_module.SSLContext | None, **kwargs: Any
) -> dict[str, Any]:
    """The relay's JSON answer; EnrolmentFailed if it refused, failed, or its clock and
    this one are far apart (a device with a wrong clock would judge every signature's
    validity wrong)."""
    request = urllib.request.Request(url, **kwargs)
    try:
        sent = time.time()
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=ssl) as response:
            answer = json.loads(response.read(256 * 1024))
            received = time.time()
            offset = clock_offset(sent, response.headers.get("Date"), received, relay)
    except urllib.error.HTTPError as exc:
        with exc:
            try:
                reason = str(json.loads(exc.read(64 * 1024))["message"])
            except (ValueError, KeyError, TypeError):
                reason = f"HTTP {exc.code}"
        raise EnrolmentFailed(t("enrol.refused", reason=safe_text(reason))) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        cause = getattr(exc, "reason", None) or exc
        raise EnrolmentFailed(t("enrol.unreachable", relay=relay, reason=cause)) from None
    if not isinstance(answer, dict):
        raise EnrolmentFailed(t("enrol.refused", reason="the relay answered something else"))
    if abs(offset) > MAX_CLOCK_OFFSET:
        minutes = max(1, round(abs(offset) / 60))
        way = "enrol.clock_ahead" if offset > 0 else "enrol.clock_behind"
        raise EnrolmentFailed(t(way, minutes=minutes))
    return answer


def read_state(folder: Path) -> DeviceState | None:
    """The enrolment kept in ``folder``, or None if there is none."""
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        key = load_private_key((folder / KEY_FILE).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TrustError) as exc:
        raise EnrolmentFailed(f"The enrolment in {folder} cannot be read ({exc}).") from None
    return DeviceState(
        folder, state["relay"], state["device_id"], state["organisation_key"], state["policy"], key
    )


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(path, 0o600)


def enrol(
    relay: str,
    org_key: Path,
    token: str,
    folder: Path,
    *,
    service: bool,
    scope: str = "user",
    answer: Callable[[str], str],
    say: Callable[[str], None],
    ssl: ssl_module.SSLContext | None = None,
) -> DeviceState:
    """Steps 1 to 4 of the module doc. ``answer(question)`` returns the owner's reply;
    ``say(line)`` shows a line; ``scope`` is the service's (system or user), checked
    when ``service`` is true. Raises EnrolmentFailed with the sentence to show."""
    existing = read_state(folder)
    if existing is not None:
        raise EnrolmentFailed(t("enrol.already", device_id=existing.device_id))
    problem = install_problem(scope) if service else None
    if problem is not None:
        raise EnrolmentFailed(problem)
    organisation_key = load_pinned_key(org_key)
    base = http_url(relay.rstrip("/"))
    offered = _request(
        base + ENROL_POLICY_PATH, relay, ssl, headers={"Authorization": f"Enrol {token}"}
    )
    document = offered.get("policy")
    try:
        if document is None:
            policy = default_policy(organisation_key=key_id(organisation_key))
        else:
            policy = verify_policy(str(document).encode(), organisation_key)
    except TrustError as exc:
        raise EnrolmentFailed(t("enrol.policy_refused", reason=exc)) from None
    organisation = policy.organisation or key_id(organisation_key)[:16]
    for line in policy_words(policy, organisation):
        say(line)
    reply = str(answer(t("enrol.question")) or "").strip().lower()
    if reply not in ("yes", "y", "sí", "si", "s"):
        raise EnrolmentFailed(t("enrol.declined"))
    key = Ed25519PrivateKey.generate()
    body = json.dumps(
        {"token": token, "public_key": b64encode(raw_public_key(key.public_key()))}
    ).encode()
    registered = _request(
        base + ENROL_PATH,
        relay,
        ssl,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    device_id = str(registered["device_id"])
    owner_only_directory(folder)
    _write_private(folder / KEY_FILE, private_key_pem(key))
    pinned = public_key_pem(organisation_key).decode()
    state = {
        "relay": relay,
        "device_id": device_id,
        "organisation_key": pinned,
        "policy": document,
        "enrolled_at": int(time.time()),
    }
    _write_private(folder / STATE_FILE, json.dumps(state, indent=2).encode())
    return DeviceState(folder, relay, device_id, pinned, document, key)


def unenrol(folder: Path, tell_relay: Callable[[DeviceState], str | None]) -> str:
    """Remove this computer's enrolment from ``folder``; the sentence to show.

    ``tell_relay(state)`` asks the relay to forget the device and returns None, or why
    it could not; the local files go either way (the owner's wish comes first).
    """
    state = read_state(folder)
    if state is None:
        return t("unenrol.nothing", folder=folder)
    problem = tell_relay(state)
    for name in (KEY_FILE, STATE_FILE, HISTORY_FILE, AUDIT_FILE, FAILURE_COUNTS_FILE):
        (folder / name).unlink(missing_ok=True)
    for path in [*folder.glob("fix-versions-*.json"), *folder.glob("*.new")]:
        path.unlink()  # .new: a file being replaced when the service stopped
    shutil.rmtree(folder / FIXES_FOLDER, ignore_errors=True)
    if not any(folder.iterdir()):
        shutil.rmtree(folder)
    if problem is not None:
        return t("unenrol.local_only", folder=folder, device_id=state.device_id, reason=problem)
    return t("unenrol.done", folder=folder, device_id=state.device_id)
