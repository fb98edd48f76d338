"""``puente-agent``: the customer's side of a Puente remote-support session.

Exit status: 0 the session ended normally (either side ended it); 1 the session
could not start or was cut off (one plain sentence on stderr says why and what to
do); 2 the command line was wrong.

The default is a window (:mod:`agent.tk_ui`); ``--console`` (or a machine without a
display) uses the terminal. The session code comes from the command line, else from
the program's own file name (``puente-agent-417862093``), else the customer types it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
from pathlib import Path

from protocol.code import InvalidCodeError, SessionCode
from protocol.envelope import Role
from relay.client import Link, LinkError

from .audit import AgentLog
from .capabilities import default_registry
from .i18n import LANGUAGES, customer_error, set_language, t
from .session import AgentSession
from .settings import BakedSettings, SettingsError, code_from_filename, load_baked
from .ui import ConsoleUI, CustomerUI

EXAMPLES = """\
examples:
  puente-agent --relay wss://support.example.org 417-862-093
  puente-agent --relay wss://support.example.org --console 417-862-093
  PUENTE_RELAY=ws://127.0.0.1:8765 puente-agent --console
  ./puente-agent-417862093
"""


def build_parser(baked: BakedSettings | None = None) -> argparse.ArgumentParser:
    baked = baked or BakedSettings()
    parser = argparse.ArgumentParser(
        prog="puente-agent",
        description=t("app.help"),
        epilog=EXAMPLES + "\n" + t("app.help_log"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("code", nargs="?", help=t("opt.code"))
    parser.add_argument(
        "--relay",
        default=os.environ.get("PUENTE_RELAY") or baked.relay,
        help=t("opt.relay"),
    )
    parser.add_argument("--console", action="store_true", help=t("opt.console"))
    parser.add_argument(
        "--lang",
        choices=LANGUAGES,
        help=t("opt.lang"),
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=os.environ.get("PUENTE_LOG_DIR"),
        help=t("opt.log_dir"),
    )
    parser.add_argument("--ca-file", help=t("opt.ca_file"))
    parser.add_argument("-v", "--verbose", action="store_true", help=t("opt.verbose"))
    return parser


def fail(message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    return 1


def main(argv: list[str] | None = None) -> int:
    try:
        baked = load_baked()
    except SettingsError as exc:
        return fail(str(exc))
    args = build_parser(baked).parse_args(argv)
    if args.lang:
        set_language(args.lang)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if not args.relay:
        return fail(t("app.no_relay"))
    code: SessionCode | None = None
    if args.code:
        try:
            code = SessionCode.parse(args.code)
        except InvalidCodeError:
            if args.console:
                return fail(t("app.bad_code", code=args.code))
    else:
        code = code_from_filename(sys.argv[0])
    if not args.console:
        from . import tk_ui

        problem = tk_ui.display_problem()
        if problem is None:
            return tk_ui.run_window(args, code, baked)
        print(t("app.no_display", detail=problem), flush=True)
    if code is None:
        try:
            code_text = input(t("app.code_prompt"))
        except EOFError:
            return fail(t("app.no_code"))
        try:
            code = SessionCode.parse(code_text)
        except InvalidCodeError:
            return fail(t("app.bad_code", code=code_text.strip()))
    try:
        return asyncio.run(run_agent(args.relay, code, args.log_dir, args.ca_file))
    except KeyboardInterrupt:
        print("\n" + t("app.interrupted"), flush=True)
        return 0


def ssl_context_for(ca_file: str | None) -> ssl.SSLContext | None:
    if not ca_file:
        return None
    return ssl.create_default_context(cafile=ca_file)


async def run_agent(
    relay: str,
    code: SessionCode,
    log_dir: Path | None,
    ca_file: str | None,
    ui: CustomerUI | None = None,
) -> int:
    """Join the session and serve it with ``ui`` (the console by default); exit status."""
    console = ConsoleUI() if ui is None else None
    ui = ui or console
    assert ui is not None
    if console is not None:
        console.say(t("app.connecting", code=code))
    try:
        link = await Link.open(relay, Role.AGENT, code, ssl=ssl_context_for(ca_file))
    except LinkError as exc:
        message = customer_error(exc, relay)
        if console is None:
            ui.session_ended(message)
        return fail(message)
    audit = AgentLog.for_session(log_dir, code.nameplate)
    session = AgentSession(link, ui, default_registry(), audit)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows; not main thread
        loop.add_signal_handler(
            signal.SIGINT, lambda: asyncio.ensure_future(session.end("ended by the customer"))
        )
    try:
        reason = await session.run()
    except (LinkError, TimeoutError) as exc:
        message = customer_error(exc, relay, link.resume_grace)
        ui.session_ended(message)
        audit.write(f"Session cut off: {exc}")
        print(message, file=sys.stderr, flush=True)
        return 1
    finally:
        audit.close()
        await link.close()
    ui.session_ended(session.customer_reason(reason))
    if console is not None:
        console.say(t("app.log_kept", path=audit.path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
