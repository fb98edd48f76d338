"""``puente-agent service run|show``: what an installed service runs, and its definitions.

``run`` is the enrolled agent in the foreground, as systemd (or launchd, or the Task
Scheduler) starts it: exit status 4 (:data:`agent.service_install.EXIT_NOT_ENROLLED`)
when there is no enrolment or the relay refused the device, so the supervisor does
not restart it in vain. ``show`` prints the definition ``enrol`` would install for a
system, which the CI build workflow lints on Windows and macOS.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from agent.app import fail, ssl_context_for
from agent.i18n import LANGUAGES, set_language, t
from agent.service_install import (
    EXIT_NOT_ENROLLED,
    SCOPES,
    SYSTEMS,
    current_system,
    default_scope,
    definition_for,
    read_record,
    service_command,
    service_name,
)

DESCRIPTION = """\
The enrolled agent as a service.

  run   stay online with the relay and run the policy's checks (what the installed
        service runs; 'puente-agent enrol' installs it)
  show  print the service definition for a system: a systemd unit (linux), a launchd
        plist (macos) or a Task Scheduler XML (windows)

exit status: 0 done, 1 failed (the sentence says why), 2 usage,
             4 not enrolled or refused by the relay (a supervisor should not restart it)
"""

EXAMPLES = """\
examples:
  puente-agent service run --state-dir /var/lib/puente/device
  puente-agent service run --state-dir /srv/puente --helper-socket /run/puente/device.sock
  puente-agent service show --os macos --scope system > org.puente.device.plist
  puente-agent service show --os windows --state-dir 'C:\\ProgramData\\Puente\\device'
"""


def build_parser() -> argparse.ArgumentParser:
    from agent.enrol_command import default_folder

    parser = argparse.ArgumentParser(
        prog="puente-agent service",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser("run", help="the enrolled agent in the foreground")
    show = commands.add_parser("show", help="print a service definition")
    show.add_argument("--os", choices=SYSTEMS, default=current_system(), help="which system")
    show.add_argument("--scope", choices=SCOPES, default=default_scope(), help="system or user")
    show.add_argument("--device-id", default="0" * 32, help="the device id (names the service)")
    show.add_argument(
        "--program", type=Path, help="the one-file agent's path (default: this Python)"
    )
    for command in (run, show):
        command.add_argument(
            "--state-dir", type=Path, default=default_folder(), help="the enrolment's folder"
        )
    run.add_argument("--ca-file", help="CA bundle to trust for the relay's certificate")
    run.add_argument(
        "--helper-socket",
        type=Path,
        help="listen here for the helpers of the people signed in ('puente-agent "
        "user-helper'), which show unattended-access questions and the session's banner "
        "in their desktops (default: the socket a system service was installed with, "
        "/run/puente/NAME.sock; none for a per-user service)",
    )
    run.add_argument("--lang", choices=LANGUAGES, help="language of the sentences")
    return parser


def service_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "show":
        command = service_command(args.state_dir, args.program)
        name = service_name(args.device_id)
        definition = definition_for(
            args.os, args.scope, name, command, args.state_dir, "your help desk"
        )
        sys.stdout.buffer.write(definition)
        sys.stdout.flush()
        return 0
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from agent.device_link import DeviceRefused, stay_online
    from agent.enrolment import read_state
    from agent.errors import TrustSetupError

    if args.lang:
        set_language(args.lang)
    try:
        state = read_state(args.state_dir)
        ssl = ssl_context_for(args.ca_file)
    except TrustSetupError as exc:
        return fail(str(exc))
    if state is None:
        fail(t("service.not_enrolled", folder=args.state_dir))
        return EXIT_NOT_ENROLLED
    helper_socket = args.helper_socket
    if helper_socket is None:
        try:
            installed = read_record(args.state_dir)
        except TrustSetupError as exc:
            return fail(str(exc))
        if installed is not None and installed.helper_socket:
            helper_socket = Path(installed.helper_socket)
    try:
        asyncio.run(
            stay_online(
                state,
                lambda line: print(line, flush=True),
                ssl,
                ca_file=args.ca_file,
                helper_socket=helper_socket,
            )
        )
    except DeviceRefused as exc:
        fail(t("enrol.device_refused", reason=exc))
        return EXIT_NOT_ENROLLED
    except KeyboardInterrupt:
        return 0
    return 0
