"""``puente-agent enrol`` and ``puente-agent unenrol``: the command lines.

Exit status: 0 done (enrol: stopped with Ctrl+C after running); 1 refused or failed,
with one sentence on stderr saying why and what to do; 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.app import fail, ssl_context_for
from agent.errors import TrustSetupError
from agent.i18n import LANGUAGES, set_language, t
from agent.service_install import SCOPES, default_scope
from agent.trust import state_folder

if TYPE_CHECKING:
    from agent.enrolment import DeviceState

Say = Callable[[str], None]

ENROL_DESCRIPTION = """\
Let your help desk look after this computer: it checks itself (disk, memory,
services, backups...) and tells the help desk when something fails, and technicians
may connect under the policy you are shown before anything is installed. The
enrolment token comes from your help desk ('puente-relay enrolment create').

Without --no-service it installs itself as a service (systemd): system-wide when run
as root (/etc/systemd/system, state in /var/lib/puente/device), for your account
otherwise (~/.config/systemd/user). 'puente-agent unenrol' removes everything.

exit status: 0 installed (or stopped after running), 1 refused (the sentence says why), 2 usage
"""

ENROL_EXAMPLES = """\
examples:
  sudo PUENTE_ENROL_TOKEN=pe_... puente-agent enrol --relay wss://support.example.org \\
      --org-key acme-org.pub
  puente-agent enrol --relay wss://support.example.org --org-key acme-org.pub \\
      --token pe_... --no-service
  PUENTE_ENROL_TOKEN=pe_... puente-agent enrol --relay wss://support.example.org \\
      --org-key acme-org.pub --no-service --yes
  puente-agent unenrol
"""


def default_folder() -> Path:
    """$PUENTE_STATE_DIR, else /var/lib/puente/device for root (a system service's
    state), else the agent's own state folder/device."""
    if os.environ.get("PUENTE_STATE_DIR"):
        return Path(os.environ["PUENTE_STATE_DIR"])
    if default_scope() == "system" and os.name == "posix":
        return Path("/var/lib/puente/device")
    return state_folder() / "device"


