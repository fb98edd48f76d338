"""``puente-agent``: the customer's side of a Puente remote-support session.

Exit status: 0 the session ended normally (either side ended it); 1 the session
could not start or was cut off (one plain sentence on stderr says why and what to
do); 2 the command line was wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from protocol.code import InvalidCodeError, SessionCode
from protocol.envelope import Role
from relay.client import Link, LinkError

from .audit import AgentLog
from .capabilities import default_registry
from .errors import TrustSetupError
from .session import AgentSession
from .trust import AgentTrust, fetch_revocations, load_pinned_key
from .ui import ConsoleUI

DESCRIPTION = """\
Let a help-desk technician help you with this computer.

Your technician gives you a session code such as 417-862-093. Type it here (or
pass it on the command line). You will see the technician's name, the ticket and a
check code to read to them. The technician can do nothing until you allow it, one
permission at a time, and you can stop any permission or the whole session at any
moment.
"""

EPILOG = """\
examples:
  puente-agent --relay wss://support.example.org --console 417-862-093
  PUENTE_RELAY=ws://127.0.0.1:8765 puente-agent --console
  puente-agent --org-key acme-org.pub --relay wss://support.example.org 417-862-093
  puente-agent audit verify ~/.local/state/puente/session-20260102-100000-417.log

With --org-key (your help desk's installer sets it), only technicians certified by
that organisation can connect, you see their verified name, and only fixes that
organisation signed can run. Without it you see an "unverified technician" warning
and fixes are refused.

Everything done on this computer is written to a hash-chained log you keep (see
--log-dir); 'puente-agent audit verify FILE' checks that nobody edited it.
"""

AUDIT_DESCRIPTION = """\
Check a Puente session log: every entry carries the hash of the one before, so an
edited, removed or inserted entry is found. Prints the first broken entry.

exit status: 0 the log is intact, 1 it was changed (or cannot be read), 2 usage
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="puente-agent",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("code", nargs="?", help="the session code from your technician")
    parser.add_argument(
        "--relay",
        default=os.environ.get("PUENTE_RELAY"),
        help="relay address, wss://... (default: $PUENTE_RELAY)",
    )
    parser.add_argument(
        "--console", action="store_true", help="use this terminal instead of a window"
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=os.environ.get("PUENTE_LOG_DIR"),
        help="folder for the session log (default: your user's Puente state folder)",
    )
    parser.add_argument("--ca-file", help="trust this CA certificate for the relay (wss://)")
    parser.add_argument(
        "--org-key",
        type=Path,
        default=os.environ.get("PUENTE_ORG_KEY"),
        help="your organisation's public key (org.pub): accept only technicians it certified "
        "and fixes it signed (default: $PUENTE_ORG_KEY)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show technical details")
    return parser


def build_audit_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="puente-agent audit",
        description=AUDIT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    verify = commands.add_parser("verify", help="check that a session log was not edited")
    verify.add_argument("file", type=Path, help="the session log (session-....log)")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def audit_main(argv: list[str]) -> int:
    """``puente-agent audit verify FILE``."""
    import json

    from .audit import verify_log

    args = build_audit_parser().parse_args(argv)
    try:
        verdict = verify_log(args.file)
    except OSError as exc:
        return fail(f"Cannot read {args.file} ({exc.strerror or exc}); check the path.")
    if args.json:
        print(json.dumps({"file": str(args.file), **verdict.as_dict()}), flush=True)
    elif verdict.ok:
        print(
            f"OK: {args.file} is intact ({verdict.entries} entries; last entry fingerprint "
            f"{verdict.last_hash[:16]}).",
            flush=True,
        )
    else:
        print(
            f"BROKEN: {args.file}, line {verdict.broken_line}: {verdict.problem}. "
            f"The {verdict.entries} entries before it are intact.",
            flush=True,
        )
    return 0 if verdict.ok else 1


def fail(message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["audit"]:
        return audit_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if not args.relay:
        return fail("No relay address: pass --relay wss://... or set PUENTE_RELAY.")
    if not args.console:
        print("(No window toolkit yet in this build; using the console.)", flush=True)
    code_text = args.code
    if not code_text:
        try:
            code_text = input("Type the session code your technician gave you: ")
        except EOFError:
            return fail("No session code given; run again with the code your technician gave you.")
    try:
        code = SessionCode.parse(code_text)
    except InvalidCodeError as exc:
        return fail(str(exc))
    try:
        return asyncio.run(run_agent(args.relay, code, args.log_dir, args.ca_file, args.org_key))
    except KeyboardInterrupt:
        print("\nSession ended by you.", flush=True)
        return 0


async def run_agent(
    relay: str,
    code: SessionCode,
    log_dir: Path | None,
    ca_file: str | None,
    org_key: Path | None = None,
) -> int:
    ui = ConsoleUI()
    ssl_context = None
    if ca_file:
        import ssl

        ssl_context = ssl.create_default_context(cafile=ca_file)
    trust = AgentTrust()
    if org_key is not None:
        try:
            trust.organisation_key = load_pinned_key(Path(org_key))
            ui.say("Checking which technicians your organisation has revoked ...")
            trust.revoked, trust.revocation_number = await asyncio.to_thread(
                fetch_revocations, relay, trust.organisation_key, ssl_context
            )
        except TrustSetupError as exc:
            return fail(str(exc))
    ui.say(f"Connecting to the relay to join session {code} ...")
    try:
        link = await Link.open(relay, Role.AGENT, code, ssl=ssl_context)
    except LinkError as exc:
        return fail(str(exc))
    audit = AgentLog.for_session(log_dir, code.nameplate)
    if trust.pinned:
        audit.write(
            f"Organisation key pinned ({trust.key_id[:16]}); revocation list "
            f"{'number ' + str(trust.revocation_number) if trust.revocation_number else 'none published'}"
            f" ({len(trust.revoked)} revoked certificates)."
        )
    session = AgentSession(link, ui, default_registry(), audit, trust)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
        loop.add_signal_handler(
            signal.SIGINT, lambda: asyncio.ensure_future(session.end("ended by the customer"))
        )
    try:
        reason = await session.run()
    except (LinkError, TimeoutError) as exc:
        ui.session_ended(str(exc) or "the technician did not respond")
        audit.write(f"Session cut off: {exc}")
        return 1
    finally:
        audit.write("Log closed.")
        audit.close()
        await link.close()
    ui.session_ended(reason)
    ui.say(f"A record of this session is in {audit.path}")
    ui.say(f"  (its last entry's fingerprint is {audit.last_hash[:16]}; note it to check later)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
