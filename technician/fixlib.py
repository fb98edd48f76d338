"""Fix directories, signed bundles and the technician's fix library.

A fix *directory* holds ``manifest.toml`` and the script(s) it names (see
:mod:`protocol.fixbundle`). ``puente-tech fix sign`` turns one into a signed
*bundle* file (``ID-VERSION-PLATFORMS.puentefix`` when ``--out`` is a folder). The
*library* is a folder of bundles (``--fixes DIR`` or ``PUENTE_FIXES``); the session
console's ``fix ID`` picks the newest bundle with that id made for the customer's
platform. Nothing here trusts a bundle: the agent verifies it; ``fix list
--org-key`` shows whether it would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol.errors import TrustError
from protocol.fixbundle import Bundle, make_bundle, parse_manifest, read_bundle, verify_bundle
from protocol.identity import OrganisationSecret

from .errors import (
    FixLibraryError as FixLibraryError,  # raised here; the tree is in technician.errors
)

BUNDLE_SUFFIX = ".puentefix"
MANIFEST_NAME = "manifest.toml"


def read_fix_directory(directory: Path) -> tuple[bytes, bytes, bytes | None]:
    """The exact manifest, script and undo bytes of a fix directory."""
    manifest_path = directory / MANIFEST_NAME
    try:
        manifest_bytes = manifest_path.read_bytes()
    except OSError as exc:
        raise FixLibraryError(
            f"Cannot read {manifest_path} ({exc.strerror or exc}); a fix directory needs a "
            "manifest.toml (see docs/FIXES.md)."
        ) from None
    try:
        manifest = parse_manifest(manifest_bytes)
    except TrustError as exc:
        raise FixLibraryError(f"{manifest_path}: {exc}") from None

    def read(name: str) -> bytes:
        path = directory / name
        try:
            return path.read_bytes()
        except OSError as exc:
            raise FixLibraryError(
                f"Cannot read {path} ({exc.strerror or exc}), which the manifest names."
            ) from None

    return manifest_bytes, read(manifest.script), read(manifest.undo) if manifest.undo else None


def sign_fix_directory(
    directory: Path, signer: OrganisationSecret, valid_days: int, now: int
) -> bytes:
    """A signed bundle of the directory's exact bytes, valid for ``valid_days``."""
    if valid_days < 1:
        raise FixLibraryError("--valid-days must be at least 1.")
    manifest_bytes, script, undo = read_fix_directory(directory)
    try:
        return make_bundle(
            manifest_bytes,
            script,
            undo,
            signer=signer,
            signed_at=now,
            expires_at=now + valid_days * 86400,
        )
    except (TrustError, ValueError) as exc:
        raise FixLibraryError(f"{directory}: {exc}") from None


def unsigned_bundle(directory: Path) -> bytes:
    """A bundle of a fix directory with no signature (agents with a pinned key refuse it)."""
    manifest_bytes, script, undo = read_fix_directory(directory)
    try:
        return make_bundle(manifest_bytes, script, undo)
    except TrustError as exc:
        raise FixLibraryError(f"{directory}: {exc}") from None


def bundle_file_name(bundle: Bundle) -> str:
    manifest = bundle.manifest
    return f"{manifest.id}-{manifest.version}-{'+'.join(manifest.platforms)}{BUNDLE_SUFFIX}"


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.+-]", version)
    )


@dataclass(frozen=True)
class LibraryEntry:
    path: Path
    bundle: Bundle | None
    error: str = ""

    def check(self, organisation_key: Ed25519PublicKey, now: int) -> str:
        """ "" when the pinned key would accept it on its first platform, else why not."""
        if self.bundle is None:
            return self.error
        try:
            verify_bundle(
                self.path.read_bytes(), organisation_key, now, self.bundle.manifest.platforms[0]
            )
        except (TrustError, OSError) as exc:
            return str(exc)
        return ""


class FixLibrary:
    """The bundles in one folder (not recursive), read fresh on every call."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def entries(self) -> list[LibraryEntry]:
        if not self.directory.is_dir():
            raise FixLibraryError(
                f"The fix library {self.directory} is not a folder; check --fixes or PUENTE_FIXES."
            )
        entries = []
        for path in sorted(self.directory.glob(f"*{BUNDLE_SUFFIX}")):
            try:
                entries.append(LibraryEntry(path, read_bundle(path.read_bytes())))
            except (TrustError, OSError) as exc:
                entries.append(LibraryEntry(path, None, str(exc)))
        return entries

    def find(self, fix_id: str, platform: str | None) -> LibraryEntry:
        """The newest bundle with ``fix_id`` for ``platform`` (any platform when None)."""
        same_id = [e for e in self.entries() if e.bundle and e.bundle.manifest.id == fix_id]
        if not same_id:
            known = sorted({e.bundle.manifest.id for e in self.entries() if e.bundle})
            raise FixLibraryError(
                f"No fix {fix_id!r} in the library {self.directory}"
                + (f"; it has: {', '.join(known)}" if known else "; it is empty")
                + " (see 'puente-tech fix list')."
            )
        fitting = [
            e
            for e in same_id
            if e.bundle and (platform is None or platform in e.bundle.manifest.platforms)
        ]
        if not fitting:
            raise FixLibraryError(
                f"The library has {fix_id!r} only for "
                + ", ".join(
                    sorted({p for e in same_id if e.bundle for p in e.bundle.manifest.platforms})
                )
                + f", not for the customer's {platform}."
            )
        if platform is None and len({e.bundle.manifest.platforms for e in fitting if e.bundle}) > 1:
            raise FixLibraryError(
                f"The library has several platform variants of {fix_id!r} and the customer's "
                "platform is unknown; pass the bundle's path instead."
            )
        return max(
            fitting, key=lambda e: _version_key(e.bundle.manifest.version if e.bundle else "")
        )


def load_fix_target(
    target: str, library: FixLibrary | None, platform: str | None
) -> tuple[bytes, Bundle | None]:
    """The bundle bytes for a console ``fix`` argument: a bundle file, a fix directory
    (sent unsigned; a pinned agent refuses it) or an id in the library."""
    path = Path(target)
    if path.is_dir():
        data = unsigned_bundle(path)
        return data, read_bundle(data)
    if path.is_file():
        data = path.read_bytes()
        try:
            return data, read_bundle(data)
        except TrustError:
            return data, None  # the agent will refuse it and say why
    if library is None:
        raise FixLibraryError(
            f"{target!r} is not a bundle file, and no fix library is set; pass --fixes DIR "
            "(or set PUENTE_FIXES) to use fix ids."
        )
    entry = library.find(target, platform)
    return entry.path.read_bytes(), entry.bundle