def build_enrol_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="puente-agent enrol",
        description=ENROL_DESCRIPTION,
        epilog=ENROL_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--relay", default=os.environ.get("PUENTE_RELAY"), help="the relay, wss://..."
    )
    parser.add_argument(
        "--org-key",
        type=Path,
        default=os.environ.get("PUENTE_ORG_KEY"),
        help="your organisation's public key (org.pub); the policy must be signed by it",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("PUENTE_ENROL_TOKEN"),
        help="the enrolment token (default: $PUENTE_ENROL_TOKEN, which keeps it out of ps)",
    )
    parser.add_argument(
        "--no-service",
        action="store_true",
        help="run in the foreground instead of installing a service (tests, containers, "
        "your own supervisor)",
    )
    parser.add_argument(
        "--service-scope",
        choices=SCOPES,
        default=default_scope(),
        help="system-wide or for this account (default: system for root, user otherwise)",
    )
    parser.add_argument(
        "--yes", action="store_true", help="agree to the policy shown without asking"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the device key and state live, owner-only (default: $PUENTE_STATE_DIR "
        "or the agent's state folder/device)",
    )
    parser.add_argument(
        "--fix",
        type=Path,
        action="append",
        default=[],
        metavar="BUNDLE",
        help="a signed fix (.puentefix, from 'puente-tech fix sign') that a check's action "
        "names; kept with the enrolment and run by itself only if the policy allows failure "
        "actions (repeat for several)",
    )
    parser.add_argument("--ca-file", help="CA bundle to trust for the relay's certificate")
    parser.add_argument("--lang", choices=LANGUAGES, help="language of the sentences")
    return parser


def enrol_main(argv: list[str]) -> int:
    from agent.device_link import DeviceRefused, stay_online
    from agent.enrolment import enrol
    from agent.errors import AgentError
    from agent.failure_actions import keep_bundles, read_bundles

    args = build_enrol_parser().parse_args(argv)
    if args.lang:
        set_language(args.lang)
    missing = [
        flag
        for flag, value in (
            ("--relay", args.relay),
            ("--org-key", args.org_key),
            ("--token", args.token),
        )
        if not value
    ]
    if missing:
        return fail(
            f"puente-agent enrol needs {', '.join(missing)}; see 'puente-agent enrol --help'."
        )
    folder = args.state_dir or default_folder()

    def say(line: str) -> None:
        print(line, flush=True)

    def answer(question: str) -> str:
        if args.yes:
            print(question + "yes", flush=True)
            return "yes"
        try:
            return input(question)
        except EOFError:
            return ""

    try:
        bundles = read_bundles(args.fix, args.org_key)
    except AgentError as exc:
        return fail(str(exc))
    try:
        ssl = ssl_context_for(args.ca_file)
        state = enrol(
            args.relay,
            args.org_key,
            args.token,
            folder,
            service=not args.no_service,
            scope=args.service_scope,
            answer=answer,
            say=say,
            ssl=ssl,
        )
    except TrustSetupError as exc:
        return fail(str(exc))
    keep_bundles(folder, bundles)
    say(t("enrol.done", device_id=state.device_id, folder=folder))
    policy = state.verified_policy()
    for fix in dict.fromkeys(c.action for c in policy.checks if c.action):
        if policy.failure_actions and fix not in bundles:
            say(t("actions.no_copy", fix=fix))
    if not args.no_service:
        return _install_service(state, args.service_scope, args.ca_file, say)
    try:
        asyncio.run(stay_online(state, say, ssl, ca_file=args.ca_file))
    except DeviceRefused as exc:
        return fail(t("enrol.device_refused", reason=exc))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, or SIGTERM
        return 0
    return 0


def _install_service(state: DeviceState, scope: str, ca_file: str | None, say: Say) -> int:
    """Install the service for a new enrolment; if that fails, undo the enrolment (here
    and at the relay) so that nothing is left half done."""
    from agent.enrolment import unenrol
    from agent.service_install import install

    organisation = state.verified_policy().organisation or state.device_id
    try:
        _, lines = install(state.folder, state.device_id, scope, organisation)
    except TrustSetupError as exc:
        unenrol(state.folder, lambda state: _tell_relay(state, ca_file))
        return fail(str(exc))
    for line in lines:
        say(line)
    return 0


def _tell_relay(state: DeviceState, ca_file: str | None) -> str | None:
    """Ask the relay to forget the device: None, or why it could not be told."""
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    from agent.device_link import DeviceRefused, say_goodbye
    from protocol.errors import TrustError

    try:
        asyncio.run(asyncio.wait_for(say_goodbye(state, ssl_context_for(ca_file)), 15))
    except DeviceRefused as exc:
        return str(exc)
    except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, TrustError) as exc:
        return str(exc) or type(exc).__name__
    return None


def unenrol_main(argv: list[str]) -> int:
    from agent.enrolment import read_state, unenrol
    from agent.service_install import uninstall

    parser = argparse.ArgumentParser(
        prog="puente-agent unenrol",
        description="Remove this computer's enrolment: stop and remove its service (the "
        "systemd unit and anything else enrol installed), then its device key, its state "
        "and its measurements, and ask the relay to forget it. Each removed file is named.",
    )
    parser.add_argument("--state-dir", type=Path, default=None, help="the enrolment's folder")
    parser.add_argument("--ca-file", help="CA bundle to trust for the relay's certificate")
    parser.add_argument("--lang", choices=LANGUAGES, help="language of the sentences")
    args = parser.parse_args(argv)
    if args.lang:
        set_language(args.lang)

    folder = args.state_dir or default_folder()
    try:
        if read_state(folder) is not None:
            # The service goes first, so that it does not redial a relay that forgot it.
            for line in uninstall(folder):
                print(line, flush=True)
        print(unenrol(folder, lambda state: _tell_relay(state, args.ca_file)), flush=True)
    except TrustSetupError as exc:
        return fail(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(enrol_main(sys.argv[1:]))
