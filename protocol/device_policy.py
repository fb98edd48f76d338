"""The device policy: what an enrolled device checks, when it is quiet, and what a
technician may do when nobody answers. Signed by the organisation key. Pure.

Rules (everything an agent accepts of a policy is decided here):

1. The source is a TOML file the organisation writes (:func:`policy_from_toml`);
   ``puente-tech policy sign`` turns it into a signed document
   ``{"policy": BODY, "signature": B64}`` (:func:`sign_policy`), the same shape and
   canonical JSON as certificates (:mod:`protocol.identity`), under its own domain
   label so no other signed document can pass as a policy.
2. An agent accepts a policy only through :func:`verify_policy` with its pinned
   organisation key: another organisation's policy raises ``ForeignSigner``, an
   altered one ``SignatureMismatch``, a check kind this agent does not know
   ``UnknownCheckKind``; nothing of a refused policy is used.
3. Every number is an integer (percent, MiB, minutes, hours, days, seconds): canonical
   JSON has no floats, and thresholds need no fractions.
4. Each check names its kind (:data:`CHECK_KINDS`, with the parameters each accepts),
   a schedule (``every_minutes``, or ``every_seconds`` down to :data:`MIN_EVERY_SECONDS`
   for a check that must speak quickly; not both), a severity (``info``, ``warning``, ``critical``),
   how many consecutive failures make an alert (``failures_before_alert``) and
   optionally a failure action: the id of a fix the organisation signed. The action
   is only a name here; the agent runs it only if the accepted policy allows it.
5. Maintenance windows are in UTC: days of the week, a start ``HH:MM`` and a length.
   During a window the relay opens no alerts (:meth:`DevicePolicy.in_maintenance`).
6. Unattended access (what a technician may do when nobody answers the prompt):
   ``never``; ``ask-deny`` (the default: ask the signed-in user, deny after
   ``answer_seconds``, 60 by default); ``ask-allow`` (ask, allow after
   ``countdown_seconds``, for servers); ``allowed`` (the ``capabilities`` listed, one by
   one, without asking).
7. The relay sees only which check failed and with which severity. A result's
   details travel only sealed to the organisation's details key, when the policy names
   one (``details_key``, :mod:`protocol.sealed_details`); the help desk opens them.
   ``details_to_help_desk`` (default false) lets the technician's side post the opened
   details on the alert's ticket; it needs a ``details_key``.
8. ``failure_actions`` (default false): whether the device may run a check's
   ``action`` by itself, without asking, when the check's alert opens. The owner reads
   this before agreeing; without it an action is only reported as not run. The
   signed body carries the key only when true, so policies signed before it existed
   keep their exact bytes.
9. ``repeat_comment_seconds`` (default :data:`DEFAULT_REPEAT_COMMENT_SECONDS`, an hour):
   the least time between two comments on the ticket of an alert that keeps failing
   (the relay applies it, :mod:`relay.alerts`), from :data:`MIN_REPEAT_COMMENT_SECONDS`
   to a week. Like ``failure_actions`` and ``every_seconds``, the signed body carries
   it only when it is not the default.
10. Times are integer Unix seconds passed in as ``now``; nothing here reads a clock.
11. An enrolled device takes a newer policy from its organisation without enrolling
    again only if it widens nothing its owner agreed to (:func:`widenings`): more
    unattended access (a mode further along ``never``, ``ask-deny``, ``ask-allow``,
    ``allowed``; a shorter ``ask-allow`` countdown; a capability not listed before),
    failure actions that run by themselves where none did, or fixes that run by
    themselves that the owner was not shown, and check details leaving the device
    (sealed where they stayed, or to the help desk's tickets where they did not). A
    narrower or equal policy applies; a wider one needs the owner, like an enrolment.
    The check id ``policy-update`` is the relay's (the alert of a refused update) and
    no policy may use it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import ForeignSigner, MalformedDocument, SignatureMismatch, UnknownCheckKind
from .identity import (
    OrganisationSecret,
    _split_signed,
    canonical_json,
    key_id,
    short_key_id,
    sign_document,
    verify_signature,
)
from .sealed_details import public_from_text

POLICY_LABEL = b"puente/1 device policy\n"
POLICY_FORMAT = "puente-device-policy/1"

SEVERITIES = ("info", "warning", "critical")
UNATTENDED_MODES = ("never", "ask-deny", "ask-allow", "allowed")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Capabilities an ``allowed`` policy may list (the agent's session capabilities).
UNATTENDED_CAPABILITIES = ("diagnostics", "screen", "control", "shell", "files", "fixes")

MAX_CHECKS = 100
#: The shortest schedule a check may have: a check every few seconds is for a server
#: that must be watched closely (and for tests); faster would be load, not watching.
MIN_EVERY_SECONDS = 5
#: Comments on an alert that keeps failing: at most one an hour unless the policy says.
DEFAULT_REPEAT_COMMENT_SECONDS = 3600
MIN_REPEAT_COMMENT_SECONDS = 10
WEEK_SECONDS = 7 * 86400
MAX_TEXT = 500
_CHECK_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
#: The relay's own alert for a refused policy update (rule 11).
POLICY_UPDATE_CHECK = "policy-update"
_FIX_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True)
class Parameter:
    """One parameter a check kind accepts: its type, and its default (None: required)."""

    type: type
    default: Any = None
    low: int = 0
    high: int = 10**9
    optional: bool = False

    @property
    def required(self) -> bool:
        return self.default is None and not self.optional


#: Check kind -> its parameters. A kind not listed here is refused (rule 2).
CHECK_KINDS: dict[str, dict[str, Parameter]] = {
    "disk_free": {
        "path": Parameter(str),
        "min_free_percent": Parameter(int, optional=True, high=100),
        "min_free_mb": Parameter(int, optional=True),
        "forecast_days": Parameter(int, default=14, high=365),
    },
    "memory_pressure": {
        "max_used_percent": Parameter(int, default=90, high=100),
        "max_swap_percent": Parameter(int, default=80, high=100),
        "forecast_days": Parameter(int, default=0, high=365),
    },
    "process_running": {"name": Parameter(str)},
    "service_running": {"name": Parameter(str)},
    "pending_reboot": {},
    "clock_drift": {
        "source": Parameter(str),
        "max_seconds": Parameter(int, default=60, low=1, high=86400),
    },
    "certificate_expiry": {
        "paths": Parameter(list),
        "min_days": Parameter(int, default=14, high=3650),
    },
    "log_pattern": {
        "path": Parameter(str),
        "pattern": Parameter(str),
        "max_matches": Parameter(int, default=0),
        "tail_kb": Parameter(int, default=512, low=1, high=65536),
        "forecast_days": Parameter(int, default=0, high=365),
    },
    "backup_age": {
        "path": Parameter(str),
        "max_hours": Parameter(int, low=1, high=24 * 365),
    },
}

#: What every check has besides its kind's parameters.
_COMMON = {
    "id",
    "kind",
    "every_minutes",
    "every_seconds",
    "severity",
    "failures_before_alert",
    "action",
}


@dataclass(frozen=True)
class CheckDefinition:
    """One check of a policy: which, how often, how bad, and its kind's parameters."""

    id: str
    kind: str
    every_minutes: int
    severity: str
    failures_before_alert: int
    action: str | None
    params: Mapping[str, Any]
    #: A schedule in seconds instead of ``every_minutes`` (rule 4); None: minutes.
    every_seconds: int | None = None

    @property
    def interval(self) -> int:
        """Seconds between two runs of the check."""
        return self.every_seconds if self.every_seconds is not None else self.every_minutes * 60

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "every_minutes": self.every_minutes,
            "severity": self.severity,
            "failures_before_alert": self.failures_before_alert,
            **self.params,
        }
        if self.action is not None:
            body["action"] = self.action
        if self.every_seconds is not None:  # one schedule or the other (rule 4)
            del body["every_minutes"]
            body["every_seconds"] = self.every_seconds
        return body


