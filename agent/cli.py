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
from relay.client import Link, LinkError, client_ssl_context

from .audit import AgentLog
from .capabilities import default_registry
from .session import AgentSession
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

Everything done on this computer is written to a log you keep (see --log-dir).
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
    parser.add_argument("-v", "--verbose", action="store_true", help="show technical details")
    return parser


def fail(message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    return 1


def main(argv: list[str] | None = None) -> int:
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
        return asyncio.run(run_agent(args.relay, code, args.log_dir, args.ca_file))
    except KeyboardInterrupt:
        print("\nSession ended by you.", flush=True)
        return 0


async def run_agent(
    relay: str, code: SessionCode, log_dir: Path | None, ca_file: str | None
) -> int:
    ui = ConsoleUI()
    ui.say(f"Connecting to the relay to join session {code} ...")
    try:
        ssl_context = client_ssl_context(ca_file)
        link = await Link.open(relay, Role.AGENT, code, ssl=ssl_context)
    except LinkError as exc:
        return fail(str(exc))
    audit = AgentLog.for_session(log_dir, code.nameplate)
    session = AgentSession(link, ui, default_registry(), audit)
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
        audit.close()
        await link.close()
    ui.session_ended(reason)
    ui.say(f"A record of this session is in {audit.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
