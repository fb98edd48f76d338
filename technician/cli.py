"""``puente-tech``: the technician's command line.

Exit status: 0 done; 1 error (relay unreachable, session lost, integrity failure);
2 usage or configuration; 3 the customer declined; 4 nobody joined in time.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from link.errors import CodeReissued, LinkError, SessionLost
from link.relay_address import client_ssl_context
from protocol.allocator import keep_freed_memory
from protocol.code import SessionCode
from protocol.errors import WrongCodeError
from protocol.messages import ReplyStatus
from protocol.process import quiet_library_warnings, quiet_on_closed_stdout
from protocol.safe_text import safe_text

from . import device_details, policy_cli, queue_cli, trust_cli
from .client import RATING_WAIT, RelayAPI, TechnicianSession, connect_device, send_summary
from .credentials import CredentialsError, load_credentials
from .output import Output, write_private
from .summary import build_summary

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DECLINED, EXIT_NOBODY = 0, 1, 2, 3, 4

#: Codes burnt by a wrong secret that one command replaces before it gives up (someone
#: who keeps claiming with a wrong secret is an attack worth stopping for).
MAX_WRONG_CODES = 3

DESCRIPTION = """\
Help a customer through the Puente relay.

Each command opens a session for a help-desk ticket and prints a session code
(code: 417-862-093) and a join page to send the customer. Read the code to the
customer, who types it into puente-agent. When they join, both of you see the same
check code: ask them to read theirs aloud; if it differs, stop. The customer
approves every capability you ask for. When the session ends the customer is asked
to rate the help, and a summary (who, when, consents, diagnostics digest, rating)
goes to the relay and on to the help desk's ticket.
"""

EPILOG = """\
examples:
  export PUENTE_RELAY=wss://support.example.org PUENTE_TOKEN=pt_...
  export PUENTE_CERT=ana.cert PUENTE_KEY=ana.key      # prove who you are to customers
  puente-tech diagnostics --ticket HD-1042 --out hd-1042.json
  puente-tech --json diagnostics --ticket HD-1042 --out d.json --wait 300
  puente-tech session --ticket HD-1042 --fixes library/   # then: triage, fix disk-cleanup
  puente-tech triage hd-1042.json
  puente-tech org --help ; puente-tech fix --help
  puente-tech sessions --ticket HD-1042
  puente-tech availability available ; puente-tech queue list
  puente-tech queue accept --next --fixes library/   # inside: transfer Bo --note "..."
  puente-tech devices ; puente-tech connect DEVICE_ID --ticket HD-1042   # unattended