@dataclass(frozen=True)
class MaintenanceWindow:
    """A weekly quiet time in UTC: from ``start`` (minutes after midnight) on each of
    ``days``, for ``minutes``."""

    days: tuple[str, ...]
    start: int
    minutes: int

    def body(self) -> dict[str, Any]:
        return {
            "days": list(self.days),
            "start": f"{self.start // 60:02d}:{self.start % 60:02d}",
            "minutes": self.minutes,
        }

    def active(self, now: int) -> bool:
        moment = datetime.fromtimestamp(now, UTC)
        minute_of_week = moment.weekday() * 1440 + moment.hour * 60 + moment.minute
        for day in self.days:
            opens = DAYS.index(day) * 1440 + self.start
            # A window may run past Sunday midnight into next week.
            if (minute_of_week - opens) % (7 * 1440) < self.minutes:
                return True
        return False


@dataclass(frozen=True)
class UnattendedAccess:
    """What a technician may do when nobody answers (rule 6)."""

    mode: str = "ask-deny"
    answer_seconds: int = 60
    countdown_seconds: int = 30
    capabilities: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "answer_seconds": self.answer_seconds,
            "countdown_seconds": self.countdown_seconds,
            "capabilities": list(self.capabilities),
        }


@dataclass(frozen=True)
class DevicePolicy:
    """A policy's content (only trust one from :func:`verify_policy` or :func:`default_policy`)."""

    organisation: str
    organisation_key: str
    number: int
    checks: tuple[CheckDefinition, ...]
    maintenance: tuple[MaintenanceWindow, ...] = ()
    unattended: UnattendedAccess = field(default_factory=UnattendedAccess)
    details_to_help_desk: bool = False
    #: The organisation's details key (public half, :mod:`protocol.sealed_details`):
    #: check details are sealed to it; without one they stay on the device.
    details_key: str | None = None
    failure_actions: bool = False
    repeat_comment_seconds: int = DEFAULT_REPEAT_COMMENT_SECONDS

    def body(self) -> dict[str, Any]:
        extra = {"details_key": self.details_key} if self.details_key else {}
        body: dict[str, Any] = {
            "format": POLICY_FORMAT,
            "organisation": self.organisation,
            "organisation_key": self.organisation_key,
            "number": self.number,
            "checks": [check.body() for check in self.checks],
            "maintenance": [window.body() for window in self.maintenance],
            "unattended": self.unattended.body(),
            "details_to_help_desk": self.details_to_help_desk,
            **extra,
        }
        if self.failure_actions:
            body["failure_actions"] = True
        if self.repeat_comment_seconds != DEFAULT_REPEAT_COMMENT_SECONDS:
            body["repeat_comment_seconds"] = self.repeat_comment_seconds
        return body

    def in_maintenance(self, now: int) -> bool:
        return any(window.active(now) for window in self.maintenance)

    def check(self, check_id: str) -> CheckDefinition | None:
        return next((c for c in self.checks if c.id == check_id), None)


