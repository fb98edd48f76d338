"""``puente-agent``: the customer's side of a Puente remote-support session.

Exit status: 0 the session ended normally (either side ended it); 1 the session
could not start or was cut off (one plain sentence on stderr says why and what to
do); 2 the command line was wrong.

The default is a window (:mod:`agent.tk_ui`); ``--console`` (or a machine without a
display) uses the terminal. The session code comes from the command line (which
other users of the computer can see in ``ps``: the agent advises against it), else
from ``PUENTE_CODE`` (removed from the environment once read, so no program the
session starts inherits it), else from the program's own file name
(``puente-agent-417862093``), else the customer types it (standard input in console
mode). A file named after the nameplate alone (``puente-agent-417``, as the join page
serves it) asks only for the 6 digits the technician reads out.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from agent.app import fail, run_agent
from agent.errors import SettingsError
from agent.i18n import LANGUAGES, set_language, t
from agent.settings import (
    BakedSettings,
    code_from_filename,
    code_with_nameplate,
    load_baked,
    nameplate_from_filename,
)
from protocol.allocator import keep_freed_memory
from protocol.code import InvalidCodeError, SessionCode
from protocol.process import quiet_library_warnings, quiet_on_closed_stdout

# The session's modules (the link, the capabilities with the screen pipeline and
# numpy, the trust checks) are imported where they are used (agent.app), not here:
# the window must be on the screen before they load (acceptance: a window in under
# 3 seconds).

EXAMPLES = """\
examples:
  puente-agent --relay wss://support.example.org          (type the code when asked)
  PUENTE_CODE=417-862-093 puente-agent --relay wss://support.example.org --console
  PUENTE_RELAY=ws://127.0.0.1:8765 puente-agent --console      (type the code when asked)
  ./puente-agent-417862093
  puente-agent --org-key acme-org.pub --relay wss://support.example.org 417-862-093
  puente-agent --relay wss://support.example.org --org-key acme-org.pub --console \
      --request "The printer prints blank pages" --category printing
  puente-agent audit verify ~/.local/state/puente/session-20260102-100000-417.log
  puente-agent checks run --once --policy acme.policy --org-key acme-org/org.pub
  puente-agent enrol --relay wss://support.example.org --org-key acme-org.pub --token pe_... --no-service
  puente-agent service show --os macos      (the service definitions: 'service --help')
  puente-agent user-helper        (in your desktop: a service's questions and banner)
"""

AUDIT_DESCRIPTION = """\
Check a Puente session log: every entry carries the hash of the one before, so an
edited, removed or inserted entry is found. Prints the first broken entry.

exit status: 0 the log is intact, 1 it was changed (or cannot be read), 2 usage
"""


def build_parser(baked: BakedSettings | None = None) -> argparse.ArgumentParser:
    baked = baked or BakedSettings()
    parser = argparse.ArgumentParser(
        prog="puente-agent",
        description=t("app.help"),
        epilog=EXAMPLES
        + "\n"
        + t("app.help_code")
        + "\n\n"
        + t("app.help_org")
        + "\n\n"
        + t("app.help_log"),
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
    parser.add_argument(
        "--org-key",
        type=Path,
        default=os.environ.get("PUENTE_ORG_KEY"),
        help=t("opt.org_key"),
    )
    parser.add_argument("--request", metavar="TEXT", help=t("opt.request"))
    parser.add_argument("--category", metavar="C", help=t("opt.category"))
    parser.add_argument("-v", "--verbose", action="store_true", help=t("opt.verbose"))
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

    from agent.audit import verify_log

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


@quiet_on_closed_stdout
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["audit"]:
        quiet_library_warnings()
        return audit_main(argv[1:])
    if argv[:1] in (["enrol"], ["unenrol"]):
        from agent.enrol_command import enrol_main, unenrol_main

        quiet_library_warnings()
        return (enrol_main if argv[0] == "enrol" else unenrol_main)(argv[1:])
    if argv[:1] == ["unattended"]:
        from agent.unattended import unattended_main

        quiet_library_warnings()
        return unattended_main(argv[1:])
    if argv[:1] == ["user-helper"]:
        from agent.user_helper import user_helper_main

        quiet_library_warnings()
        return user_helper_main(argv[1:])
    if argv[:1] == ["service"]:
        from agent.service_command import service_main

        quiet_library_warnings()
        return service_main(argv[1:])
    if argv[:1] == ["checks"]:
        from agent.monitoring.command import checks_main

        quiet_library_warnings()
        return checks_main(argv[1:])
    try:
        baked = load_baked()
    except SettingsError as exc:
        return fail(str(exc))
    args = build_parser(baked).parse_args(argv)
    quiet_library_warnings(show=args.verbose)
    if args.lang:
        set_language(args.lang)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if not args.relay:
        return fail(t("app.no_relay"))
    keep_freed_memory()  # file copies through the tunnel (protocol.allocator)
    if args.request is not None:
        from agent.help_request import request_help

        if not args.console:
            from agent import tk_ui

            problem = tk_ui.display_problem()
            if problem is None:  # the window's Get help, its form filled in from here
                from agent.tk_help import get_help

                return tk_ui.run_window(args, None, baked, None, get_help(args, baked))
            print(t("app.no_display", detail=problem), flush=True)
        return asyncio.run(
            request_help(
                args.relay,
                args.request,
                args.category,
                args.log_dir,
                args.ca_file,
                args.org_key or baked,
            )
        )
    code: SessionCode | None = None
    # Read once and removed: a shell or fix started in the session must not inherit it.
    code_text = os.environ.pop("PUENTE_CODE", "").strip()
    if args.code:
        print(t("app.code_visible"), file=sys.stderr, flush=True)
        code_text = args.code
    if code_text:
        try:
            code = SessionCode.parse(code_text)
        except InvalidCodeError:
            if args.console:
                return fail(t("app.bad_code", code=code_text))
    nameplate: str | None = None
    if not code_text:
        # The one-file build's own name (sys.executable) or the script's (argv[0]).
        names = [sys.executable] if getattr(sys, "frozen", False) else []
        names.append(sys.argv[0])
        code = next(filter(None, map(code_from_filename, names)), None)
        nameplate = next(filter(None, map(nameplate_from_filename, names)), None)
    if not args.console:
        from agent import tk_ui

        problem = tk_ui.display_problem()
        if problem is None:
            offer = None
            if code is None and nameplate is None:  # no code yet: Get help too
                from agent.tk_help import get_help

                offer = get_help(args, baked)
            return tk_ui.run_window(args, code, baked, nameplate, offer)
        print(t("app.no_display", detail=problem), flush=True)
    if code is None:
        prompt = t("app.digits_prompt", nameplate=nameplate) if nameplate else t("app.code_prompt")
        try:
            code_text = input(prompt)
        except EOFError:
            return fail(t("app.no_code"))
        try:
            code = code_with_nameplate(code_text, nameplate)
        except InvalidCodeError:
            return fail(t("app.bad_code", code=code_text.strip()))
    try:
        return asyncio.run(
            run_agent(args.relay, code, args.log_dir, args.ca_file, args.org_key or baked)
        )
    except KeyboardInterrupt:
        print("\n" + t("app.interrupted"), flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
