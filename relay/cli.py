"""``puente-relay``: run the relay and manage technician accounts.

Every flag also reads an environment variable (shown in ``--help``), so a
container can be configured from its environment alone. Errors an operator can
meet print one sentence to stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from protocol.allocator import keep_freed_memory
from protocol.process import quiet_library_warnings, quiet_on_closed_stdout

from . import audit, device_cli, queue_cli, self_help_cli
from .alert_delivery import DEFAULT_WORKERS as ALERT_WORKERS
from .config import RelayConfig
from .connectors import Connector, RequestTrackerConnector, WebhookConnector
from .downloads import SYSTEMS, downloads_command
from .errors import ConfigError, RelayError
from .outbox import DeliverySettings
from .server import RelayServer
from .sqlite_store import DATABASE_NAME, SQLiteStore
from .store import RelayStore
from .stores import open_store

EXIT_USAGE = 2
#: ``audit verify`` found an entry that does not hold.
EXIT_TAMPERED = 1

_DESCRIPTION = """\
The Puente relay pairs a customer's agent with a technician and forwards their
end-to-end encrypted traffic; it never sees screens, keys or files. It also serves
a small REST API for help desks (see /openapi.json) and /healthz.
"""

_EPILOG = """\
examples:
  puente-relay serve --data-dir /var/lib/puente --host 0.0.0.0 --public-url https://relay.example.com
  puente-relay serve --data-dir /var/lib/puente --host 0.0.0.0 --tls-cert cert.pem --tls-key key.pem
  PUENTE_DATABASE_URL=postgresql://puente@db/puente puente-relay serve --redis redis://redis:6379/0
  puente-relay health
  puente-relay technician add "Ana Lopez" --data-dir /var/lib/puente
  puente-relay technician add "Bo Diaz" --skills printing,network,es --capacity 2 --data-dir /var/lib/puente
  puente-relay technician update "Bo Diaz" --capacity 3 --data-dir /var/lib/puente
  puente-relay categories set categories.json --data-dir /var/lib/puente
  puente-relay queue list --data-dir /var/lib/puente ; puente-relay queue assign ID "Bo Diaz" --data-dir ...
  puente-relay technician list --data-dir /var/lib/puente
  puente-relay technician remove "Ana Lopez" --data-dir /var/lib/puente
  PUENTE_WEBHOOK_SECRET=... puente-relay serve --data-dir /var/lib/puente \
      --webhook https://desk.example.com/hooks/puente
  PUENTE_RT_TOKEN=... puente-relay serve --data-dir /var/lib/puente --rt-url https://rt.example.com
  puente-relay audit verify --data-dir /var/lib/puente
  puente-relay audit export --data-dir /var/lib/puente --out audit.jsonl
  puente-relay deliveries --data-dir /var/lib/puente