# ---------------------------------------------------------------------------
# Parsing (the TOML source and the signed body share it)
# ---------------------------------------------------------------------------


def _fail(message: str) -> MalformedDocument:
    return MalformedDocument(message)


def _int(value: Any, where: str, low: int = 0, high: int = 10**9) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _fail(f"{where} must be a whole number from {low} to {high}.")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT or "\x00" in value:
        raise _fail(f"{where} must be a text of 1 to {MAX_TEXT} characters.")
    return value


def _parse_check(raw: Any, index: int) -> CheckDefinition:
    where = f"Check number {index + 1}"
    if not isinstance(raw, dict):
        raise _fail(f"{where} is not a table; write it as [[checks]] with id and kind.")
    check_id = raw.get("id")
    if not isinstance(check_id, str) or not _CHECK_ID.fullmatch(check_id):
        raise _fail(
            f"{where} needs an id of lowercase letters, digits, - or _ (for example 'disk-root')."
        )
    where = f"Check {check_id!r}"
    if check_id == POLICY_UPDATE_CHECK:
        raise _fail(
            f"{where}: the id {POLICY_UPDATE_CHECK!r} names the relay's alert of a refused "
            "policy update; give the check another id."
        )
    kind = raw.get("kind")
    if kind not in CHECK_KINDS:
        raise UnknownCheckKind(
            f"{where} is of kind {str(kind)[:40]!r}, which this agent does not know; "
            f"use one of {', '.join(CHECK_KINDS)} (or update the agent)."
        )
    schema = CHECK_KINDS[kind]
    unknown = sorted(set(raw) - _COMMON - set(schema))
    if unknown:
        raise _fail(
            f"{where} ({kind}) has unknown setting(s) {', '.join(unknown)}; "
            f"it accepts {', '.join(sorted(schema)) or 'no settings'}."
        )
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        raise _fail(f"{where}'s severity must be one of {', '.join(SEVERITIES)}.")
    action = raw.get("action")
    if action is not None and (not isinstance(action, str) or not _FIX_ID.fullmatch(action)):
        raise _fail(f"{where}'s action must be the id of a signed fix, such as 'disk-cleanup'.")
    params: dict[str, Any] = {}
    for name, parameter in schema.items():
        value = raw.get(name, parameter.default)
        if value is None:
            if parameter.required:
                raise _fail(f"{where} ({kind}) needs {name}.")
            continue
        setting = f"{where}'s {name}"
        if parameter.type is int:
            params[name] = _int(value, setting, parameter.low, parameter.high)
        elif parameter.type is list:
            if not isinstance(value, list) or not value or len(value) > 50:
                raise _fail(f"{setting} must be a list of 1 to 50 texts.")
            params[name] = [_str(item, setting) for item in value]
        else:
            params[name] = _str(value, setting)
    if kind == "disk_free" and not {"min_free_percent", "min_free_mb"} & set(params):
        raise _fail(f"{where} (disk_free) needs min_free_percent, min_free_mb or both.")
    if kind == "log_pattern":
        try:
            re.compile(params["pattern"])
        except re.error as exc:
            raise _fail(f"{where}'s pattern is not a valid regular expression ({exc}).") from None
    if kind == "clock_drift" and not params["source"].startswith(("https://", "http://")):
        raise _fail(f"{where}'s source must be a web address (the relay's, https://...).")
    every_seconds = raw.get("every_seconds")
    if every_seconds is not None:
        if "every_minutes" in raw:
            raise _fail(f"{where} has both every_minutes and every_seconds; keep one of them.")
        every_seconds = _int(
            every_seconds, f"{where}'s every_seconds", MIN_EVERY_SECONDS, WEEK_SECONDS
        )
    return CheckDefinition(
        id=check_id,
        kind=kind,
        every_minutes=_int(raw.get("every_minutes", 15), f"{where}'s every_minutes", 1, 10080),
        every_seconds=every_seconds,
        severity=severity,
        failures_before_alert=_int(
            raw.get("failures_before_alert", 3), f"{where}'s failures_before_alert", 1, 100
        ),
        action=action,
        params=params,
    )


