"""Fixes: the manifest, the signed bundle, and the checks an agent makes before a fix runs.

A fix is a directory with ``manifest.toml`` and a script (optionally an undo script).
``puente-tech fix sign`` turns it into one *bundle* file: JSON holding the exact
manifest and script bytes (base64) and a statement signed by the organisation key.

Rules (everything that decides whether a fix may run lives here):

1. The statement names the SHA-256 of the exact manifest, script and undo bytes, the
   fix id and version, the organisation and its key id, when it was signed and when
   it expires. The signature covers ``FIX_LABEL ‖ canonical(statement)``. Changing one
   byte of the manifest or a script after signing breaks its hash; changing the
   statement breaks the signature.
2. :func:`verify_bundle` refuses, before anything runs, in this order: malformed,
   unsigned, signed by another organisation, bad signature, changed manifest or script,
   expired (or signed in the future), made for another platform. Each refusal is a
   :class:`protocol.errors.TrustError` whose message is shown to both sides.
3. Manifests are strict: unknown keys, wrong types and unknown interpreters are
   refused (deny by default). Parameters are typed; :func:`resolve_parameters` turns
   the technician's ``name=value`` pairs into checked strings, which the agent passes
   as separate arguments and environment variables, never through a shell.
4. Pure: no files, clocks or processes here. ``now`` and ``platform`` are inputs.

Manifest (TOML)::

    id = "disk-cleanup"             # a-z, 0-9 and dashes
    version = "1.0.0"
    title = "Free disk space"       # shown to the customer
    description = "..."             # what it does, in the customer's words
    platforms = ["linux", "macos"]  # linux | macos | windows
    interpreter = "sh"              # sh | bash | powershell | python
    script = "fix.sh"               # file next to the manifest
    timeout = 120                   # seconds, 1..3600
    needs_admin = false
    risk = "low"                    # low | medium | high
    dry_run = true                  # optional: PUENTE_DRY_RUN=1 makes it only report
    undo = "undo.sh"                # optional undo script

    [parameters.days]               # optional typed parameters
    type = "integer"                # string | integer | boolean | choice
    description = "Only files older than this many days"
    default = 7
    min = 0
    max = 3650
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import (
    Expired,
    FixRequestError,
    ForeignSigner,
    MalformedDocument,
    NotSigned,
    NotYetValid,
    RolledBack,
    SignatureMismatch,
    WrongPlatform,
)
from .identity import (
    OrganisationSecret,
    b64decode,
    b64encode,
    canonical_json,
    iso_date,
    key_id,
    load_json_document,
    short_key_id,
    verify_signature,
)

FIX_LABEL = b"puente/1 fix\n"
BUNDLE_FORMAT = "puente-fix-bundle/1"
STATEMENT_FORMAT = "puente-fix-statement/1"

PLATFORMS = ("linux", "macos", "windows")
INTERPRETERS = ("sh", "bash", "powershell", "python")
RISKS = ("low", "medium", "high")
PARAMETER_TYPES = ("string", "integer", "boolean", "choice")

#: Largest bundle accepted, and largest script inside one.
MAX_BUNDLE_SIZE = 1024 * 1024
MAX_SCRIPT_SIZE = 512 * 1024
MAX_MANIFEST_SIZE = 32 * 1024
MAX_TIMEOUT = 3600
MAX_PARAMETERS = 16
MAX_VALUE_LENGTH = 4096
#: How far in the future a signing time may be (clocks differ a little).
CLOCK_TOLERANCE = 300

_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,63}")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]{0,31}")
_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
_PARAMETER = re.compile(r"[a-z][a-z0-9_]{0,31}")
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")

_MANIFEST_KEYS = {
    "id",
    "version",
    "title",
    "description",
    "platforms",
    "interpreter",
    "script",
    "timeout",
    "needs_admin",
    "risk",
    "dry_run",
    "undo",
    "parameters",
}
_PARAMETER_KEYS = {"type", "description", "default", "min", "max", "choices", "max_length"}


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    description: str
    default: str | None  # as the string the script receives; None = required
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    max_length: int = 256

    def describe(self) -> str:
        """``days (integer 0..3650, default 7): Only files older than …``"""
        kind = self.type
        if self.type == "integer" and (self.minimum is not None or self.maximum is not None):
            low = "" if self.minimum is None else str(self.minimum)
            high = "" if self.maximum is None else str(self.maximum)
            kind = f"integer {low}..{high}"
        elif self.type == "choice":
            kind = "one of " + "|".join(self.choices)
        default = "required" if self.default is None else f"default {self.default}"
        return f"{self.name} ({kind}, {default}): {self.description}"


@dataclass(frozen=True)
class Manifest:
    id: str
    version: str
    title: str
    description: str
    platforms: tuple[str, ...]
    interpreter: str
    script: str
    timeout: int
    needs_admin: bool
    risk: str
    dry_run: bool = False
    undo: str | None = None
    parameters: tuple[Parameter, ...] = field(default=())


def _manifest_error(message: str) -> MalformedDocument:
    return MalformedDocument(f"Invalid fix manifest: {message}")


def _is_printable_text(text: str, allow_newlines: bool = False) -> bool:
    """Validator: whether a manifest field is printable (it changes nothing; what is
    shown goes through protocol.safe_text.safe_text)."""
    if allow_newlines:
        text = text.replace("\n", "")
    return text.isprintable()


def _string(table: Mapping[str, Any], key: str, limit: int, *, newlines: bool = False) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise _manifest_error(f"{key} must be text of 1 to {limit} characters.")
    if not _is_printable_text(value, newlines):
        raise _manifest_error(f"{key} must not contain control characters.")
    return value.strip()


def _matching(table: Mapping[str, Any], key: str, pattern: re.Pattern[str], example: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _manifest_error(f"{key} must look like {example!r}.")
    return value


def _bool(table: Mapping[str, Any], key: str, default: bool | None = None) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise _manifest_error(f"{key} must be true or false.")
    return value


def _parameter(name: str, table: Any) -> Parameter:
    if not _PARAMETER.fullmatch(name):
        raise _manifest_error(f"parameter name {name!r} must be lowercase letters, digits or _.")
    if not isinstance(table, dict):
        raise _manifest_error(f"parameters.{name} must be a table.")
    unknown = sorted(set(table) - _PARAMETER_KEYS)
    if unknown:
        raise _manifest_error(f"parameters.{name} has an unknown key {unknown[0]!r}.")
    kind = table.get("type")
    if kind not in PARAMETER_TYPES:
        raise _manifest_error(
            f"parameters.{name}.type must be one of {', '.join(PARAMETER_TYPES)}."
        )
    description = _string(table, "description", 300)
    minimum, maximum = table.get("min"), table.get("max")
    for bound in (minimum, maximum):
        if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool)):
            raise _manifest_error(f"parameters.{name} min and max must be integers.")
    choices: tuple[str, ...] = ()
    if kind == "choice":
        raw = table.get("choices")
        if (
            not isinstance(raw, list)
            or not raw
            or not all(isinstance(c, str) and c and c.isprintable() for c in raw)
        ):
            raise _manifest_error(f"parameters.{name}.choices must be a list of words.")
        choices = tuple(raw)
    max_length = table.get("max_length", 256)
    if not isinstance(max_length, int) or not 1 <= max_length <= MAX_VALUE_LENGTH:
        raise _manifest_error(f"parameters.{name}.max_length must be 1..{MAX_VALUE_LENGTH}.")
    parameter = Parameter(name, kind, description, None, minimum, maximum, choices, max_length)
    if "default" in table:
        default = table["default"]
        if isinstance(default, bool):
            default = "true" if default else "false"
        elif isinstance(default, int):
            default = str(default)
        if not isinstance(default, str):
            raise _manifest_error(f"parameters.{name}.default has the wrong type.")
        try:
            default = check_value(parameter, default)
        except FixRequestError as exc:
            raise _manifest_error(f"parameters.{name}.default: {exc}") from None
        parameter = Parameter(
            name, kind, description, default, minimum, maximum, choices, max_length
        )
    return parameter


def parse_manifest(data: bytes) -> Manifest:
    """Parse and check ``manifest.toml``; raise :class:`MalformedDocument` saying what is wrong."""
    if len(data) > MAX_MANIFEST_SIZE:
        raise _manifest_error(f"it is larger than {MAX_MANIFEST_SIZE} bytes.")
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise _manifest_error("it is not UTF-8 text.") from None
    except tomllib.TOMLDecodeError as exc:
        raise _manifest_error(f"it is not valid TOML ({exc}).") from None
    unknown = sorted(set(table) - _MANIFEST_KEYS)
    if unknown:
        raise _manifest_error(f"unknown key {unknown[0]!r}.")
    platforms = table.get("platforms")
    if (
        not isinstance(platforms, list)
        or not platforms
        or not all(p in PLATFORMS for p in platforms)
    ):
        raise _manifest_error(f"platforms must be a list drawn from {', '.join(PLATFORMS)}.")
    interpreter = table.get("interpreter")
    if interpreter not in INTERPRETERS:
        raise _manifest_error(f"interpreter must be one of {', '.join(INTERPRETERS)}.")
    timeout = table.get("timeout")
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= MAX_TIMEOUT:
        raise _manifest_error(f"timeout must be a number of seconds from 1 to {MAX_TIMEOUT}.")
    risk = table.get("risk")
    if risk not in RISKS:
        raise _manifest_error(f"risk must be one of {', '.join(RISKS)}.")
    raw_parameters = table.get("parameters", {})
    if not isinstance(raw_parameters, dict) or len(raw_parameters) > MAX_PARAMETERS:
        raise _manifest_error(f"parameters must be a table of at most {MAX_PARAMETERS} entries.")
    undo = table.get("undo")
    if undo is not None:
        undo = _matching(table, "undo", _FILE_NAME, "undo.sh")
    script = _matching(table, "script", _FILE_NAME, "fix.sh")
    if script == undo or "manifest.toml" in (script, undo):
        raise _manifest_error("script and undo must be two different files beside the manifest.")
    return Manifest(
        id=_matching(table, "id", _ID, "disk-cleanup"),
        version=_matching(table, "version", _VERSION, "1.0.0"),
        title=_string(table, "title", 100),
        description=_string(table, "description", 2000, newlines=True),
        platforms=tuple(dict.fromkeys(platforms)),
        interpreter=interpreter,
        script=script,
        timeout=timeout,
        needs_admin=_bool(table, "needs_admin"),
        risk=risk,
        dry_run=_bool(table, "dry_run", False),
        undo=undo,
        parameters=tuple(_parameter(n, t) for n, t in raw_parameters.items()),
    )


def check_value(parameter: Parameter, value: str) -> str:
    """The canonical string for ``value``, or :class:`FixRequestError` saying what is allowed."""
    name = parameter.name
    if "\x00" in value:
        raise FixRequestError(f"The value of {name} contains a NUL character, which is refused.")
    if parameter.type == "integer":
        if not _INTEGER.fullmatch(value.strip()):
            raise FixRequestError(f"{name} must be a whole number, not {value[:40]!r}.")
        number = int(value)
        if parameter.minimum is not None and number < parameter.minimum:
            raise FixRequestError(f"{name} must be at least {parameter.minimum}.")
        if parameter.maximum is not None and number > parameter.maximum:
            raise FixRequestError(f"{name} must be at most {parameter.maximum}.")
        return str(number)
    if parameter.type == "boolean":
        word = value.strip().lower()
        if word in _TRUE:
            return "true"
        if word in _FALSE:
            return "false"
        raise FixRequestError(f"{name} must be true or false, not {value[:40]!r}.")
    if parameter.type == "choice":
        if value not in parameter.choices:
            raise FixRequestError(f"{name} must be one of {', '.join(parameter.choices)}.")
        return value
    if len(value) > parameter.max_length:
        raise FixRequestError(f"{name} is longer than {parameter.max_length} characters.")
    if not value.isprintable():
        raise FixRequestError(f"{name} must not contain control characters.")
    return value


def resolve_parameters(manifest: Manifest, given: Mapping[str, Any]) -> dict[str, str]:
    """Every parameter's checked value, in manifest order (defaults filled in).

    Raises :class:`FixRequestError` for an unknown name, a missing required value or a
    value its type refuses.
    """
    known = {p.name: p for p in manifest.parameters}
    for name, value in given.items():
        if name not in known:
            accepted = ", ".join(known) or "no parameters"
            raise FixRequestError(
                f"The fix {manifest.id} has no parameter {name!r}; it takes {accepted}."
            )
        if not isinstance(value, str):
            raise FixRequestError(f"The value of {name} must be text.")
    values: dict[str, str] = {}
    for parameter in manifest.parameters:
        if parameter.name in given:
            values[parameter.name] = check_value(parameter, given[parameter.name])
        elif parameter.default is not None:
            values[parameter.name] = parameter.default
        else:
            raise FixRequestError(
                f"The fix {manifest.id} needs a value for {parameter.name} "
                f"({parameter.describe()}); add {parameter.name}=VALUE."
            )
    return values


# ---------------------------------------------------------------------------
# Bundles
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A decoded bundle, NOT yet verified (display and library listing only)."""

    manifest_bytes: bytes
    script: bytes
    undo: bytes | None
    manifest: Manifest
    statement: dict[str, Any] | None
    signature: bytes | None

    @property
    def signed(self) -> bool:
        return self.statement is not None

    @property
    def organisation(self) -> str:
        return str((self.statement or {}).get("organisation", ""))

    @property
    def expires_at(self) -> int | None:
        value = (self.statement or {}).get("expires_at")
        return value if isinstance(value, int) else None


