"""``puente-tech policy sign|show|details-key``: the organisation signs enrolled devices'
policies, and makes the details key check details are sealed to.

Offline, like ``org``: the organisation key's passphrase comes from
``PUENTE_ORG_PASSPHRASE`` or the terminal. The format is :mod:`protocol.device_policy`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from protocol import sealed_details
from protocol.device_policy import (
    CHECK_KINDS,
    DevicePolicy,
    policy_from_toml,
    sign_policy,
    verify_policy,
)
from protocol.errors import TrustError
from protocol.identity import load_public_key
from protocol.safe_text import safe_text

from .credentials import CredentialsError, open_organisation_key, write_new_file
from .output import Output

EXIT_OK, EXIT_ERROR = 0, 1

POLICY_EPILOG = f"""\
examples:
  puente-tech policy sign acme-policy.toml --org-key acme-org/org.key --out acme.policy
  puente-tech policy show acme.policy --org-key acme-org/org.pub
  puente-tech policy details-key --out acme-org/details.key

A policy file (TOML) lists [[checks]] (id, kind, every_minutes or every_seconds (5 or
more), severity, failures_before_alert, action = a signed fix's id, and the kind's
settings), [[maintenance]] windows (days, start HH:MM UTC, minutes), [unattended]
(mode = never, ask-deny, ask-allow or allowed; answer_seconds, countdown_seconds,
capabilities), details_key (the line 'policy details-key' prints: check details travel
sealed to it, the relay cannot read them), details_to_help_desk (true or false: the
technician's side may post the opened details on the alert's ticket) and
repeat_comment_seconds (the least time between two comments on a ticket whose check
keeps failing; 3600 unless set, 10 or more). Check kinds: {", ".join(CHECK_KINDS)}.
An example is in docs/examples/device-policy.toml.
"""


def add_commands(commands: Any) -> None:
    """Add ``policy`` to the ``puente-tech`` subcommands."""
    policy = commands.add_parser(
        "policy",
        help="sign device policies (checks, maintenance windows, unattended access)",
        description="Sign an enrolled device policy with the organisation key, or show "
        "what a signed policy says.",
        epilog=POLICY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    sign = actions.add_parser(
        "sign",
        help="check a policy file and sign it",
        description="Check POLICY.toml and write the signed policy agents accept.",
    )
    sign.add_argument("source", type=Path, help="the policy file (TOML)")
    sign.add_argument("--org-key", required=True, type=Path, help="the organisation's org.key")
    sign.add_argument("--out", required=True, type=Path, help="the signed policy file to write")
    sign.add_argument("--number", type=int, help="the policy's number (default: the file's, or 1)")
    show = actions.add_parser(
        "show",
        help="verify a signed policy and say what it asks",
        description="Verify FILE against org.pub and print it in plain words.",
    )
    show.add_argument("file", type=Path, help="the signed policy")
    show.add_argument("--org-key", required=True, type=Path, help="the organisation's org.pub")
    details_key = actions.add_parser(
        "details-key",
        help="make the organisation's details key (check details are sealed to it)",
        description="Make an X25519 key pair for check details. Devices seal what their "
        "checks found to its public half (HPKE), so the relay carries the details without "
        "reading them; 'puente-tech devices show DEVICE --details-key FILE' opens them. "
        "Writes FILE (private, mode 0600: keep it with the organisation key) and prints the "
        "line to put in the policy's TOML before signing it.",
        epilog="example:\n  puente-tech policy details-key --out acme-org/details.key\n"
        '  # then add to device-policy.toml:  details_key = "..."',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    details_key.add_argument("--out", required=True, type=Path, help="the private key file")


def run(args: argparse.Namespace, out: Output) -> int | None:
    """Run ``policy``; None if ``args`` is another command."""
    if args.command != "policy":
        return None
    try:
        if args.policy_command == "sign":
            return policy_sign(args, out)
        if args.policy_command == "details-key":
            return policy_details_key(args, out)
        return policy_show(args, out)
    except CredentialsError as exc:
        out.error(str(exc))
        return EXIT_ERROR


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CredentialsError(
            f"Cannot read {path} ({exc.strerror or exc}); check the path."
        ) from None


def policy_sign(args: argparse.Namespace, out: Output) -> int:
    try:
        text = _read(args.source).decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsError(f"{args.source} is not UTF-8 text; save it as UTF-8.") from None
    if args.out.exists():
        raise CredentialsError(f"{args.out} already exists; nothing was overwritten.")
    try:
        policy = policy_from_toml(text, "", "")
    except TrustError as exc:
        raise CredentialsError(f"{args.source}: {exc} Nothing was signed.") from None
    if args.number is not None:
        if args.number < 1:
            raise CredentialsError("--number must be 1 or more.")
        policy = dataclasses.replace(policy, number=args.number)
    secret = open_organisation_key(args.org_key)
    document = sign_policy(policy, secret)
    write_new_file(args.out, document, 0o644)
    out.event(
        "policy",
        f"Policy number {policy.number} of {secret.organisation} ({len(policy.checks)} checks, "
        f"unattended access: {policy.unattended.mode}) signed: {args.out}",
        path=str(args.out),
        number=policy.number,
        checks=[check.id for check in policy.checks],
        unattended=policy.unattended.mode,
    )
    return EXIT_OK


def policy_details_key(args: argparse.Namespace, out: Output) -> int:
    key = sealed_details.new_details_key()
    write_new_file(args.out, sealed_details.private_to_pem(key), 0o600)
    public = sealed_details.public_text(key)
    out.event(
        "details_key",
        f"Details key written to {args.out} (keep it private). Add this line to the "
        f'policy before signing it:\ndetails_key = "{public}"',
        path=str(args.out),
        details_key=public,
    )
    return EXIT_OK


def describe(policy: DevicePolicy) -> list[str]:
    """The policy in plain words, one line each (English: the technician's side)."""
    unattended = policy.unattended
    modes = {
        "never": "a technician can never connect when nobody answers",
        "ask-deny": f"the signed-in user is asked; no answer in {unattended.answer_seconds} s "
        "means no",
        "ask-allow": f"the signed-in user is asked; no answer in {unattended.countdown_seconds} s "
        "means yes (for servers)",
        "allowed": "allowed without asking: " + ", ".join(unattended.capabilities),
    }
    lines = [
        f"Policy number {policy.number} of {policy.organisation}",
        f"  unattended access: {modes[unattended.mode]}",
        "  the relay sees only which check failed; details "
        + (
            "go sealed to the organisation's details key"
            + (", and may be posted on tickets" if policy.details_to_help_desk else "")
            if policy.details_key
            else "stay on the device"
        ),
    ]
    for check in policy.checks:
        settings = ", ".join(f"{k}={v}" for k, v in sorted(check.params.items()))
        action = f", fix on failure: {check.action}" if check.action else ""
        every = (
            f"{check.every_minutes} min" if check.every_seconds is None else f"{check.interval} s"
        )
        lines.append(
            f"  check {check.id} ({check.kind}, every {every}, "
            f"{check.severity} after {check.failures_before_alert} failures{action}): {settings}"
        )
    for window in policy.maintenance:
        body = window.body()
        lines.append(
            f"  maintenance: {', '.join(window.days)} from {body['start']} UTC "
            f"for {window.minutes} min"
        )
    return lines


def policy_show(args: argparse.Namespace, out: Output) -> int:
    try:
        key = load_public_key(_read(args.org_key))
        policy = verify_policy(_read(args.file), key)
    except TrustError as exc:
        raise CredentialsError(f"{args.file}: {exc}") from None
    if out.as_json:
        print(json.dumps({"event": "policy", "policy": policy.body()}), flush=True)
    else:
        for line in describe(policy):
            print(safe_text(line), flush=True)
    return EXIT_OK