def _parse_window(raw: Any, index: int) -> MaintenanceWindow:
    where = f"Maintenance window number {index + 1}"
    if not isinstance(raw, dict) or set(raw) - {"days", "start", "minutes"}:
        raise _fail(f"{where} must have days, start (HH:MM, UTC) and minutes, and nothing else.")
    days = raw.get("days")
    if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
        raise _fail(f"{where}'s days must be a list of {', '.join(DAYS)}.")
    start = raw.get("start")
    match = _CLOCK.fullmatch(start) if isinstance(start, str) else None
    if match is None:
        raise _fail(f"{where}'s start must be a time like '02:30' (UTC).")
    return MaintenanceWindow(
        days=tuple(dict.fromkeys(days)),
        start=int(match.group(1)) * 60 + int(match.group(2)),
        minutes=_int(raw.get("minutes"), f"{where}'s minutes", 1, 7 * 1440),
    )


def _parse_unattended(raw: Any) -> UnattendedAccess:
    if raw is None:
        return UnattendedAccess()
    allowed_keys = {"mode", "answer_seconds", "countdown_seconds", "capabilities"}
    if not isinstance(raw, dict) or set(raw) - allowed_keys:
        raise _fail(f"[unattended] accepts only {', '.join(sorted(allowed_keys))}.")
    mode = raw.get("mode", "ask-deny")
    if mode not in UNATTENDED_MODES:
        raise _fail(f"[unattended] mode must be one of {', '.join(UNATTENDED_MODES)}.")
    capabilities = raw.get("capabilities", [])
    if not isinstance(capabilities, list) or any(
        c not in UNATTENDED_CAPABILITIES for c in capabilities
    ):
        raise _fail(
            f"[unattended] capabilities must be a list of {', '.join(UNATTENDED_CAPABILITIES)}."
        )
    if mode == "allowed" and not capabilities:
        raise _fail("[unattended] mode 'allowed' needs the capabilities it allows, one by one.")
    return UnattendedAccess(
        mode=mode,
        answer_seconds=_int(raw.get("answer_seconds", 60), "[unattended] answer_seconds", 5, 3600),
        countdown_seconds=_int(
            raw.get("countdown_seconds", 30), "[unattended] countdown_seconds", 5, 3600
        ),
        capabilities=tuple(dict.fromkeys(capabilities)),
    )