@dataclass(frozen=True)
class VerifiedFix:
    """A fix whose every byte the pinned organisation key vouches for."""

    manifest: Manifest
    script: bytes
    undo: bytes | None
    organisation: str
    organisation_key: str
    signed_at: int
    expires_at: int
    script_sha256: str


def _sha256(data: bytes | None) -> str:
    return hashlib.sha256(data).hexdigest() if data is not None else ""


def make_bundle(
    manifest_bytes: bytes,
    script: bytes,
    undo: bytes | None = None,
    *,
    signer: OrganisationSecret | None = None,
    signed_at: int = 0,
    expires_at: int = 0,
) -> bytes:
    """A bundle of the exact bytes given, signed by ``signer`` (unsigned when None)."""
    manifest = parse_manifest(manifest_bytes)
    if (manifest.undo is None) != (undo is None):
        raise _manifest_error("undo names a script that was not given (or the other way round).")
    if len(script) > MAX_SCRIPT_SIZE or len(undo or b"") > MAX_SCRIPT_SIZE:
        raise _manifest_error(f"a script is larger than {MAX_SCRIPT_SIZE} bytes.")
    document: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "manifest": b64encode(manifest_bytes),
        "script": b64encode(script),
    }
    if undo is not None:
        document["undo"] = b64encode(undo)
    if signer is not None:
        if expires_at <= signed_at:
            raise ValueError("A fix must be valid for a positive length of time.")
        statement = {
            "format": STATEMENT_FORMAT,
            "organisation": signer.organisation,
            "organisation_key": signer.key_id,
            "fix_id": manifest.id,
            "version": manifest.version,
            "manifest_sha256": _sha256(manifest_bytes),
            "script_sha256": _sha256(script),
            "undo_sha256": _sha256(undo),
            "signed_at": signed_at,
            "expires_at": expires_at,
        }
        document["statement"] = statement
        document["signature"] = b64encode(
            signer.private_key.sign(FIX_LABEL + canonical_json(statement))
        )
    return (json.dumps(document, indent=1) + "\n").encode("utf-8")