exit status: 0 done, 1 error, 2 usage, 3 customer declined, 4 nobody joined
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="puente-tech",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--relay",
        default=os.environ.get("PUENTE_RELAY"),
        help="relay address (default: $PUENTE_RELAY)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("PUENTE_TOKEN"),
        help="your API token (default: $PUENTE_TOKEN)",
    )
    parser.add_argument("--ca-file", help="trust this CA certificate for the relay (wss://)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show the libraries' own warnings (for reporting a problem)",
    )
    parser.add_argument(
        "--cert",
        type=Path,
        default=os.environ.get("PUENTE_CERT"),
        help="your technician certificate, shown verified to customers (default: $PUENTE_CERT)",
    )
    parser.add_argument(
        "--key",
        type=Path,
        default=os.environ.get("PUENTE_KEY"),
        help="your private key, which belongs to --cert (default: $PUENTE_KEY)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    diag = commands.add_parser(
        "diagnostics",
        help="collect a customer's diagnostics into a JSON file",
        description="Open a session for TICKET, ask the customer to allow diagnostics, "
        "write them to FILE and end the session.",
    )
    diag.add_argument("--ticket", required=True, help="help-desk ticket id, e.g. HD-1042")
    diag.add_argument("--ticket-url", help="link to the ticket in your help desk")
    diag.add_argument("--out", required=True, type=Path, help="where to write the JSON")
    diag.add_argument(
        "--wait", type=float, default=600.0, help="seconds to wait for the customer (default 600)"
    )
    diag.add_argument(
        "--sample", type=float, default=0.5, help="seconds to sample busy processes (default 0.5)"
    )
    _add_rating_wait(diag)
    console = commands.add_parser(
        "session",
        help="open a session and type commands (or pipe a script) into it",
        description="Open a session for TICKET, print the code, wait for the customer, then "
        "read one command per line from stdin and print one result line per command. "
        "Type help inside for the list. End of input ends the session.",
    )
    _add_console_options(console, 600.0, "the customer")
    sessions = commands.add_parser(
        "sessions",
        help="list a ticket's sessions with their summaries",
        description="List your sessions for TICKET, newest first, with their summaries "
        "(times, consents, diagnostics digest, the customer's rating). With --json, one "
        'JSON object: {"ticket_id": ..., "sessions": [...]}.',
    )
    sessions.add_argument("--ticket", required=True, help="help-desk ticket id, e.g. HD-1042")
    devices = commands.add_parser(
        "devices",
        help="enrolled devices: online or not, open alerts",
        description="List the devices enrolled at the relay, whether each is online and "
        'its open alerts. With --json, one JSON object: {"devices": [...]}. '
        "'devices show DEVICE --details-key FILE' opens one device's check details.",
    )
    device_details.add_show(devices)
    connect = commands.add_parser(
        "connect",
        help="unattended session on an enrolled device (certificate with the unattended role)",
        description="Ask the enrolled DEVICE (its id, from 'puente-tech devices') for an "
        "unattended session for TICKET, then type commands as in 'puente-tech session'. "
        "The device pairs without a code and checks your certificate (--cert/--key, "
        "issued with 'puente-tech org certify NAME --role unattended'); the policy its "
        "owner accepted decides: never, ask whoever is signed in (no answer means no), "
        "ask and let you in after a countdown, or without asking; only the capabilities "
        "it lists can be used. The relay never sees the session's content.",
        epilog="example:\n  puente-tech --cert me.cert --key me.key connect "
        "3f2a...e9 --ticket HD-1042 < commands.txt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    connect.add_argument("device", metavar="DEVICE", help="the device id (32 hex digits)")
    _add_console_options(connect, 60.0, "the device")
    trust_cli.add_commands(commands)
    queue_cli.add_commands(commands)
    policy_cli.add_commands(commands)
    viewer = commands.add_parser(
        "viewer",
        help="open the desktop viewer (see and control the customer's screen)",
        description="Open the desktop viewer, the technician's workplace. Sign in once with "
        "the relay address and your API token (kept in this computer's credential store, "
        "never in a file); My sessions lists your sessions; Start session opens a tab with "
        "the code and the join link to give the customer. Queue lists the help requests "
        "customers filed (live), with Accept (a tab that pairs without a code, as 'queue "
        "accept'), Decline and your availability; Devices lists the enrolled devices with "
        "their open alerts, and Connect opens an unattended session (as 'connect'); both "
        "need your certificate. Beside their screen: what they "
        "allowed, chat, a terminal, their shared folder (drop files to send them), "
        "diagnostics with the problems found and the signed fixes to run, and at the end "
        "their rating and the summary sent to the ticket. Several sessions open as tabs; a "
        "network cut is resumed and shown. --cert/--key sign you in as your organisation's "
        "technician (needed for signed fixes); --fixes and --rules as for 'session'. Needs "
        "the viewer extra (pip install 'puente[viewer]').",
    )
    viewer.add_argument("--ticket", default="", help="help-desk ticket id to prefill")
    viewer.add_argument("--name", default="", help="your name as the customer sees it")
    trust_cli.add_knowledge_options(viewer)
    return parser


def _add_rating_wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rating-wait",
        type=float,
        default=RATING_WAIT,
        metavar="S",
        help=f"seconds to wait for the customer's rating when you end (default {RATING_WAIT:.0f})",
    )


