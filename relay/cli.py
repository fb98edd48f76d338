"""``puente-relay``: run the relay and manage technician accounts.

Every flag also reads an environment variable (shown in ``--help``), so a
container can be configured from its environment alone. Errors an operator can
meet print one sentence to stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from .errors import RelayError
from .server import RelayConfig, RelayServer
from .store import SQLiteStore

EXIT_USAGE = 2

_DESCRIPTION = """\
The Puente relay pairs a customer's agent with a technician and forwards their
end-to-end encrypted traffic; it never sees screens, keys or files. It also serves
a small REST API for help desks (see /openapi.json) and /healthz.
"""

_EPILOG = """\
examples:
  puente-relay serve --data-dir /var/lib/puente --host 0.0.0.0 --public-url https://relay.example.com
  puente-relay technician add "Ana Lopez" --data-dir /var/lib/puente
  puente-relay technician list --data-dir /var/lib/puente
  puente-relay technician remove "Ana Lopez" --data-dir /var/lib/puente
"""


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in (_env(name) or "").split(",") if item.strip()]


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _seconds_or_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or a positive number of seconds")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=_env("PUENTE_DATA_DIR"),
        metavar="DIR",
        help="directory holding the relay database relay.sqlite3, created if missing "
        "(env PUENTE_DATA_DIR; required)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``puente-relay`` (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="puente-relay",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the relay until SIGTERM or Ctrl-C",
        description="Run the relay. Once listening it prints one line to stdout: "
        "'puente-relay listening on http://HOST:PORT' (the real port, also with --port 0).",
    )
    _add_data_dir(serve)
    serve.add_argument(
        "--host",
        default=_env("PUENTE_HOST", "127.0.0.1"),
        help="address to listen on; 0.0.0.0 for every interface (env PUENTE_HOST; "
        "default 127.0.0.1)",
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=_env("PUENTE_PORT", "8765"),
        help="TCP port for WebSocket and REST; 0 picks a free one (env PUENTE_PORT; default 8765)",
    )
    serve.add_argument(
        "--public-url",
        default=_env("PUENTE_PUBLIC_URL"),
        metavar="URL",
        help="URL customers reach the relay at, used in join links, e.g. "
        "https://relay.example.com (env PUENTE_PUBLIC_URL; default http://HOST:PORT)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=_positive_seconds,
        default=_env("PUENTE_IDLE_TIMEOUT", "1800"),
        metavar="S",
        help="end a paired session after S seconds without traffic (env PUENTE_IDLE_TIMEOUT; "
        "default 1800)",
    )
    serve.add_argument(
        "--resume-grace",
        type=_seconds_or_zero,
        default=_env("PUENTE_RESUME_GRACE", "60"),
        metavar="S",
        help="seconds a session waits for an end whose network dropped to reconnect and "
        "resume, without asking the customer again; 0 turns resume off "
        "(env PUENTE_RESUME_GRACE; default 60)",
    )
    serve.add_argument(
        "--nameplate-ttl",
        type=_positive_seconds,
        default=_env("PUENTE_NAMEPLATE_TTL", "600"),
        metavar="S",
        help="seconds a new session code stays claimable (env PUENTE_NAMEPLATE_TTL; default 600)",
    )
    serve.add_argument(
        "--allowed-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="a web origin allowed to open WebSocket sessions, e.g. https://desk.example.com; "
        "repeat for more. Native clients send no Origin and are always allowed "
        "(env PUENTE_ALLOWED_ORIGINS, comma-separated; default none)",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=None,
        metavar="ADDR",
        help="IP address of a reverse proxy whose X-Forwarded-For header names the real client "
        "(for rate limits and logs); repeat for more (env PUENTE_TRUSTED_PROXIES, "
        "comma-separated; default none: the TCP peer is the client)",
    )
    serve.add_argument(
        "--log-level",
        default=_env("PUENTE_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="log verbosity on stderr; logs never contain forwarded data or tokens "
        "(env PUENTE_LOG_LEVEL; default INFO)",
    )

    technician = commands.add_parser(
        "technician",
        help="manage technician accounts and their API tokens",
        description="Manage technician accounts. Works while the relay is running.",
    )
    actions = technician.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="create an account and print its API token",
        description="Create a technician account. The API token is printed once, as the last "
        "line of output; the relay keeps only its hash.",
    )
    add.add_argument("name", help="the technician's display name, shown to customers")
    _add_data_dir(add)
    listing = actions.add_parser("list", help="list accounts", description="List accounts.")
    _add_data_dir(listing)
    remove = actions.add_parser(
        "remove",
        help="disable an account; its token stops working",
        description="Disable a technician account. Its API token stops working at once; its "
        "past sessions stay on record.",
    )
    remove.add_argument("name", help="the technician's name as shown by 'technician list'")
    _add_data_dir(remove)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``puente-relay`` with ``argv`` (default: the command line); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.data_dir:
        parser.error("--data-dir (or the PUENTE_DATA_DIR environment variable) is required")
    try:
        if args.command == "serve":
            return _serve(args)
        return _technician(args)
    except (RelayError, ValueError) as exc:
        print(f"puente-relay: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # websockets logs frame contents at DEBUG; the relay must never log forwarded data.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    origins = args.allowed_origin or _env_list("PUENTE_ALLOWED_ORIGINS")
    proxies = args.trusted_proxy or _env_list("PUENTE_TRUSTED_PROXIES")
    config = RelayConfig(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        public_url=args.public_url or None,
        idle_timeout=args.idle_timeout,
        nameplate_ttl=args.nameplate_ttl,
        resume_grace=args.resume_grace,
        allowed_origins=tuple(origins),
        trusted_proxies=tuple(proxies),
    )
    return asyncio.run(_run(config))


async def _run(config: RelayConfig) -> int:
    relay = RelayServer(config)
    await relay.start()
    host = f"[{config.host}]" if ":" in config.host else config.host
    print(f"puente-relay listening on http://{host}:{relay.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await relay.close()
    return 0


def _technician(args: argparse.Namespace) -> int:
    store = SQLiteStore(args.data_dir)
    try:
        if args.action == "add":
            technician, token = store.add_technician(args.name, time.time())
            print(
                f"Created technician {technician.name!r}. Their API token follows; it is shown "
                "only this once, so hand it over now and keep it secret:"
            )
            print(token)
        elif args.action == "list":
            technicians = store.list_technicians()
            if not technicians:
                print("No technicians yet; add one with 'puente-relay technician add NAME'.")
            for tech in technicians:
                created = datetime.fromtimestamp(tech.created_at, UTC).strftime("%Y-%m-%d %H:%M")
                status = "removed" if tech.disabled else "active"
                print(f"{tech.name}\t{status}\tcreated {created} UTC\tid {tech.id}")
        else:
            if not store.disable_technician(args.name):
                print(
                    f"puente-relay: No active technician is named {args.name!r}; see "
                    "'puente-relay technician list'.",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            print(f"Removed technician {args.name!r}; their API token no longer works.")
        return 0
    finally:
        store.close()


if __name__ == "__main__":
    raise SystemExit(main())
