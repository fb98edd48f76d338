"""``puente-tech org ...``, ``fix sign|list`` and ``triage``: the organisation's tools.

These commands need no session. ``org publish`` talks to the relay (``--relay`` and
``--token``); the others work offline. Every command that opens the organisation key
reads its passphrase from ``PUENTE_ORG_PASSPHRASE`` when set, else from the terminal.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.agent_release import RELEASE_SYSTEMS, sign_agent_release
from protocol.categories import Category, check_categories, issue_category_list
from protocol.errors import TrustError
from protocol.fixbundle import read_bundle
from protocol.identity import (
    OrganisationSecret,
    check_organisation_name,
    encrypt_organisation_key,
    iso_date,
    issue_certificate,
    issue_revocation_list,
    key_id,
    load_private_key,
    load_public_key,
    parse_certificate,
    private_key_pem,
    public_key_pem,
    short_key_id,
    verify_revocation_list,
)
from protocol.rulebook import check_source, issue_rule_book
from protocol.safe_text import safe_text

from .credentials import CredentialsError, open_organisation_key, read_passphrase, write_new_file
from .fixlib import FixLibrary, FixLibraryError, bundle_file_name, sign_fix_directory
from .output import Output

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

ORG_EPILOG = """\
examples:
  puente-tech org init --out acme-org --name "Acme IT Help Desk"
  puente-tech org keygen --out ana.key                    # on Ana's computer
  puente-tech org certify "Ana Lopez" --org-key acme-org/org.key \\
      --technician-key ana.pub --valid-days 90 --out ana.cert
  puente-tech org revoke 3f2a... --org-key acme-org/org.key --list acme-org/revoked.json
  puente-tech org publish --list acme-org/revoked.json    # needs --relay and --token