@quiet_on_closed_stdout
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_library_warnings(show=args.verbose)
    out = Output(args.json)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.command == "viewer":
        return run_viewer(args, out)
    offline = trust_cli.run(args, out)
    if offline is None:
        offline = policy_cli.run(args, out)
    if offline is not None:
        return offline
    if not args.relay:
        out.error("No relay address: pass --relay wss://... or set PUENTE_RELAY.")
        return EXIT_USAGE
    if not args.token:
        out.error("No API token: pass --token or set PUENTE_TOKEN (ask your relay operator).")
        return EXIT_USAGE
    try:
        ssl_context = client_ssl_context(args.ca_file)
    except LinkError as exc:
        out.error(str(exc))
        return EXIT_USAGE
    if args.command == "org":  # org publish: the only org command that needs the relay
        return publish_revocations(args, out, ssl_context)
    try:
        args.credentials = load_credentials(args.cert, args.key) if args.cert or args.key else None
    except CredentialsError as exc:
        out.error(str(exc))
        return EXIT_USAGE
    if (args.cert is None) != (args.key is None):
        out.error("Pass both --cert and --key (or PUENTE_CERT and PUENTE_KEY), or neither.")
        return EXIT_USAGE
    runners = {
        "diagnostics": run_diagnostics,
        "session": run_console,
        "sessions": run_sessions,
        "queue": functools.partial(queue_cli.run, serve=serve_session),
        "availability": functools.partial(queue_cli.run, serve=serve_session),
        "devices": run_devices,
        "connect": run_connect,
    }
    runner = runners[args.command]
    keep_freed_memory()  # file copies through the tunnel (protocol.allocator)
    try:
        return asyncio.run(runner(args, out, ssl_context))
    except KeyboardInterrupt:
        out.error("Interrupted; the session was ended.")
        return EXIT_ERROR
    except LinkError as exc:
        out.error(str(exc))
        return EXIT_ERROR


def _add_console_options(parser: argparse.ArgumentParser, wait: float, whom: str) -> None:
    """What ``session`` and ``connect`` share: the ticket, the wait, the console's options."""
    parser.add_argument("--ticket", required=True, help="help-desk ticket id, e.g. HD-1042")
    parser.add_argument("--ticket-url", help="link to the ticket in your help desk")
    parser.add_argument(
        "--wait", type=float, default=wait, help=f"seconds to wait for {whom} (default {wait:.0f})"
    )
    _add_rating_wait(parser)
    trust_cli.add_knowledge_options(parser)


def run_viewer(args: argparse.Namespace, out: Output) -> int:
    try:
        from .viewer.window import run
    except ImportError as exc:
        out.error(
            f"The viewer needs PySide6 ({exc}); install it with: pip install 'puente[viewer]'"
        )
        return EXIT_USAGE
    from .viewer.session_tab import Knowledge

    try:
        credentials = load_credentials(args.cert, args.key) if args.cert or args.key else None
    except CredentialsError as exc:
        out.error(str(exc))
        return EXIT_USAGE
    from .outcomes import default_outcomes_path

    knowledge = Knowledge(
        credentials, args.fixes, list(args.rules), args.outcomes or default_outcomes_path()
    )
    return run(args.relay or "", args.token or "", args.ticket, args.name, knowledge)


async def open_session(
    args: argparse.Namespace, out: Output, ssl_context: Any
) -> tuple[RelayAPI, dict[str, Any], TechnicianSession | None]:
    """Create the session over REST, print the code, wait for the customer, pair."""
    api = RelayAPI(args.relay, args.token, ssl_context)
    created = await asyncio.to_thread(api.create_session, args.ticket, args.ticket_url)
    code = SessionCode.new(created["nameplate"])
    out.event(
        "code",
        f"code: {code}",
        code=str(code),
        session_id=created["session_id"],
        join_url=created.get("join_url"),
    )
    if created.get("join_url"):
        out.event(
            "join_page",
            f"Join page for the customer (it never shows the code): {created['join_url']}",
            join_url=created["join_url"],
        )
    out.event(
        "waiting",
        f"Read this code to the customer. Waiting up to {args.wait:.0f} s for them to join...",
        wait=args.wait,
    )
    wrong_codes = 0
    try:
        while True:
            try:
                session = await TechnicianSession.connect(
                    args.relay,
                    code,
                    args.ticket,
                    token=args.token,
                    technician_name=str(created.get("technician") or "Technician"),
                    ssl=ssl_context,
                    wait_timeout=args.wait,
                    credentials=args.credentials,
                )
                break
            except SessionLost as lost:
                # The code's secret did not match: a mistyped code, or someone who only
                # knew the nameplate. The relay burnt it; a new one costs the technician
                # nothing (a few times at most, so a persistent squatter is reported).
                if not isinstance(lost.__cause__, WrongCodeError) or wrong_codes >= MAX_WRONG_CODES:
                    raise
                wrong_codes += 1
                created = await asyncio.to_thread(api.create_session, args.ticket, args.ticket_url)
                code = SessionCode.new(created["nameplate"])
                out.event(
                    "code_reissued",
                    f"{lost} That code no longer works; give the customer this new one: {code}",
                    code=str(code),
                    session_id=created["session_id"],
                    join_url=created.get("join_url"),
                )
            except CodeReissued as reissued:
                code = SessionCode.new(reissued.nameplate)
                created = {
                    **created,
                    "session_id": reissued.session_id,
                    "nameplate": reissued.nameplate,
                    "join_url": reissued.join_url,
                }
                out.event(
                    "code_reissued",
                    f"Someone else used this code; give the customer this new one: {code}",
                    code=str(code),
                    session_id=reissued.session_id,
                    join_url=reissued.join_url,
                )
    except TimeoutError:
        await asyncio.to_thread(_end_quietly, api, created["session_id"])
        return api, created, None
    session.rating_wait = args.rating_wait
    out.paired(session.sas)
    return api, created, session