def _parse_body(body: Mapping[str, Any], organisation: str, organisation_key: str) -> DevicePolicy:
    known = {
        "checks",
        "maintenance",
        "unattended",
        "details_to_help_desk",
        "details_key",
        "failure_actions",
        "number",
        "repeat_comment_seconds",
    }
    unknown = sorted(set(body) - known)
    if unknown:
        raise _fail(f"The policy has unknown setting(s) {', '.join(unknown)}.")
    checks = body.get("checks", [])
    if not isinstance(checks, list) or len(checks) > MAX_CHECKS:
        raise _fail(f"The policy's checks must be a list of at most {MAX_CHECKS} [[checks]].")
    parsed = tuple(_parse_check(raw, index) for index, raw in enumerate(checks))
    ids = [check.id for check in parsed]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise _fail(f"The policy names check {repeated[0]!r} twice; give each check its own id.")
    windows = body.get("maintenance", [])
    if not isinstance(windows, list):
        raise _fail("The policy's maintenance must be a list of [[maintenance]] windows.")
    details = body.get("details_to_help_desk", False)
    if not isinstance(details, bool):
        raise _fail("details_to_help_desk must be true or false.")
    details_key = body.get("details_key")
    if details_key is not None:
        public_from_text(details_key)  # a sentence if it is not one
    elif details:
        raise _fail(
            "details_to_help_desk needs the organisation's details_key, so that details "
            "travel sealed; make one with 'puente-tech policy details-key --out FILE'."
        )
    failure_actions = body.get("failure_actions", False)
    if not isinstance(failure_actions, bool):
        raise _fail("failure_actions must be true or false.")
    return DevicePolicy(
        organisation=organisation,
        organisation_key=organisation_key,
        number=_int(body.get("number", 1), "The policy's number", 1),
        checks=parsed,
        maintenance=tuple(_parse_window(raw, index) for index, raw in enumerate(windows)),
        unattended=_parse_unattended(body.get("unattended")),
        details_to_help_desk=details,
        details_key=details_key,
        failure_actions=failure_actions,
        repeat_comment_seconds=_int(
            body.get("repeat_comment_seconds", DEFAULT_REPEAT_COMMENT_SECONDS),
            "The policy's repeat_comment_seconds",
            MIN_REPEAT_COMMENT_SECONDS,
            WEEK_SECONDS,
        ),
    )