Agents started with --org-key acme-org/org.pub accept only technicians certified by
this key and fixes signed by it. Keep org.key offline; the passphrase comes from
PUENTE_ORG_PASSPHRASE or the terminal.
"""


def add_commands(commands: Any) -> None:
    """Add ``org``, ``fix`` and ``triage`` to the ``puente-tech`` subcommands."""
    org = commands.add_parser(
        "org",
        help="organisation keys and technician certificates",
        description="Make the organisation key, technician keys and certificates, and "
        "revocation lists.",
        epilog=ORG_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    org_commands = org.add_subparsers(dest="org_command", metavar="ACTION", required=True)
    init = org_commands.add_parser(
        "init",
        help="make the organisation key pair",
        description="Write DIR/org.key (the private key, encrypted with a passphrase, mode "
        "0600) and DIR/org.pub (the public key agents pin).",
    )
    init.add_argument("--out", required=True, type=Path, help="folder to create the keys in")
    init.add_argument(
        "--name",
        help="the organisation's name, shown to customers (asked on a terminal; otherwise "
        "the folder's name)",
    )

    keygen = org_commands.add_parser(
        "keygen",
        help="make a technician's own key pair",
        description="Write FILE (the private key, mode 0600; keep it) and FILE.pub (send it "
        "for certification).",
    )
    keygen.add_argument("--out", required=True, type=Path, help="the private key file")

    certify = org_commands.add_parser(
        "certify",
        help="issue a technician certificate",
        description="Sign a certificate binding NAME and the organisation to the technician's "
        "public key for N days.",
    )
    certify.add_argument("name", help="the technician's name, shown to customers")
    certify.add_argument("--org-key", required=True, type=Path, help="the organisation's org.key")
    certify.add_argument(
        "--technician-key", required=True, type=Path, help="the technician's .pub file"
    )
    certify.add_argument("--valid-days", required=True, type=int, help="days of validity")
    certify.add_argument("--out", type=Path, help="certificate file (default: print it)")
    certify.add_argument(
        "--organisation", help="organisation name in the certificate (default: the key's)"
    )
    certify.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="ROLE",
        help="allow more than attended sessions, e.g. --role unattended (enrolled devices "
        "accept only technicians whose certificate names it); repeat for several",
    )

    revoke = org_commands.add_parser(
        "revoke",
        help="add certificate serials to the signed revocation list",
        description="Add SERIALs to the list in FILE (created if missing), number it one "
        "higher and sign it. Publish it with 'org publish'.",
    )
    revoke.add_argument("serials", nargs="+", metavar="SERIAL", help="certificate serial(s)")
    revoke.add_argument("--org-key", required=True, type=Path, help="the organisation's org.key")
    revoke.add_argument("--list", required=True, type=Path, help="the revocation list file")

    categories = org_commands.add_parser(
        "categories",
        help="sign the list of help categories customers choose from",
        description="Write a signed list of the categories customers pick when they ask for "
        "help from the organisation's agent; give it to the relay's operator "
        "('puente-relay categories set FILE'). Each is ID or ID=TITLE, for example "
        "printing='Printers and scanners'.",
    )
    categories.add_argument("entries", nargs="+", metavar="ID[=TITLE]", help="the categories")
    categories.add_argument(
        "--org-key", required=True, type=Path, help="the organisation's org.key"
    )
    categories.add_argument("--out", required=True, type=Path, help="file to write")
    categories.add_argument(
        "--number", type=int, default=1, help="list number; a newer list has a higher one"
    )

    rules = org_commands.add_parser(
        "rules",
        help="sign knowledge-base rules for customers' self-help",
        description="Sign a rule file (the TOML language of protocol/rules/default.toml) "
        "into a rule book; give it to the relay's operator ('puente-relay fixes publish "
        "FILE'). Customers' agents add these rules to their built-in ones when they look "
        "for problems to offer self-help fixes for, and use them only if this organisation "
        "signed them.",
    )
    rules.add_argument("file", type=Path, help="the rule file (TOML)")
    rules.add_argument("--org-key", required=True, type=Path, help="the organisation's org.key")
    rules.add_argument("--out", required=True, type=Path, help="file to write")
    rules.add_argument(
        "--number", type=int, default=1, help="rule book number; a newer one has a higher one"
    )

    publish = org_commands.add_parser(
        "publish",
        help="publish the revocation list through the relay",
        description="Upload the signed list; agents fetch it before every session.",
    )
    publish.add_argument("--list", required=True, type=Path, help="the revocation list file")

    sign_agent = org_commands.add_parser(
        "sign-agent",
        help="sign a built one-file agent for the relay's join page",
        description="Sign FILE's SHA-256, size and system with the organisation key, into "
        "FILE.sig (or --out). The relay checks it when the agent is added "
        "('puente-relay downloads add FILE --os OS --org-key org.pub') and the join page "
        "then tells customers whose agent they download.",
        epilog="example:\n  puente-tech org sign-agent dist/puente-agent --os linux "
        "--org-key acme-org/org.key",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sign_agent.add_argument("file", type=Path, metavar="FILE", help="the built one-file agent")
    sign_agent.add_argument(
        "--os", required=True, choices=RELEASE_SYSTEMS, help="the system it was built for"
    )
    sign_agent.add_argument(
        "--org-key", required=True, type=Path, help="the organisation's org.key"
    )
    sign_agent.add_argument("--out", type=Path, help="signature file (default: FILE.sig)")

    show = org_commands.add_parser("show", help="print what a certificate says")
    show.add_argument("certificate", type=Path)

    fix = commands.add_parser(
        "fix",
        help="sign fixes and list the fix library",
        description="Sign a fix directory into a bundle, or list the library of bundles. "
        "Run fixes from 'puente-tech session' with: fix ID [NAME=VALUE ...]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  puente-tech fix sign docs/examples/fixes/disk-cleanup --org-key acme-org/org.key "
        "--out library/\n"
        "  puente-tech fix list --fixes library/ --org-key acme-org/org.pub",
    )
    fix_commands = fix.add_subparsers(dest="fix_command", metavar="ACTION", required=True)
    sign = fix_commands.add_parser(
        "sign",
        help="sign a fix directory into a bundle",
        description="Sign the exact manifest and script bytes of DIR. If --out is a folder, "
        "the bundle is named ID-VERSION-PLATFORMS.puentefix inside it.",
    )
    sign.add_argument("directory", type=Path, help="the fix directory (with manifest.toml)")
    sign.add_argument("--org-key", required=True, type=Path, help="the organisation's org.key")
    sign.add_argument("--out", required=True, type=Path, help="bundle file or library folder")
    sign.add_argument(
        "--valid-days", type=int, default=365, help="days the signature is valid (default 365)"
    )
    listing = fix_commands.add_parser(
        "list",
        help="show the fix library",
        description="List the bundles in the library; with --org-key, say whether agents "
        "pinning that key would accept each one.",
    )
    listing.add_argument(
        "--fixes",
        type=Path,
        default=os.environ.get("PUENTE_FIXES"),
        help="the library folder (default: $PUENTE_FIXES)",
    )
    listing.add_argument("--org-key", type=Path, help="org.pub to check signatures against")

    triage = commands.add_parser(
        "triage",
        help="find known problems in a diagnostics file and suggest fixes",
        description="Match diagnostics JSON (from 'puente-tech diagnostics') against the "
        "knowledge base and print the findings, with fixes ranked by past cases.",
    )
    triage.add_argument("file", type=Path, help="diagnostics JSON")
    add_knowledge_options(triage)


def add_knowledge_options(parser: argparse.ArgumentParser) -> None:
    """``--fixes``, ``--outcomes``, ``--rules``: shared by ``triage`` and ``session``."""
    parser.add_argument(
        "--fixes",
        type=Path,
        default=os.environ.get("PUENTE_FIXES"),
        help="fix library folder (default: $PUENTE_FIXES)",
    )
    parser.add_argument(
        "--outcomes",
        type=Path,
        default=None,
        help="past cases database (default: $PUENTE_OUTCOMES or your data folder)",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        action="append",
        default=[],
        help="extra folder of knowledge-base rule files (repeatable)",
    )


def run(args: argparse.Namespace, out: Output) -> int | None:
    """Run an offline command; None if ``args`` is not one of them."""
    try:
        if args.command == "org" and args.org_command != "publish":
            return {
                "init": org_init,
                "keygen": org_keygen,
                "certify": org_certify,
                "revoke": org_revoke,
                "categories": org_categories,
                "rules": org_rules,
                "sign-agent": org_sign_agent,
                "show": org_show,
            }[args.org_command](args, out)
        if args.command == "fix":
            return fix_sign(args, out) if args.fix_command == "sign" else fix_list(args, out)
        if args.command == "triage":
            return triage_file(args, out)
    except (CredentialsError, FixLibraryError, ValueError) as exc:
        out.error(str(exc))
        return EXIT_ERROR
    return None


# org ------------------------------------------------------------------------------------


def org_init(args: argparse.Namespace, out: Output) -> int:
    name = args.name
    if name is None:
        if sys.stdin.isatty():
            name = input("Organisation name, as customers will see it: ")
        else:
            name = args.out.resolve().name
    name = check_organisation_name(name)
    key_path, public_path = args.out / "org.key", args.out / "org.pub"
    for path in (key_path, public_path):
        if path.exists():
            raise CredentialsError(f"{path} already exists; nothing was overwritten.")
    passphrase = read_passphrase(confirm=True)
    secret = OrganisationSecret(name, Ed25519PrivateKey.generate())
    args.out.mkdir(parents=True, exist_ok=True)
    write_new_file(key_path, encrypt_organisation_key(secret, passphrase), 0o600)
    write_new_file(public_path, public_key_pem(secret.public_key), 0o644)
    out.event(
        "org_key",
        f"Organisation key for {name} written (customers see this name; --name sets it):\n"
        f"  {key_path}  private, encrypted, mode 0600: keep it offline and backed up\n"
        f"  {public_path}  public: agents pin it with --org-key\n"
        f"  key id {short_key_id(secret.key_id)} (full: {secret.key_id})",
        organisation=name,
        private_key=str(key_path),
        public_key=str(public_path),
        key_id=secret.key_id,
    )
    return EXIT_OK


def _public_path(private_path: Path) -> Path:
    if private_path.suffix == ".key":
        return private_path.with_suffix(".pub")
    return private_path.with_name(private_path.name + ".pub")


def org_keygen(args: argparse.Namespace, out: Output) -> int:
    public_path = _public_path(args.out)
    if public_path.exists():
        raise CredentialsError(f"{public_path} already exists; nothing was overwritten.")
    key = Ed25519PrivateKey.generate()
    write_new_file(args.out, private_key_pem(key), 0o600)
    write_new_file(public_path, public_key_pem(key.public_key()), 0o644)
    out.event(
        "technician_key",
        f"Your key is in {args.out} (mode 0600; never share it).\n"
        f"Send {public_path} to your organisation to be certified.",
        private_key=str(args.out),
        public_key=str(public_path),
        key_id=key_id(key.public_key()),
    )
    return EXIT_OK


def _technician_public_key(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CredentialsError(f"Cannot read {path} ({exc.strerror or exc}).") from None
    try:
        return load_public_key(data)
    except TrustError:
        pass
    try:  # a private key file works too (only its public half is used)
        return load_private_key(data).public_key()
    except TrustError as exc:
        raise CredentialsError(
            f"{path} is not a technician key; pass the .pub file from 'puente-tech org keygen' "
            f"({exc})"
        ) from None


def org_certify(args: argparse.Namespace, out: Output) -> int:
    if not 1 <= args.valid_days <= 3650:
        raise CredentialsError("--valid-days must be between 1 and 3650.")
    technician_key = _technician_public_key(args.technician_key)
    if args.out is not None and args.out.exists():
        raise CredentialsError(f"{args.out} already exists; nothing was overwritten.")
    secret = open_organisation_key(args.org_key)
    if args.organisation:
        secret = OrganisationSecret(check_organisation_name(args.organisation), secret.private_key)
    now = int(time.time())
    try:
        document = issue_certificate(
            secret,
            args.name,
            technician_key,
            now - 60,
            now + args.valid_days * 86400,
            roles=args.role,
        )
    except ValueError as exc:
        raise CredentialsError(f"{exc} Nothing was written.") from None
    certificate = parse_certificate(document)
    roles = f", roles {', '.join(certificate.roles)}" if certificate.roles else ""
    summary = (
        f"Certificate for {certificate.name} of {certificate.organisation}, serial "
        f"{certificate.serial}, valid until {iso_date(certificate.not_after)}{roles}"
    )
    fields = {
        "technician": certificate.name,
        "organisation": certificate.organisation,
        "serial": certificate.serial,
        "not_after": certificate.not_after,
        "roles": list(certificate.roles),
    }
    if args.out is None:
        if out.as_json:
            out.event("certificate", summary, certificate=json.loads(document), **fields)
        else:
            print(document.decode("utf-8"), end="", flush=True)
        return EXIT_OK
    write_new_file(args.out, document, 0o644)
    out.event("certificate", f"{summary}: written to {args.out}", path=str(args.out), **fields)
    return EXIT_OK


def org_show(args: argparse.Namespace, out: Output) -> int:
    try:
        certificate = parse_certificate(args.certificate.read_bytes())
    except OSError as exc:
        raise CredentialsError(f"Cannot read {args.certificate} ({exc.strerror or exc}).") from None
    except TrustError as exc:
        raise CredentialsError(f"{args.certificate}: {exc}") from None
    out.event(
        "certificate",
        f"{certificate.name} of {certificate.organisation}\n"
        f"  serial {certificate.serial}\n"
        f"  valid {iso_date(certificate.not_before)} to {iso_date(certificate.not_after)}\n"
        f"  organisation key {short_key_id(certificate.organisation_key)} "
        "(not verified here; agents verify it)"
        + (f"\n  roles {', '.join(certificate.roles)}" if certificate.roles else ""),
        technician=certificate.name,
        organisation=certificate.organisation,
        serial=certificate.serial,
        not_before=certificate.not_before,
        not_after=certificate.not_after,
        organisation_key=certificate.organisation_key,
        roles=list(certificate.roles),
    )
    return EXIT_OK


_SERIAL = re.compile(r"[0-9a-f]{32}")


def org_revoke(args: argparse.Namespace, out: Output) -> int:
    serials = [s.strip().lower() for s in args.serials]
    bad = [s for s in serials if not _SERIAL.fullmatch(s)]
    if bad:
        raise CredentialsError(
            f"{bad[0]!r} is not a certificate serial (32 hex digits; see 'puente-tech org show')."
        )
    secret = open_organisation_key(args.org_key)
    number, known = 1, frozenset[str]()
    if args.list.exists():
        try:
            current = verify_revocation_list(args.list.read_bytes(), secret.public_key)
        except TrustError as exc:
            raise CredentialsError(
                f"{args.list} is not a revocation list of this organisation ({exc}); "
                "choose another file."
            ) from None
        number, known = current.number + 1, current.certificates
    document = issue_revocation_list(secret, number, int(time.time()), known | set(serials))
    temporary = args.list.with_name(args.list.name + ".tmp")
    temporary.write_bytes(document)
    os.replace(temporary, args.list)
    out.event(
        "revocations",
        f"Revocation list number {number} ({len(known | set(serials))} certificates) written "
        f"to {args.list}. Publish it: puente-tech org publish --list {args.list}",
        number=number,
        revoked=sorted(known | set(serials)),
        path=str(args.list),
    )
    return EXIT_OK


def org_categories(args: argparse.Namespace, out: Output) -> int:
    entries = []
    for entry in args.entries:
        ident, _, title = entry.partition("=")
        entries.append(Category(ident.strip(), title.strip() or ident.strip().capitalize()))
    try:
        check_categories(entries)
    except TrustError as exc:
        raise CredentialsError(str(exc)) from None
    secret = open_organisation_key(args.org_key)
    document = issue_category_list(secret, args.number, int(time.time()), entries)
    write_new_file(args.out, document, 0o644)
    out.event(
        "categories",
        f"Signed {len(entries)} categories into {args.out}. Give it to the relay's operator: "
        f"puente-relay categories set {args.out}",
        categories=[c.id for c in entries],
        path=str(args.out),
    )
    return EXIT_OK


def org_rules(args: argparse.Namespace, out: Output) -> int:
    try:
        source = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"Cannot read {args.file} ({exc}); check the path.") from None
    try:
        count = len(check_source(source))
    except TrustError as exc:
        raise CredentialsError(f"{args.file}: {exc}") from None
    secret = open_organisation_key(args.org_key)
    write_new_file(args.out, issue_rule_book(secret, args.number, int(time.time()), source), 0o644)
    out.event(
        "rules",
        f"Signed {count} rules into rule book number {args.number}, {args.out}. Give it to "
        f"the relay's operator: puente-relay fixes publish {args.out}",
        rules=count,
        number=args.number,
        path=str(args.out),
    )
    return EXIT_OK


def org_sign_agent(args: argparse.Namespace, out: Output) -> int:
    digest, size = hashlib.sha256(), 0
    try:
        with args.file.open("rb") as reader:
            while chunk := reader.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise CredentialsError(
            f"Cannot read {args.file} ({exc.strerror}); give the built agent's path."
        ) from None
    if size == 0:
        raise CredentialsError(f"{args.file} is empty; build the agent again and sign that.")
    secret = open_organisation_key(args.org_key)
    document = sign_agent_release(
        secret, system=args.os, sha256=digest.hexdigest(), size=size, signed_at=int(time.time())
    )
    target = args.out or args.file.with_name(args.file.name + ".sig")
    write_new_file(target, document, 0o644)
    out.event(
        "signed",
        f"Signed {args.file} ({args.os}, {size} bytes, SHA-256 {digest.hexdigest()}) for "
        f"{secret.organisation}: {target}. Add it to the relay with: puente-relay downloads "
        f"add {args.file} --os {args.os} --org-key org.pub",
        path=str(target),
        sha256=digest.hexdigest(),
        size=size,
    )
    return EXIT_OK


# fix ------------------------------------------------------------------------------------


def fix_sign(args: argparse.Namespace, out: Output) -> int:
    if not args.directory.is_dir():
        raise FixLibraryError(f"{args.directory} is not a fix directory.")
    secret = open_organisation_key(args.org_key)
    document = sign_fix_directory(args.directory, secret, args.valid_days, int(time.time()))
    bundle = read_bundle(document)
    target = args.out / bundle_file_name(bundle) if args.out.is_dir() else args.out
    write_new_file(target, document, 0o644)
    manifest = bundle.manifest
    out.event(
        "signed",
        f"Signed {manifest.id} {manifest.version} ({', '.join(manifest.platforms)}) for "
        f"{secret.organisation}, valid {args.valid_days} days: {target}",
        fix=manifest.id,
        version=manifest.version,
        path=str(target),
    )
    return EXIT_OK


def fix_list(args: argparse.Namespace, out: Output) -> int:
    if args.fixes is None:
        out.error("No fix library: pass --fixes DIR or set PUENTE_FIXES.")
        return EXIT_USAGE
    organisation_key = None
    if args.org_key is not None:
        try:
            organisation_key = load_public_key(args.org_key.read_bytes())
        except (OSError, TrustError) as exc:
            raise CredentialsError(f"Cannot use {args.org_key} as org.pub ({exc}).") from None
    now = int(time.time())
    entries = FixLibrary(args.fixes).entries()
    rows: list[dict[str, Any]] = []
    for entry in entries:
        if entry.bundle is None:
            rows.append({"path": str(entry.path), "error": entry.error})
            continue
        manifest = entry.bundle.manifest
        row: dict[str, Any] = {
            "path": str(entry.path),
            "id": manifest.id,
            "version": manifest.version,
            "title": manifest.title,
            "platforms": list(manifest.platforms),
            "risk": manifest.risk,
            "needs_admin": manifest.needs_admin,
            "dry_run": manifest.dry_run,
            "parameters": [p.describe() for p in manifest.parameters],
            "signed_by": entry.bundle.organisation if entry.bundle.signed else None,
            "expires_at": entry.bundle.expires_at,
        }
        if organisation_key is not None:
            problem = entry.check(organisation_key, now)
            row["accepted"] = not problem
            if problem:
                row["refused_because"] = problem
        rows.append(row)
    if out.as_json:
        print(json.dumps({"event": "fixes", "library": str(args.fixes), "fixes": rows}), flush=True)
        return EXIT_OK
    if not rows:
        print(f"The library {args.fixes} has no bundles (*.puentefix).", flush=True)
    for row in rows:
        if "error" in row:
            print(f"{row['path']}: NOT A BUNDLE: {safe_text(row['error'])}", flush=True)
            continue
        signed = (
            f"signed by {safe_text(row['signed_by'])} until {iso_date(row['expires_at'])}"
            if row["signed_by"] is not None and row["expires_at"] is not None
            else "UNSIGNED"
        )
        print(
            f"{row['id']} {row['version']}  {safe_text(row['title'])}  "
            f"[{', '.join(row['platforms'])}; risk {row['risk']}"
            f"{'; needs admin' if row['needs_admin'] else ''}"
            f"{'; dry run' if row['dry_run'] else ''}]  {signed}",
            flush=True,
        )
        for parameter in row["parameters"]:
            print(f"    {safe_text(parameter)}", flush=True)
        if "accepted" in row:
            verdict = "accepted" if row["accepted"] else f"REFUSED: {row['refused_because']}"
            print(f"    agents pinning {args.org_key}: {verdict}", flush=True)
    return EXIT_OK


# triage ---------------------------------------------------------------------------------


def triage_file(args: argparse.Namespace, out: Output) -> int:
    from .fix_commands import run_triage
    from .outcomes import OutcomeStore, default_outcomes_path
    from .past_cases import PastCases
    from .triage import RuleError, describe

    try:
        diagnostics = json.loads(args.file.read_text(encoding="utf-8"))
    except OSError as exc:
        out.error(f"Cannot read {args.file} ({exc.strerror or exc}).")
        return EXIT_ERROR
    except ValueError as exc:
        out.error(f"{args.file} is not diagnostics JSON ({exc}).")
        return EXIT_ERROR
    if not isinstance(diagnostics, dict):
        out.error(f"{args.file} is not diagnostics JSON (not an object).")
        return EXIT_ERROR
    outcomes = None
    try:
        outcomes = OutcomeStore(args.outcomes or default_outcomes_path())
    except (OSError, sqlite3.Error):
        outcomes = None  # past cases only reorder suggestions
    try:
        findings = run_triage(
            diagnostics,
            reference_time=None,
            rules_dirs=args.rules,
            library=FixLibrary(args.fixes) if args.fixes else None,
            # Offline: the relay's figures kept last time, else this technician's runs.
            outcomes=PastCases(None, outcomes),
        )
    except RuleError as exc:
        out.error(str(exc))
        return EXIT_ERROR
    finally:
        if outcomes is not None:
            outcomes.close()
    if out.as_json:
        print(
            json.dumps({"event": "triage", "findings": [f.as_dict() for f in findings]}),
            flush=True,
        )
    else:
        for line in describe(findings):
            print(line, flush=True)
    return EXIT_OK