async def upload_summary(
    api: RelayAPI,
    created: dict[str, Any],
    session: TechnicianSession,
    out: Output,
    unattended: dict[str, str] | None = None,
) -> bool:
    """Report the rating, then upload the session's summary (retrying briefly);
    ``unattended`` names the device and its policy's mode for an unattended session."""
    if session.rating is not None:
        score, comment = session.rating
        said = f' "{safe_text(comment, 500)}"' if comment else ""
        out.event(
            "rating",
            f"Customer rating: {score}/5{said}",
            score=score,
            comment=safe_text(comment, 500),
        )
    else:
        out.event("rating", "The customer did not rate this session.", score=None)
    summary = build_summary(session, str(created.get("technician") or "Technician"), time.time())
    if unattended:
        summary["unattended"] = unattended
    session_id = str(created["session_id"])
    problem = await send_summary(api, session_id, summary)
    if problem is None:
        out.event(
            "summary",
            f"Session summary sent to the relay for ticket {created.get('ticket_id')}.",
            session_id=session_id,
        )
        return True
    out.error(
        f"The session summary could not be uploaded ({problem}). It follows so you can add "
        "it to the ticket by hand:"
    )
    print(json.dumps(summary, indent=2), file=sys.stderr, flush=True)
    return False


def publish_revocations(args: argparse.Namespace, out: Output, ssl_context: Any) -> int:
    """``org publish --list FILE``: upload the signed revocation list to the relay."""
    try:
        document = args.list.read_bytes()
    except OSError as exc:
        out.error(f"Cannot read {args.list} ({exc.strerror or exc}); check --list.")
        return EXIT_USAGE
    try:
        answer = RelayAPI(args.relay, args.token, ssl_context).publish_revocations(document)
    except LinkError as exc:
        out.error(str(exc))
        return EXIT_ERROR
    out.event(
        "published",
        f"Revocation list number {answer.get('number')} ({answer.get('revoked')} certificates) "
        "is published; agents honour it from their next session.",
        **answer,
    )
    return EXIT_OK


def _end_quietly(api: RelayAPI, session_id: str) -> None:
    try:
        api.end_session(session_id)
    except LinkError:
        pass


async def run_diagnostics(args: argparse.Namespace, out: Output, ssl_context: Any) -> int:
    api, created, session = await open_session(args, out, ssl_context)
    if session is None:
        out.error(f"Nobody joined within {args.wait:.0f} seconds; the code no longer works.")
        return EXIT_NOBODY
    watch_session(session, out)
    try:
        out.event("asking", "Asking the customer to allow diagnostics...", capability="diagnostics")
        reply = await session.request(
            "diagnostics",
            "collect",
            {"sample_seconds": args.sample},
        )
        if reply.status == ReplyStatus.DECLINED:
            out.error(
                "The customer declined diagnostics; nothing was collected.", status="declined"
            )
            return EXIT_DECLINED
        if reply.status == ReplyStatus.REVOKED:
            out.error(
                "The customer stopped diagnostics before they finished; nothing was collected.",
                status="revoked",
            )
            return EXIT_DECLINED
        if reply.status != ReplyStatus.OK or reply.result is None:
            out.error(f"Diagnostics failed on the customer's computer: {reply.message}")
            return EXIT_ERROR
        write_private(args.out, json.dumps(reply.result, indent=2, sort_keys=True))
        out.event("written", f"Diagnostics written to {args.out}", path=str(args.out))
        return EXIT_OK
    finally:
        out.event("ending", "Ending the session; the customer is asked to rate it...")
        await session.end("the technician finished")
        await upload_summary(api, created, session, out)