"""


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in (_env(name) or "").split(",") if item.strip()]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be zero or a positive number of seconds")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


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


def _env_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    env: str,
    help: str,
    *,
    default: str | None = None,
    shown: str | None = None,
    **kwargs: Any,
) -> None:
    """Add ``flag``, taken from the environment variable ``env`` when not given.

    Its help ends "(env ENV; SHOWN)", SHOWN being "default DEFAULT" unless told,
    so that ``--help`` always names the real variable and default.
    """
    if shown is None and default is not None:
        shown = f"default {default}"
    tail = f"env {env}" + (f"; {shown}" if shown else "")
    parser.add_argument(flag, default=_env(env, default), help=f"{help} ({tail})", **kwargs)


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    _env_option(
        parser,
        "--data-dir",
        "PUENTE_DATA_DIR",
        "directory holding the relay database relay.sqlite3, created if missing",
        shown="required unless --database-url is given",
        metavar="DIR",
    )
    _env_option(
        parser,
        "--database-url",
        "PUENTE_DATABASE_URL",
        "PostgreSQL database shared by several relay nodes, e.g. "
        "postgresql://puente:PASSWORD@db.internal/puente, instead of SQLite; prefer the "
        "environment variable, command lines are visible to other users",
        shown="default none: SQLite in --data-dir",
        metavar="URL",
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
    option = functools.partial(_env_option, serve)
    option(
        "--host",
        "PUENTE_HOST",
        "address to listen on; 0.0.0.0 for every interface",
        default="127.0.0.1",
    )
    option(
        "--port",
        "PUENTE_PORT",
        "TCP port for WebSocket and REST; 0 picks a free one",
        default="8765",
        type=_port,
    )
    option(
        "--public-url",
        "PUENTE_PUBLIC_URL",
        "URL customers reach the relay at, used in join links, e.g. https://relay.example.com",
        shown="default http://HOST:PORT",
        metavar="URL",
    )
    option(
        "--idle-timeout",
        "PUENTE_IDLE_TIMEOUT",
        "end a paired session after S seconds without traffic",
        default="1800",
        type=_positive_seconds,
        metavar="S",
    )
    option(
        "--resume-grace",
        "PUENTE_RESUME_GRACE",
        "seconds a session waits for an end whose network dropped to reconnect and "
        "resume, without asking the customer again; 0 turns resume off",
        default="60",
        type=_seconds_or_zero,
        metavar="S",
    )
    option(
        "--nameplate-ttl",
        "PUENTE_NAMEPLATE_TTL",
        "seconds a new session code stays claimable",
        default="600",
        type=_positive_seconds,
        metavar="S",
    )
    # Repeatable; their variables hold comma-separated lists, read in _serve.
    serve.add_argument(
        "--allowed-origin",
        action="append",
        metavar="ORIGIN",
        help="a web origin allowed to open WebSocket sessions, e.g. https://desk.example.com; "
        "repeat for more. Native clients send no Origin and are always allowed "
        "(env PUENTE_ALLOWED_ORIGINS, comma-separated; default none)",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        metavar="ADDR",
        help="IP address of a reverse proxy whose X-Forwarded-For header names the real client "
        "(for rate limits and logs); repeat for more (env PUENTE_TRUSTED_PROXIES, "
        "comma-separated; default none: the TCP peer is the client)",
    )
    option(
        "--tls-cert",
        "PUENTE_TLS_CERT",
        "PEM certificate (chain) to serve wss:// and https:// directly; reloaded on SIGHUP",
        shown="default none: plain HTTP for loopback or behind a TLS reverse proxy, "
        "see docs/deploy.md",
        metavar="FILE",
    )
    option(
        "--tls-key",
        "PUENTE_TLS_KEY",
        "PEM private key of --tls-cert, without a passphrase",
        metavar="FILE",
    )
    option(
        "--drain-timeout",
        "PUENTE_DRAIN_TIMEOUT",
        "on SIGTERM, refuse new sessions and let paired ones go on for up to S "
        "seconds before telling everyone to reconnect; a second SIGTERM stops at once",
        default="0",
        type=_seconds,
        metavar="S",
    )
    option(
        "--redis",
        "PUENTE_REDIS_URL",
        "Redis shared by the relay nodes of a cluster, e.g. redis://redis:6379/0; every "
        "node must also use the same --database-url",
        shown="default none: a single relay",
        metavar="URL",
    )
    option(
        "--node-url",
        "PUENTE_NODE_URL",
        "how the other nodes reach this one, e.g. ws://10.0.3.7:8765, on a private network",
        shown="default ws(s)://HOST:PORT, the host name when listening on every interface",
        metavar="URL",
    )
    option(
        "--max-connections",
        "PUENTE_MAX_CONNECTIONS",
        "WebSocket connections this process accepts at once, two per session; more are "
        "refused with 503. It is lowered to fit the open-file limit (ulimit -n)",
        default="10000",
        type=_count,
        metavar="N",
    )
    option(
        "--max-connections-per-ip",
        "PUENTE_MAX_CONNECTIONS_PER_IP",
        "WebSocket connections one client address may hold (behind a proxy: the forwarded "
        "address); more are refused with 503, so one address cannot fill the relay",
        shown="default a tenth of --max-connections",
        type=_count,
        metavar="N",
    )
    option(
        "--max-half-open-per-ip",
        "PUENTE_MAX_HALF_OPEN_PER_IP",
        "connections one address may have open before their HTTP request is complete "
        "(each is closed after 10 s); more are closed at once. Trusted proxies are exempt",
        default="64",
        type=_count,
        metavar="N",
    )
    option(
        "--max-handshakes",
        "PUENTE_MAX_HANDSHAKES",
        "connections from all addresses together that are open and not yet upgraded to a "
        "WebSocket (TLS and HTTP handshakes, REST calls, downloads); more get 503 at once. "
        "The relay needs --max-connections + this + 64 open files",
        shown="default a tenth of --max-connections, at least 64",
        type=_count,
        metavar="N",
    )
    option(
        "--sessions-per-minute",
        "PUENTE_SESSIONS_PER_MINUTE",
        "sessions one technician token may create in a minute; more get 429",
        default="30",
        type=_count,
        metavar="N",
    )
    option(
        "--node-timeout",
        "PUENTE_NODE_TIMEOUT",
        "with --redis: a node silent for S seconds counts as lost; its waiting sessions "
        "move to other nodes and its paired ones are recorded as ended",
        default="6",
        type=_positive_seconds,
        metavar="S",
    )
    option(
        "--agent-download-url",
        "PUENTE_AGENT_DOWNLOAD_URL",
        "where customers download the agent, linked from the join page",
        shown="default: the page tells them to ask their help desk",
        metavar="URL",
    )
    option(
        "--download-rate",
        "PUENTE_DOWNLOAD_RATE",
        "MB/s that all agent downloads together may take (see 'downloads'); more leaves "
        "less CPU for forwarding sessions (bench/downloads.py)",
        default="64",
        type=float,
        metavar="MB_PER_S",
    )
    helpdesk = serve.add_argument_group(
        "help-desk connectors",
        "Session events (join link at creation, summary at the end) are queued in the "
        "database and delivered until the help desk acknowledges them (HTTP 2xx), with "
        "exponential backoff. Prefer the environment variables for secrets: command lines "
        "are visible to other users of the machine.",
    )
    connector = functools.partial(_env_option, helpdesk)
    connector(
        "--webhook",
        "PUENTE_WEBHOOK_URL",
        "POST every session event as signed JSON to URL (https://, or http:// on loopback)",
        metavar="URL",
    )
    connector(
        "--webhook-secret",
        "PUENTE_WEBHOOK_SECRET",
        "HMAC-SHA256 key for the webhook's X-Puente-Signature, at least 16 characters",
        shown="required with --webhook",
        metavar="SECRET",
    )
    connector(
        "--rt-url",
        "PUENTE_RT_URL",
        "Request Tracker base URL, e.g. https://rt.example.com: comments on the ticket "
        "(numeric ticket ids) through REST 2.0",
        metavar="URL",
    )
    connector("--rt-token", "PUENTE_RT_TOKEN", "RT auth token", metavar="TOKEN")
    connector(
        "--rt-user",
        "PUENTE_RT_USER",
        "RT user for basic authentication, instead of a token",
        metavar="USER",
    )
    connector(
        "--rt-password", "PUENTE_RT_PASSWORD", "RT password for --rt-user", metavar="PASSWORD"
    )
    connector(
        "--rt-queue",
        "PUENTE_RT_QUEUE",
        "RT queue where customers' help requests open tickets",
        default="General",
        metavar="QUEUE",
    )
    connector(
        "--delivery-timeout",
        "PUENTE_DELIVERY_TIMEOUT",
        "seconds to wait for a help desk to answer one delivery",
        default="10",
        type=_positive_seconds,
        metavar="S",
    )
    connector(
        "--delivery-workers",
        "PUENTE_DELIVERY_WORKERS",
        "Request Tracker calls the relay makes at once for enrolled devices' alerts, each "
        "for a different alert (one alert's ticket, comments and resolution still go in "
        "order); keep it at or under your RT server's CPUs and worker processes "
        "(rt-server: 10): past them each call only gets slower (docs/PERFORMANCE.md)",
        default=str(ALERT_WORKERS),
        type=_count,
        metavar="N",
    )
    connector(
        "--retry-max",
        "PUENTE_RETRY_MAX",
        "longest wait between two delivery attempts; waits double from 2 s up to this, with jitter",
        default="900",
        type=_positive_seconds,
        metavar="S",
    )
    option(
        "--log-level",
        "PUENTE_LOG_LEVEL",
        "log verbosity on stderr; logs never contain forwarded data or tokens",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
    )
    serve.epilog = (
        "GET /metrics serves Prometheus metrics to this machine only, unless the "
        "PUENTE_METRICS_TOKEN environment variable holds a token that scrapers send as "
        "'Authorization: Bearer TOKEN'."
    )

    health = commands.add_parser(
        "health",
        help="exit 0 if the relay on this machine answers /healthz (for container healthchecks)",
        description="Ask the relay listening on this machine for /healthz; exit 0 if it is "
        "healthy, 1 if not. Reads PUENTE_PORT and PUENTE_TLS_CERT like serve does.",
    )
    _env_option(health, "--port", "PUENTE_PORT", "the relay's port", default="8765", type=_port)
    health.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=bool(_env("PUENTE_TLS_CERT")),
        help="use https (default: yes when PUENTE_TLS_CERT is set)",
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
    queue_cli.add_profile_options(add, new=True)
    _add_data_dir(add)
    update = actions.add_parser(
        "update",
        help="change a technician's skills, capacity or availability",
        description="Change what the help queue routes to a technician.",
    )
    update.add_argument("name", help="the technician's name as shown by 'technician list'")
    queue_cli.add_profile_options(update, new=False)
    _add_data_dir(update)
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

    _add_data_dir(queue_cli.add_categories_command(commands))
    for queue_parser in queue_cli.add_queue_command(commands):
        _add_data_dir(queue_parser)
    for fixes_parser in self_help_cli.add_fixes_command(commands):
        _add_data_dir(fixes_parser)

    audit_parser = commands.add_parser(
        "audit",
        help="check or export the tamper-evident audit log",
        description="The relay keeps a hash-chained, append-only log of session metadata "
        "events (created, paired, ended, summary stored, help desk acknowledged, a "
        "device's failure action). It holds no screen content, keystrokes or file contents.",
    )
    audit_actions = audit_parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = audit_actions.add_parser(
        "verify",
        help="check the hash chain; exit 0 if intact, 1 naming the first bad entry",
        description="Recompute every entry's hash and link. Exit 0 if the log is intact; "
        "exit 1 naming the first entry that was altered, removed or inserted. Works while "
        "the relay is running.",
    )
    _add_data_dir(verify)
    verify.add_argument("--json", action="store_true", help="print the verdict as JSON")
    export = audit_actions.add_parser(
        "export",
        help="write the log as JSON lines for a compliance review",
        description="Write every entry, oldest first, one JSON object per line (seq, at, "
        "event_id, type, session_id, data, prev_hash, hash), then print the head hash. "
        "The export is verified as it is written; a broken chain is reported (exit 1).",
    )
    _add_data_dir(export)
    export.add_argument(
        "--out", required=True, metavar="FILE", help="file to write; - for standard output"
    )

    _add_downloads_parser(commands)

    deliveries = commands.add_parser(
        "deliveries",
        help="list help-desk events not yet acknowledged",
        description="List the outbox rows the help desks have not acknowledged yet, with "
        "their attempts, next attempt and last error.",
    )
    _add_data_dir(deliveries)
    deliveries.add_argument("--all", action="store_true", help="include delivered events")
    deliveries.add_argument("--json", action="store_true", help="one JSON object per line")
    device_cli.add_commands(commands, _add_data_dir)
    return parser


def _add_downloads_parser(commands: Any) -> None:
    """``puente-relay downloads add|list|remove`` (relay.downloads)."""
    downloads = commands.add_parser(
        "downloads",
        help="the one-file agents customers download from the join page",
        description="Keep the organisation's one-file agents (installers/build.py) in the "
        "relay's data directory. The join page offers the one for the customer's system "
        "first, with its size and SHA-256, named after the session's nameplate "
        "(puente-agent-417, .exe on Windows) so that the agent asks only for the 6 digits "
        "the technician reads out. Works while the relay is running.",
    )
    actions = downloads.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="add (or replace) the agent for one system",
        description="Copy FILE in as the agent for --os, with its SHA-256. If the "
        "organisation signed it ('puente-tech org sign-agent': --signature, or FILE.sig "
        "if present), the signature is checked against --org-key first and the join page "
        "says who signed the agent; a signature that does not verify keeps it out.",
        epilog="example:\n  puente-relay downloads add dist/puente-agent --os linux "
        "--org-key org.pub --data-dir /var/lib/puente",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("file", type=Path, metavar="FILE", help="the built one-file agent")
    add.add_argument("--os", required=True, choices=SYSTEMS, help="the system it runs on")
    add.add_argument("--signature", type=Path, metavar="SIG", help="signature file (optional)")
    add.add_argument(
        "--org-key",
        type=Path,
        metavar="ORG.pub",
        help="the organisation's public key, to check the signature (needed when signed)",
    )
    add.add_argument("--json", action="store_true", help="print the stored entry as JSON")
    listing = actions.add_parser("list", help="list the stored agents")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    remove = actions.add_parser("remove", help="stop offering the agent for one system")
    remove.add_argument("--os", required=True, choices=SYSTEMS, help="the system")
    for parser in (add, listing, remove):
        _add_data_dir(parser)


@quiet_on_closed_stdout
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``puente-relay`` with ``argv`` (default: the command line); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Library warnings are for developers; --log-level DEBUG logs them.
    quiet_library_warnings(show=getattr(args, "log_level", None) == "DEBUG")
    if args.command == "health":
        return _health(args)
    if not args.data_dir and not args.database_url:
        parser.error(
            "--data-dir (or the PUENTE_DATA_DIR environment variable) is required, "
            "unless the store is PostgreSQL (--database-url or PUENTE_DATABASE_URL)"
        )
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "audit":
            return _audit(args)
        if args.command == "deliveries":
            return _deliveries(args)
        if args.command in ("categories", "queue", "fixes"):
            store = open_store(args.data_dir, args.database_url)
            try:
                run = {
                    "categories": queue_cli.run_categories,
                    "queue": queue_cli.run_queue,
                    "fixes": self_help_cli.run_fixes,
                }[args.command]
                return run(store, args)
            finally:
                store.close()
        if args.command == "downloads":
            return downloads_command(args)
        if args.command == "enrolment":
            return device_cli.run_enrolment(args)
        if args.command == "devices":
            return device_cli.run_devices(args, functools.partial(_existing_store, args))
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
    connectors = _connectors(args)
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
        tls_cert=args.tls_cert or None,
        tls_key=args.tls_key or None,
        metrics_token=_env("PUENTE_METRICS_TOKEN") or None,
        drain_timeout=args.drain_timeout,
        database_url=args.database_url or None,
        redis_url=args.redis or None,
        node_url=args.node_url or None,
        max_connections=args.max_connections,
        max_connections_per_ip=args.max_connections_per_ip,
        max_half_open_per_ip=args.max_half_open_per_ip,
        max_handshakes=args.max_handshakes,
        sessions_per_token_per_minute=args.sessions_per_minute,
        cluster_heartbeat_ttl=args.node_timeout,
        cluster_heartbeat_interval=args.node_timeout / 3,
        connectors=connectors,
        delivery=DeliverySettings(
            timeout=args.delivery_timeout,
            backoff_cap=args.retry_max,
            alert_workers=args.delivery_workers,
        ),
        agent_download_url=args.agent_download_url or None,
        download_rate=args.download_rate * 1e6,
    )
    keep_freed_memory()  # forwarding bulk data (protocol.allocator)
    return asyncio.run(_run(config))


def _connectors(args: argparse.Namespace) -> tuple[Connector, ...]:
    """The help-desk connectors the flags ask for; ConfigError if they do not fit together."""
    connectors: list[Connector] = []
    if args.webhook:
        if not args.webhook_secret:
            raise ConfigError(
                "--webhook needs --webhook-secret (or PUENTE_WEBHOOK_SECRET) so the help desk "
                "can check that events come from this relay."
            )
        connectors.append(
            WebhookConnector(args.webhook, args.webhook_secret, timeout=args.delivery_timeout)
        )
    elif args.webhook_secret:
        raise ConfigError("--webhook-secret was given without --webhook URL.")
    if args.rt_url:
        connectors.append(
            RequestTrackerConnector(
                args.rt_url,
                token=args.rt_token,
                user=args.rt_user,
                password=args.rt_password,
                timeout=args.delivery_timeout,
                queue=args.rt_queue,
            )
        )
    elif args.rt_token or args.rt_user or args.rt_password:
        raise ConfigError("Request Tracker credentials were given without --rt-url URL.")
    return tuple(connectors)


def _existing_store(args: argparse.Namespace) -> RelayStore:
    """Open the store of a relay that has run; ConfigError if DIR holds no database."""
    if args.database_url:
        return open_store(None, args.database_url)
    data_dir = args.data_dir
    if not (Path(data_dir) / DATABASE_NAME).is_file():
        raise ConfigError(
            f"There is no relay database in {data_dir!r}; pass the --data-dir the relay "
            "was started with."
        )
    return SQLiteStore(data_dir)


def _audit(args: argparse.Namespace) -> int:
    store = _existing_store(args)
    try:
        if args.action == "verify":
            verdict = audit.verify(store.audit_entries())
            if args.json:
                print(
                    json.dumps(
                        {
                            "ok": verdict.ok,
                            "entries": verdict.entries,
                            "head": verdict.head,
                            "bad_seq": verdict.bad_seq,
                            "problem": verdict.problem or None,
                        }
                    )
                )
            elif verdict.ok:
                print(f"The audit log is intact: {verdict.entries} entries, head {verdict.head}.")
            if not verdict.ok:
                print(
                    f"puente-relay: The audit log was tampered with: {verdict.problem}. "
                    f"The {verdict.entries} entries before it are intact. Keep this database "
                    "as evidence and compare it with your last export.",
                    file=sys.stderr,
                )
                return EXIT_TAMPERED
            return 0
        return _audit_export(store, args.out)
    finally:
        store.close()


def _audit_export(store: RelayStore, out: str) -> int:
    entries = list(store.audit_entries())
    verdict = audit.verify(entries)
    lines = "".join(json.dumps(entry.as_json(), sort_keys=True) + "\n" for entry in entries)
    if out == "-":
        sys.stdout.write(lines)
    else:
        Path(out).write_text(lines, encoding="utf-8")
        print(f"Exported {len(entries)} audit entries to {out}; head hash {verdict.head}.")
    if not verdict.ok:
        print(
            f"puente-relay: Exported, but the audit log was tampered with: {verdict.problem}.",
            file=sys.stderr,
        )
        return EXIT_TAMPERED
    return 0


def _deliveries(args: argparse.Namespace) -> int:
    store = _existing_store(args)
    try:
        rows = store.list_deliveries(pending_only=not args.all)
    finally:
        store.close()
    if not rows and not args.json:
        print("Every help-desk event was acknowledged." if not args.all else "No events yet.")
    for row in rows:
        record = {
            "event_id": row.event_id,
            "type": row.event_type,
            "session_id": row.session_id,
            "connector": row.connector,
            "attempts": row.attempts,
            "created_at": _utc(row.created_at),
            "next_attempt_at": None if row.delivered_at else _utc(row.next_attempt_at),
            "delivered_at": _utc(row.delivered_at) if row.delivered_at else None,
            "last_error": row.last_error,
        }
        if args.json:
            print(json.dumps(record))
        else:
            state = (
                f"delivered {record['delivered_at']}"
                if row.delivered_at
                else f"next try {record['next_attempt_at']}"
            )
            error = f"  last error: {row.last_error}" if row.last_error else ""
            print(
                f"{row.event_id}\t{row.event_type}\t{row.connector}\t"
                f"{row.attempts} attempts\t{state}{error}"
            )
    return 0


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def _run(config: RelayConfig) -> int:
    relay = RelayServer(config)
    await relay.start()
    host = f"[{config.host}]" if ":" in config.host else config.host
    scheme = "https" if relay.tls else "http"
    print(f"puente-relay listening on {scheme}://{host}:{relay.port}", flush=True)
    loop = asyncio.get_running_loop()
    signals: asyncio.Queue[signal.Signals] = asyncio.Queue()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, signals.put_nowait, signum)
    try:
        while (signum := await signals.get()) == signal.SIGHUP:
            _reload_tls(relay)
        if config.drain_timeout > 0:
            # A second SIGTERM or Ctrl-C cuts the drain short.
            draining = asyncio.create_task(relay.drain(config.drain_timeout))
            stopped = asyncio.create_task(_next_stop(signals))
            await asyncio.wait([draining, stopped], return_when=asyncio.FIRST_COMPLETED)
            for task in (draining, stopped):
                task.cancel()
            await asyncio.gather(draining, stopped, return_exceptions=True)
    finally:
        await relay.close()
    return 0


async def _next_stop(signals: asyncio.Queue[signal.Signals]) -> None:
    while await signals.get() == signal.SIGHUP:
        pass


def _reload_tls(relay: RelayServer) -> None:
    log = logging.getLogger("relay.cli")
    if relay.tls is None:
        log.info("SIGHUP ignored: the relay serves no TLS certificate")
        return
    try:
        relay.tls.reload()
    except RelayError as exc:
        log.error("TLS certificate not reloaded, the old one stays: %s", exc)
    else:
        log.info("TLS certificate reloaded from %s", relay.tls.cert_file)


def _health(args: argparse.Namespace) -> int:
    """Exit 0 if /healthz on this machine answers ok (TLS not verified: it is our own relay)."""
    import json
    import ssl
    import urllib.request

    scheme = "https" if args.tls else "http"
    context = ssl._create_unverified_context() if args.tls else None
    try:
        with urllib.request.urlopen(
            f"{scheme}://127.0.0.1:{args.port}/healthz", timeout=5, context=context
        ) as response:
            healthy = json.loads(response.read()).get("status") == "ok"
    except (OSError, ValueError) as exc:
        print(
            f"puente-relay: the relay on port {args.port} is not healthy ({exc}).", file=sys.stderr
        )
        return 1
    print("healthy" if healthy else "unhealthy")
    return 0 if healthy else 1


def _technician(args: argparse.Namespace) -> int:
    store = open_store(args.data_dir, args.database_url)
    try:
        if args.action == "add":
            technician, token = store.add_technician(args.name, time.time())
            if args.skills is not None or args.capacity is not None:
                profile = queue_cli.set_profile(store, technician.name, args)
                print("Help queue: " + queue_cli.profile_line(profile))
            print(
                f"Created technician {technician.name!r}. Their API token follows; it is shown "
                "only this once, so hand it over now and keep it secret:"
            )
            print(token)
        elif args.action == "update":
            if args.skills is None and args.capacity is None and args.availability is None:
                raise ConfigError("Say what to change: --skills, --capacity or --availability.")
            profile = queue_cli.set_profile(store, args.name, args)
            print("Updated " + queue_cli.profile_line(profile))
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
