"""What an enrolled device and the relay say to each other. Pure.

Enrolment is plain HTTPS (JSON bodies):

* ``GET /v1/enrol/policy`` with ``Authorization: Enrol TOKEN``: the policy the token
  carries (the signed document, or null for the default), WITHOUT spending a use, so
  the owner reads it before anything is installed.
* ``POST /v1/enrol`` ``{"token": T, "public_key": B64}``: spends one use and registers
  the device's Ed25519 public key; answers ``{"device_id": ID, "policy": ...}``.

Presence is one WebSocket, ``/v1/device``, of small JSON text messages:

1. device → ``{"type": "hello", "device_id": ID}``
2. relay → ``{"type": "challenge", "nonce": B64}`` (32 fresh random bytes)
3. device → ``{"type": "proof", "signature": B64}``: its device key's signature of
   ``PROOF_LABEL ‖ device_id ‖ nonce``. A key that does not match the registration
   (a cloned disk, a forged id) is refused and the connection closed.
4. relay → ``{"type": "welcome", "heartbeat": SECONDS}``
5. device → ``{"type": "heartbeat"}`` every ``heartbeat`` seconds, and
   ``{"type": "results", "at": SECONDS, "results": [SUMMARY...]}`` after checks ran
   (``at``: when, by the device's clock; the device sends its latest results again
   after a reconnect and the relay counts each once): each summary only ``check``,
   ``kind``, ``status``, ``severity``, plus ``sealed`` when the policy names the
   organisation's details key: the details sealed to it (:mod:`protocol.sealed_details`),
   which the relay keeps but cannot open.
6. device → ``{"type": "action", "check": ID, "fix": ID, "outcome": OUTCOME, "note":
   SENTENCE}`` after a failure action was due (``agent.failure_actions``): OUTCOME is
   ran, failed, refused or not_allowed; the relay comments SENTENCE on the alert's
   ticket. The fix's output stays on the device.
7. device → ``{"type": "unenrol"}`` when its owner unenrols it; the relay forgets the
   device and answers ``{"type": "goodbye"}``.
8. relay → ``{"type": "error", "message": SENTENCE}`` before it closes on a refusal.
9. relay → ``{"type": "unattended", "nameplate": DIGITS, "ticket_id": T}`` when a
   technician asks for an unattended session (:mod:`relay.unattended`): a fresh
   rendezvous nameplate the device claims code-less with its device key. It names no
   technician: the device learns who asks only in the key exchange, end to end, and
   its own policy decides (:mod:`agent.unattended`).
10. relay → ``{"type": "update", "id": N, "policy": DOCUMENT or null, "fixes": [B64...]}``
    when the organisation published a new signed policy or fix bundles for the device
    (``puente-relay enrolment publish``; N numbers the publication): the relay passes
    them on unread. The device verifies each against its pinned organisation key and
    applies a policy only if it is newer and widens nothing its owner agreed to
    (:mod:`agent.device_updates`). Up to :data:`MAX_UPDATE_MESSAGE` long (a bundle is
    up to 1 MiB): the relay spreads many bundles over several updates, each numbered
    by the newest publication it carries, in order; every other message is
    :data:`MAX_MESSAGE` at most.
11. device → ``{"type": "updated", "id": N, "outcome": OUTCOME, "policy": NUMBER, "note":
    SENTENCE}``: what became of update N (applied, unchanged or refused) and the number
    of the policy the device now runs. A refusal raises the ``policy-update`` alert the
    help desk sees (:mod:`relay.device_updates`); a later update applied resolves it.

Every message is checked here (:func:`parse_device_message`); anything else is
refused with a sentence (:class:`protocol.errors.MalformedDocument`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import MalformedDocument
from .sealed_details import MAX_SEALED

DEVICE_PATH = "/v1/device"
ENROL_PATH = "/v1/enrol"
ENROL_POLICY_PATH = "/v1/enrol/policy"
PROOF_LABEL = b"puente/1 device presence\n"
NONCE_SIZE = 32
MAX_MESSAGE = 64 * 1024
#: An update carries fix bundles (1 MiB each at most, base64) as well as a policy.
MAX_UPDATE_MESSAGE = 4 * 1024 * 1024
UPDATE_OUTCOMES = ("applied", "unchanged", "refused")
MAX_RESULTS = 100
_DEVICE_ID = re.compile(r"[0-9a-f]{32}")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
STATUSES = ("ok", "failing", "error")
SEVERITIES = ("info", "warning", "critical")
ACTION_OUTCOMES = ("ran", "failed", "refused", "not_allowed")
MAX_NOTE = 1000

#: Message type -> the fields it carries (besides ``type``).
MESSAGE_FIELDS: dict[str, frozenset[str]] = {
    "hello": frozenset({"device_id"}),
    "challenge": frozenset({"nonce"}),
    "proof": frozenset({"signature"}),
    "welcome": frozenset({"heartbeat"}),
    "heartbeat": frozenset(),
    "results": frozenset({"at", "results"}),
    "error": frozenset({"message"}),
    "action": frozenset({"check", "fix", "outcome", "note"}),
    "unenrol": frozenset(),
    "goodbye": frozenset(),
    "unattended": frozenset({"nameplate", "ticket_id"}),
    "update": frozenset({"id", "policy", "fixes"}),
    "updated": frozenset({"id", "outcome", "policy", "note"}),
}
_NAMEPLATE = re.compile(r"[0-9]{3,12}")
MAX_TICKET = 200


def proof_message(device_id: str, nonce: bytes) -> bytes:
    """What the device key signs to prove it is the enrolled device."""
    return PROOF_LABEL + device_id.encode("ascii") + nonce


def encode(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))


def check_device_id(value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE_ID.fullmatch(value):
        raise MalformedDocument("A device id is 32 lowercase hex digits.")
    return value


def _check_summary(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or not {"check", "kind", "status", "severity"} <= set(item):
        raise MalformedDocument("A check result names check, kind, status and severity.")
    if set(item) - {"check", "kind", "status", "severity", "sealed"}:
        raise MalformedDocument(
            "A check result carries only check, kind, status, severity and sealed details."
        )
    sealed = item.get("sealed")
    if sealed is not None and (not isinstance(sealed, str) or len(sealed) > MAX_SEALED):
        raise MalformedDocument("A check result's sealed details are base64 text, 48 KiB at most.")
    for name in ("check", "kind"):
        if not isinstance(item[name], str) or not _NAME.fullmatch(item[name]):
            raise MalformedDocument(f"A check result's {name} is not a check name.")
    if item["status"] not in STATUSES or item["severity"] not in SEVERITIES:
        raise MalformedDocument("A check result's status or severity is not one Puente knows.")
    return dict(item)


def parse_device_message(text: str | bytes) -> dict[str, Any]:
    """One checked message of the device WebSocket (see the module doc)."""
    if isinstance(text, bytes) or len(text) > MAX_UPDATE_MESSAGE:
        raise MalformedDocument("Device messages are small JSON texts.")
    try:
        message = json.loads(text)
    except ValueError:
        raise MalformedDocument("A device message is not JSON.") from None
    if not isinstance(message, dict):
        raise MalformedDocument("A device message is a JSON object.")
    kind = message.get("type")
    if kind not in MESSAGE_FIELDS or set(message) - {"type"} != MESSAGE_FIELDS[kind]:
        raise MalformedDocument(f"Unknown or malformed device message {str(kind)[:40]!r}.")
    if kind != "update" and len(text) > MAX_MESSAGE:
        raise MalformedDocument("Device messages are small JSON texts.")
    if kind in ("update", "updated") and (
        not isinstance(message["id"], int) or isinstance(message["id"], bool) or message["id"] < 1
    ):
        raise MalformedDocument("An update is numbered by the relay, from 1.")
    if kind == "update":
        fixes = message["fixes"]
        if (
            not (message["policy"] is None or isinstance(message["policy"], str))
            or not isinstance(fixes, list)
            or len(fixes) > 100
            or not all(isinstance(item, str) for item in fixes)
        ):
            raise MalformedDocument("An update carries a signed policy or null, and fix bundles.")
    if kind == "updated":
        number, note = message["policy"], message["note"]
        if message["outcome"] not in UPDATE_OUTCOMES:
            raise MalformedDocument("An update's outcome is not one Puente knows.")
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise MalformedDocument("An update's answer names the policy number the device runs.")
        if not isinstance(note, str) or not 0 < len(note) <= MAX_NOTE:
            raise MalformedDocument(f"An update's note is a text of 1 to {MAX_NOTE}.")
    if kind == "hello":
        check_device_id(message["device_id"])
    if kind == "results":
        results = message["results"]
        if not isinstance(results, list) or len(results) > MAX_RESULTS:
            raise MalformedDocument(f"Results are a list of at most {MAX_RESULTS}.")
        message["results"] = [_check_summary(item) for item in results]
        at = message["at"]
        if not isinstance(at, int) or isinstance(at, bool) or at < 0:
            raise MalformedDocument("Results carry the time they were made, in whole seconds.")
    if kind == "unattended" and (
        not isinstance(message["nameplate"], str)
        or not _NAMEPLATE.fullmatch(message["nameplate"])
        or not isinstance(message["ticket_id"], str)
        or not 0 < len(message["ticket_id"]) <= MAX_TICKET
    ):
        raise MalformedDocument("An unattended request names a nameplate and a ticket.")
    if kind == "action":
        for name in ("check", "fix"):
            if not isinstance(message[name], str) or not _NAME.fullmatch(message[name]):
                raise MalformedDocument(f"A failure action's {name} is not a name.")
        if message["outcome"] not in ACTION_OUTCOMES:
            raise MalformedDocument("A failure action's outcome is not one Puente knows.")
        note = message["note"]
        if not isinstance(note, str) or not 0 < len(note) <= MAX_NOTE:
            raise MalformedDocument(f"A failure action's note is a text of 1 to {MAX_NOTE}.")
    if kind == "welcome" and (
        not isinstance(message["heartbeat"], int) or not 1 <= message["heartbeat"] <= 3600
    ):
        raise MalformedDocument("The relay's heartbeat interval is not a number of seconds.")
    for name in ("nonce", "signature", "message"):
        if name in message and not isinstance(message[name], str):
            raise MalformedDocument(f"A device message's {name} is text.")
    return message