async def stdin_lines() -> AsyncIterator[str]:
    """Lines from stdin without blocking the event loop (a reader thread feeds a queue).

    The thread reads a line only when the console asks for the next one, so while a
    command runs it leaves the terminal alone (``shell`` reads keystrokes itself).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    wanted = threading.Semaphore(0)

    def read() -> None:
        while True:
            wanted.acquire()
            line = sys.stdin.readline()
            if not line:
                break
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="puente-tech-stdin", daemon=True).start()
    while True:
        wanted.release()
        line = await queue.get()
        if line is None:
            return
        yield line


#: What the technician is told when the link to the relay drops and comes back.
LINK_STATES = {
    "reconnecting": "link: the connection to the relay was lost; reconnecting "
    "(the session and the customer's consent are kept)",
    "peer_reconnecting": "link: the customer's connection dropped; waiting for it to come back",
    "resumed": "link: connection restored; the session continues",
}


def watch_session(session: TechnicianSession, out: Output) -> None:
    """Show the customer's chat messages and the link's ups and downs as they happen."""
    session.on_chat = lambda text: out.event(
        "chat", f"chat: the customer says: {safe_text(text)}", message=safe_text(text)
    )
    session.link.on_link_state.append(
        lambda state: out.event("link", LINK_STATES.get(state, f"link: {state}"), state=state)
    )


async def run_console(args: argparse.Namespace, out: Output, ssl_context: Any) -> int:
    api, created, session = await open_session(args, out, ssl_context)
    if session is None:
        out.error(f"Nobody joined within {args.wait:.0f} seconds; the code no longer works.")
        return EXIT_NOBODY
    return await serve_session(args, out, api, created, session)


async def serve_session(
    args: argparse.Namespace,
    out: Output,
    api: RelayAPI,
    created: dict[str, Any],
    session: TechnicianSession,
) -> int:
    """Run the console on a paired session, then upload its summary; the exit status."""
    watch_session(session, out)
    status = await _console_until_ended(args, session, out, api)
    await upload_summary(api, created, session, out)
    return status


async def _console_until_ended(
    args: argparse.Namespace, session: TechnicianSession, out: Output, api: RelayAPI
) -> int:
    from .console import SessionConsole
    from .console_commands import load_commands
    from .outcomes import default_outcomes_path

    load_commands()

    console = SessionConsole(
        session,
        as_json=out.as_json,
        settings={
            "fixes_dir": args.fixes,
            "outcomes": args.outcomes or default_outcomes_path(),
            "api": api,  # past cases are the relay's (technician.past_cases)
            "rules_dirs": args.rules,
            "queue_request": getattr(args, "queue_request", None),
        },
    )
    commands_task = asyncio.create_task(console.run(stdin_lines()))
    closed_task = asyncio.create_task(session.link.wait_closed())
    done, _ = await asyncio.wait([commands_task, closed_task], return_when=asyncio.FIRST_COMPLETED)
    if closed_task in done and session.ended_by == "technician":
        await commands_task  # our own "end" command closed the link: let it report
        return EXIT_OK
    if closed_task in done:
        commands_task.cancel()
        await session.drained()  # the customer's Rating and Bye came before the close
        try:
            reason = closed_task.result()
        except LinkError as exc:
            out.event("ended", f"ended: {exc}", reason=str(exc))
            return EXIT_ERROR
        out.event("ended", f"ended: {reason}", reason=reason)
        return EXIT_OK
    closed_task.cancel()
    if not console.ended:
        await session.end("the technician finished")
    return EXIT_OK


async def run_sessions(args: argparse.Namespace, out: Output, ssl_context: Any) -> int:
    """List a ticket's sessions with their summaries (everything shown is sanitised)."""
    api = RelayAPI(args.relay, args.token, ssl_context)
    sessions = await asyncio.to_thread(api.list_sessions, args.ticket)
    if out.as_json:
        print(json.dumps({"ticket_id": args.ticket, "sessions": sessions}), flush=True)
        return EXIT_OK
    from protocol.summary import summary_lines

    ticket = safe_text(args.ticket, 200)
    if not sessions:
        print(f"No sessions of yours for ticket {ticket}.")
        return EXIT_OK
    print(f"Ticket {ticket}: {len(sessions)} session{'s' if len(sessions) != 1 else ''}")
    for item in sessions:
        summary = item.get("summary") if isinstance(item, dict) else None
        rating = (summary or {}).get("rating") if isinstance(summary, dict) else None
        rated = f"rating {rating.get('score')}/5" if isinstance(rating, dict) else "no rating"
        head = "  ".join(
            safe_text(part, 100)
            for part in (
                item.get("created_at"),
                item.get("state"),
                item.get("technician"),
                rated if summary else "no summary",
                f"session {item.get('session_id')}",
            )
        )
        print("")
        print(head)
        if isinstance(summary, dict):
            try:
                lines = summary_lines(summary, item)
            except (KeyError, TypeError, AttributeError):
                lines = ["(the summary could not be read)"]
            for line in lines:
                print("    " + safe_text(line, 400))
    return EXIT_OK