def _decode(data: bytes) -> tuple[bytes, bytes, bytes | None, dict[str, Any] | None, bytes | None]:
    """The raw parts of a bundle: manifest, script, undo, statement, signature."""
    if len(data) > MAX_BUNDLE_SIZE:
        raise MalformedDocument(f"This fix bundle is larger than {MAX_BUNDLE_SIZE} bytes.")
    document = load_json_document(data, "fix bundle", max_size=MAX_BUNDLE_SIZE)
    if document.get("format") != BUNDLE_FORMAT:
        raise MalformedDocument("This is not a Puente fix bundle (made by 'puente-tech fix sign').")
    allowed = {"format", "manifest", "script", "undo", "statement", "signature"}
    if set(document) - allowed:
        raise MalformedDocument("This fix bundle has unknown fields; it is refused.")
    manifest_bytes = b64decode(document.get("manifest"), "The bundle's manifest")
    script = b64decode(document.get("script"), "The bundle's script")
    undo = b64decode(document["undo"], "The bundle's undo script") if "undo" in document else None
    statement = document.get("statement")
    signature = None
    if statement is not None or "signature" in document:
        if not isinstance(statement, dict):
            raise MalformedDocument("The fix bundle's signed statement is malformed.")
        signature = b64decode(document.get("signature"), "The bundle's signature")
        if len(signature) != 64:
            raise MalformedDocument("The fix bundle's signature is not an Ed25519 signature.")
    return manifest_bytes, script, undo, statement, signature