def policy_from_toml(text: str, organisation: str, organisation_key: str) -> DevicePolicy:
    """A policy from its TOML source, checked (MalformedDocument / UnknownCheckKind)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(f"The policy file is not valid TOML ({exc}).") from None
    return _parse_body(raw, organisation, organisation_key)


# ---------------------------------------------------------------------------
# Updates (rule 11)
# ---------------------------------------------------------------------------


def _automatic_fixes(policy: DevicePolicy) -> set[str]:
    if not policy.failure_actions:
        return set()
    return {check.action for check in policy.checks if check.action is not None}


def widenings(agreed: DevicePolicy, offered: DevicePolicy) -> list[str]:
    """What ``offered`` allows beyond the ``agreed`` policy (rule 11), each as a phrase
    for a sentence ("it would ..."); empty when it is narrower or equal."""
    found: list[str] = []
    before, after = agreed.unattended, offered.unattended
    rank = UNATTENDED_MODES.index
    if rank(after.mode) > rank(before.mode):
        found.append(f"let technicians in unattended as {after.mode!r}, not {before.mode!r}")
    elif (
        after.mode == before.mode == "ask-allow"
        and after.countdown_seconds < before.countdown_seconds
    ):
        found.append(
            f"let technicians in after a countdown of {after.countdown_seconds} s, "
            f"not {before.countdown_seconds} s"
        )
    added = [c for c in after.capabilities if c not in before.capabilities]
    if added and after.mode != "never":
        found.append(f"allow {', '.join(added)} in unattended sessions")
    if offered.failure_actions and not agreed.failure_actions:
        found.append("run fixes by themselves when a check fails")
    new_fixes = sorted(_automatic_fixes(offered) - _automatic_fixes(agreed))
    if new_fixes and agreed.failure_actions:
        found.append(f"run other fixes by themselves ({', '.join(new_fixes)})")
    if offered.details_key and not agreed.details_key:
        found.append("send check details off this computer (sealed to the organisation)")
    if offered.details_to_help_desk and not agreed.details_to_help_desk:
        found.append("let the help desk put check details on its tickets")
    return found


# ---------------------------------------------------------------------------
# The default policy and signatures
# ---------------------------------------------------------------------------


def standard_checks() -> tuple[CheckDefinition, ...]:
    """The checks of a policy that names none: the system disk and memory, and a
    pending reboot (nothing that needs a path, a service name or a time source)."""
    return (
        _parse_check(
            {"id": "disk-system", "kind": "disk_free", "path": "/", "min_free_percent": 10}, 0
        ),
        _parse_check({"id": "memory", "kind": "memory_pressure"}, 1),
        _parse_check({"id": "reboot", "kind": "pending_reboot", "severity": "info"}, 2),
    )


def default_policy(organisation: str = "", organisation_key: str = "") -> DevicePolicy:
    """Ask the signed-in user and deny after 60 s; the standard checks; no details."""
    return DevicePolicy(organisation, organisation_key, 1, standard_checks())


def sign_policy(policy: DevicePolicy, secret: OrganisationSecret) -> bytes:
    """The signed policy document (JSON bytes), issued by ``secret``'s organisation."""
    body = policy.body()
    body["organisation"] = secret.organisation
    body["organisation_key"] = secret.key_id
    return sign_document("policy", POLICY_LABEL, body, secret.private_key)


def verify_policy(data: bytes, organisation_key: Ed25519PublicKey) -> DevicePolicy:
    """The policy in ``data`` if the pinned ``organisation_key`` signed it (rule 2)."""
    what = "device policy"
    body, signature = _split_signed(data, "policy", what)
    if body.get("format") != POLICY_FORMAT:
        raise _fail("This is not a Puente device policy (made by 'puente-tech policy sign').")
    signer = body.get("organisation_key")
    trusted = key_id(organisation_key)
    if signer != trusted:
        shown = short_key_id(signer) if isinstance(signer, str) else "none"
        raise ForeignSigner(
            f"This device policy was signed by another organisation's key ({shown}), not by "
            f"the one this computer trusts ({short_key_id(trusted)}); ask your help desk for "
            "its own signed policy."
        )
    if not verify_signature(organisation_key, signature, POLICY_LABEL + canonical_json(body)):
        raise SignatureMismatch(
            "This device policy does not carry a valid signature of this computer's "
            "organisation; it was altered after signing. Sign it again with "
            "'puente-tech policy sign'."
        )
    return _policy_of(body)


def read_policy_unverified(data: bytes) -> DevicePolicy:
    """A signed policy's content WITHOUT checking its signature.

    For the relay only, which holds no organisation key (by design) and reads a
    device's policy to know when to open alerts (thresholds, maintenance windows);
    a device decides nothing from a policy that did not pass :func:`verify_policy`.
    """
    body, _ = _split_signed(data, "policy", "device policy")
    if body.get("format") != POLICY_FORMAT:
        raise _fail("This is not a Puente device policy (made by 'puente-tech policy sign').")
    return _policy_of(body)


def _policy_of(body: Mapping[str, Any]) -> DevicePolicy:
    organisation = _str(body.get("organisation"), "The policy's organisation")
    signer = body.get("organisation_key")
    if not isinstance(signer, str) or len(signer) != 64:
        raise _fail("The policy's organisation_key must be a key id (64 hex digits).")
    rest = {
        k: v for k, v in body.items() if k not in ("format", "organisation", "organisation_key")
    }
    return _parse_body(rest, organisation, signer)