async def run_connect(args: argparse.Namespace, out: Output, ssl_context: Any) -> int:
    """``connect DEVICE``: an unattended session on an enrolled device, then the console."""
    import re

    if not re.fullmatch(r"[0-9a-f]{32}", args.device):
        out.error(
            f"{safe_text(args.device, 80)} is not a device id (32 hex digits); list the "
            "devices with 'puente-tech devices'."
        )
        return EXIT_USAGE
    if args.credentials is None:
        out.error(
            "Unattended access needs your certificate: pass --cert and --key (issued with "
            "'puente-tech org certify NAME --role unattended')."
        )
        return EXIT_USAGE
    api = RelayAPI(args.relay, args.token, ssl_context)

    def asked(terms: dict[str, Any], session_id: str) -> None:
        answer_wait = max(
            int(terms.get("answer_seconds", 60)), int(terms.get("countdown_seconds", 30))
        )
        out.event(
            "asked",
            f"The device was asked (policy: {safe_text(terms.get('mode', '?'), 20)}); waiting "
            f"for it to pair, and up to {answer_wait} s for whoever is signed in to answer...",
            session_id=session_id,
            mode=terms.get("mode"),
        )

    try:
        opened = await connect_device(
            api,
            args.device,
            args.ticket,
            args.credentials,
            ticket_url=args.ticket_url,
            ssl=ssl_context,
            wait_timeout=args.wait,
            on_asked=asked,
        )
    except TimeoutError:
        out.error(f"The device did not pair within {args.wait:.0f} seconds; is it still online?")
        return EXIT_NOBODY
    except SessionLost as exc:
        out.error(f"The device refused the unattended session: {safe_text(str(exc), 600)}")
        return EXIT_DECLINED
    session, created, terms = opened.session, opened.created, opened.terms or {}
    session.rating_wait = args.rating_wait
    out.event(
        "paired",
        f"Unattended session open. Check code: {session.sas}.",
        sas=session.sas,
    )
    watch_session(session, out)
    status = await _console_until_ended(args, session, out, api)
    mode = str(terms.get("mode", ""))
    await upload_summary(
        api, created, session, out, {"device_id": args.device, "mode": mode} if mode else None
    )
    return status


async def run_devices(args: argparse.Namespace, out: Output, ssl_context: Any) -> int:
    """List enrolled devices with their presence and open alerts (all text sanitised)."""
    if getattr(args, "devices_command", None) == "show":
        return await device_details.run_show(args, out, ssl_context)
    api = RelayAPI(args.relay, args.token, ssl_context)
    devices = await asyncio.to_thread(api.list_devices)
    if out.as_json:
        print(json.dumps({"devices": devices}), flush=True)
        return EXIT_OK
    if not devices:
        print("No devices are enrolled at this relay.", flush=True)
    for device in devices:
        alerts = device.get("alerts") or [{"check": c} for c in device.get("open_alerts") or []]
        print(
            "  ".join(
                (
                    safe_text(device.get("device_id"), 64),
                    "online" if device.get("online") else "offline",
                    "open alerts: " + safe_text(", ".join(map(_alert_words, alerts)), 600)
                    if alerts
                    else "no open alerts",
                )
            ),
            flush=True,
        )
    return EXIT_OK


def _alert_words(alert: dict[str, Any]) -> str:
    """``check (severity since YYYY-MM-DD HH:MM, ticket T)``, with what the relay knows."""
    details = [str(alert["severity"])] if alert.get("severity") else []
    if isinstance(alert.get("since"), (int, float)):
        details.append("since " + time.strftime("%Y-%m-%d %H:%M", time.localtime(alert["since"])))
    if "since" in alert:
        details.append(f"ticket {alert['ticket']}" if alert.get("ticket") else "no ticket yet")
    return str(alert.get("check")) + (f" ({', '.join(details)})" if details else "")


if __name__ == "__main__":
    sys.exit(main())