def read_bundle(data: bytes) -> Bundle:
    """Decode a bundle without verifying it. Raises :class:`MalformedDocument`."""
    manifest_bytes, script, undo, statement, signature = _decode(data)
    return Bundle(
        manifest_bytes, script, undo, parse_manifest(manifest_bytes), statement, signature
    )


def verify_bundle(
    data: bytes, organisation_key: Ed25519PublicKey, now: int, platform: str
) -> VerifiedFix:
    """The fix in ``data`` if the pinned ``organisation_key`` vouches for every byte of it.

    Refuses (raises) before anything could run: :class:`MalformedDocument`,
    :class:`NotSigned`, :class:`ForeignSigner`, :class:`SignatureMismatch`,
    :class:`Expired`, :class:`NotYetValid`, :class:`WrongPlatform`.
    """
    # Integrity first: nothing of the manifest is parsed until its bytes are vouched for.
    try:
        manifest_bytes, script, undo, statement, signature = _decode(data)
    except MalformedDocument as exc:
        raise MalformedDocument(f"The fix is not a valid bundle: {exc}") from None
    claimed_id = (statement or {}).get("fix_id")
    title = f"The fix {claimed_id!r}" if isinstance(claimed_id, str) else "The fix"
    if statement is None or signature is None:
        try:  # only to name it in the refusal; an unsigned manifest decides nothing
            title = f"The fix {parse_manifest(manifest_bytes).id!r}"
        except MalformedDocument:
            pass
        raise NotSigned(
            f"{title} is not signed. This computer only runs fixes signed by its "
            "organisation; sign it with 'puente-tech fix sign'."
        )
    trusted = key_id(organisation_key)
    signer = statement.get("organisation_key")
    if signer != trusted:
        shown = short_key_id(signer) if isinstance(signer, str) else "unknown"
        raise ForeignSigner(
            f"{title} was signed by another organisation ({str(statement.get('organisation'))[:100]}, "
            f"key {shown}), not by the one this computer trusts (key {short_key_id(trusted)})."
        )
    try:
        signed = canonical_json(statement)
    except MalformedDocument:
        raise SignatureMismatch(f"{title} has a malformed signed statement.") from None
    if statement.get("format") != STATEMENT_FORMAT or not verify_signature(
        organisation_key, signature, FIX_LABEL + signed
    ):
        raise SignatureMismatch(
            f"{title} does not carry a valid signature of this computer's organisation; "
            "it was altered after signing, or forged."
        )
    if statement.get("manifest_sha256") != _sha256(manifest_bytes):
        raise SignatureMismatch(f"{title} was changed after it was signed (its manifest differs).")
    if statement.get("script_sha256") != _sha256(script):
        raise SignatureMismatch(f"{title} was changed after it was signed (its script differs).")
    if statement.get("undo_sha256") != _sha256(undo):
        raise SignatureMismatch(
            f"{title} was changed after it was signed (its undo script differs)."
        )
    try:
        manifest = parse_manifest(manifest_bytes)
    except MalformedDocument as exc:
        raise MalformedDocument(f"{title} was signed with an invalid manifest: {exc}") from None
    if statement.get("fix_id") != manifest.id or statement.get("version") != manifest.version:
        raise SignatureMismatch(f"{title}'s signed statement names another fix.")
    signed_at, expires_at = statement.get("signed_at"), statement.get("expires_at")
    if not isinstance(signed_at, int) or not isinstance(expires_at, int):
        raise SignatureMismatch(f"{title}'s signed statement has no validity period.")
    if now >= expires_at:
        raise Expired(
            f"{title} expired on {iso_date(expires_at)}; ask your organisation to sign it again."
        )
    if signed_at > now + CLOCK_TOLERANCE:
        raise NotYetValid(
            f"{title} was signed in the future ({iso_date(signed_at)}); check this computer's clock."
        )
    if platform not in manifest.platforms:
        raise WrongPlatform(
            f"{title} is made for {', '.join(manifest.platforms)}, not for {platform}."
        )
    organisation = statement.get("organisation")
    return VerifiedFix(
        manifest=manifest,
        script=script,
        undo=undo,
        organisation=organisation if isinstance(organisation, str) else "",
        organisation_key=trusted,
        signed_at=signed_at,
        expires_at=expires_at,
        script_sha256=_sha256(script),
    )


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """An ordering of fix versions: parts split at ``.``, ``-`` and ``+``, numbers as numbers.

    ``1.10.0`` is newer than ``1.9.2``; a number part sorts before a text part in the
    same place (``1.0.0`` before ``1.0.beta``); a version with more parts after an
    equal start is newer (``1.0`` before ``1.0.1``).
    """
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"[.+-]", version)
    )


def check_not_older(fix: VerifiedFix, newest_seen: str | None) -> None:
    """Refuse (:class:`RolledBack`) ``fix`` when a newer version of it was already seen.

    ``newest_seen`` is the highest version of ``fix``'s id this agent has verified
    before (its own record; see docs/TRUST.md), or None.
    """
    manifest = fix.manifest
    if newest_seen is not None and version_key(manifest.version) < version_key(newest_seen):
        raise RolledBack(
            f"The fix {manifest.id!r} is version {manifest.version}, older than version "
            f"{newest_seen} that this computer has already seen signed by its organisation; "
            "older versions are refused (they may have a fixed flaw). Ask your technician "
            "for the newest version."
        )


def digest(data: bytes) -> str:
    """SHA-256 of exact bytes, hex (how the agent re-checks the script it wrote to disk)."""
    return _sha256(data)


__all__ = [
    "BUNDLE_FORMAT",
    "Bundle",
    "Manifest",
    "Parameter",
    "VerifiedFix",
    "check_not_older",
    "check_value",
    "digest",
    "make_bundle",
    "parse_manifest",
    "read_bundle",
    "resolve_parameters",
    "verify_bundle",
    "version_key",
]
