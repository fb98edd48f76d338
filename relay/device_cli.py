"""``puente-relay enrolment ...`` and ``puente-relay devices``: the operator's commands for
enrolled devices, on the relay's SQLite store (``--data-dir``) or the PostgreSQL
database of a cluster (``--database-url``) alike (:mod:`relay.device_sql`).

They work while the relay runs: tokens, devices and alerts are rows the relay reads
when it needs them.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .device_sql import DeviceDatabase
from .errors import ConfigError
from .store import RelayStore


def add_commands(commands: Any, add_data_dir: Callable[[argparse.ArgumentParser], None]) -> None:
    """``enrolment create|list|withdraw`` and ``devices``."""
    enrolment = commands.add_parser(
        "enrolment",
        help="enrolment tokens for devices the help desk looks after",
        description="Make, list and withdraw enrolment tokens. A device enrols with "
        "'puente-agent enrol --token TOKEN'; the token carries the organisation's signed "
        "device policy (from 'puente-tech policy sign'), or none for the default: ask the "
        "signed-in user and deny when nobody answers within 60 s, and the standard checks. "
        "Tokens live in the relay's store: SQLite (--data-dir) or the PostgreSQL database "
        "relay nodes share (--database-url).",
    )
    actions = enrolment.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="make a token; it is printed once, on the last line",
        description="Make an enrolment token valid for N days and N devices. The relay "
        "keeps only its hash; the token is printed once, as the last line of output. "
        "Relay nodes sharing a database never let it enrol more than N devices.",
        epilog="example:\n  puente-relay enrolment create --uses 10 --valid-days 7 "
        "--policy acme.policy --data-dir /var/lib/puente",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_dir(create)
    create.add_argument("--uses", type=int, required=True, help="how many devices it may enrol")
    create.add_argument("--valid-days", type=int, required=True, help="days it stays valid")
    create.add_argument(
        "--policy", type=Path, help="the signed device policy (default: the standard one)"
    )
    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    add_data_dir(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    withdraw = actions.add_parser("withdraw", help="stop a token from enrolling anything more")
    add_data_dir(withdraw)
    withdraw.add_argument("token_id", help="the token's id, as 'enrolment list' shows it")
    devices = commands.add_parser(
        "devices",
        help="enrolled devices: online or not, open alerts",
        description="List enrolled devices with whether they are online (heard from within "
        "three heartbeats) and their open alerts. Works while the relay is running.",
    )
    add_data_dir(devices)
    devices.add_argument("--json", action="store_true", help="one JSON object per line")


def database(args: argparse.Namespace) -> DeviceDatabase:
    """The devices' database the command's options name (the folder is made if missing)."""
    if not args.database_url:
        Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    return DeviceDatabase.for_relay(args.data_dir, args.database_url)


def run_enrolment(args: argparse.Namespace) -> int:
    from .enrolment import EnrolmentBook, check_signed_policy

    policy = None
    if getattr(args, "policy", None) is not None:
        try:
            policy = check_signed_policy(args.policy.read_bytes())
        except OSError as exc:
            raise ConfigError(f"Cannot read {args.policy} ({exc.strerror or exc}).") from None
    book = EnrolmentBook(database(args))
    try:
        if args.action == "create":
            token, record = book.create_token(time.time(), args.uses, args.valid_days, policy)
            expires = datetime.fromtimestamp(record.expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
            print(
                f"Enrolment token {record.token_id}: {args.uses} device(s), valid until "
                f"{expires}, policy: {args.policy or 'the default (ask, deny after 60 s)'}."
            )
            print("Give it to the device owner; it is shown only now:")
            print(token)
            return 0
        if args.action == "withdraw":
            if not book.withdraw(args.token_id):
                raise ConfigError(
                    f"No enrolment token {args.token_id!r}; see 'puente-relay enrolment list'."
                )
            print(f"Enrolment token {args.token_id} withdrawn; it enrols nothing more.")
            return 0
        for record in book.tokens():
            if args.json:
                print(json.dumps(record.as_dict()))
                continue
            state = "withdrawn" if record.withdrawn else f"{record.uses}/{record.uses_allowed} used"
            expires = datetime.fromtimestamp(record.expires_at, UTC).strftime("%Y-%m-%d")
            policy_word = "signed policy" if record.policy else "default policy"
            print(f"{record.token_id}  {state}  until {expires}  {policy_word}")
        return 0
    finally:
        book.close()


def run_devices(args: argparse.Namespace, existing_store: Callable[[], RelayStore]) -> int:
    """``puente-relay devices``; ``existing_store`` refuses a folder no relay ran in."""
    from .alert_book import AlertBook
    from .devices import HEARTBEAT, MISSED_HEARTBEATS
    from .enrolment import EnrolmentBook

    existing_store().close()  # the same refusal as other commands for a wrong DIR
    where = database(args)
    enrolment, alerts = EnrolmentBook(where), AlertBook(where)
    try:
        now = time.time()
        open_alerts = alerts.open_alerts()
        for device in enrolment.devices():
            recent = device.last_seen is not None and now - device.last_seen < (
                HEARTBEAT * MISSED_HEARTBEATS
            )
            checks = open_alerts.get(device.device_id, [])
            row = {
                "device_id": device.device_id,
                "online": device.online and recent,
                "last_seen": device.last_seen,
                "enrolled_at": device.enrolled_at,
                "open_alerts": checks,
            }
            if args.json:
                print(json.dumps(row))
                continue
            state = "online" if row["online"] else "offline"
            print(f"{device.device_id}  {state}  {', '.join(checks) or 'no open alerts'}")
        return 0
    finally:
        enrolment.close()
        alerts.close()
