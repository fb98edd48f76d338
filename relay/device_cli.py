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
    publish = actions.add_parser(
        "publish",
        help="send enrolled devices a newer signed policy or fix bundles",
        description="Give the devices a token enrolled (and those it enrols from now on) "
        "a newer signed policy ('puente-tech policy sign', with a higher number) and/or "
        "signed fix bundles ('puente-tech fix sign') without enrolling them again. "
        "Connected devices get it within seconds, the others when they connect. Each "
        "device verifies it against its organisation key; it applies a policy only if "
        "it widens nothing its owner agreed to (unattended access, capabilities, failure "
        "actions, details leaving the device): a wider one is refused, and the help desk "
        "sees the device's 'policy-update' alert and ticket. 'puente-relay devices' and "
        "'puente-tech devices' show it.",
        epilog="examples:\n  puente-relay enrolment publish 3f9c1a2b4d5e6f70 --policy "
        "acme-v2.policy --data-dir /var/lib/puente\n  puente-relay enrolment publish --all "
        "--fix disk-cleanup.puentefix --data-dir /var/lib/puente",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_dir(publish)
    publish.add_argument(
        "token_ids", nargs="*", metavar="TOKEN_ID", help="tokens whose devices get it"
    )
    publish.add_argument("--all", action="store_true", help="the devices of every token")
    publish.add_argument("--policy", type=Path, help="the newer signed device policy")
    publish.add_argument(
        "--fix", type=Path, action="append", default=[], metavar="BUNDLE",
        help="a signed fix bundle (repeat for several)",
    )  # fmt: skip
    publish.add_argument("--json", action="store_true", help="print what was filed as JSON")
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

    if args.action == "publish":
        return run_publish(args)
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


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read {path} ({exc.strerror or exc}).") from None


def run_publish(args: argparse.Namespace) -> int:
    """``enrolment publish``: file the update (relay.device_updates) and say who gets it."""
    from .device_updates import UpdateBook, policy_number
    from .enrolment import EnrolmentBook

    if args.all == bool(args.token_ids):
        raise ConfigError(
            "Name the tokens whose devices get the update ('puente-relay enrolment list' "
            "shows them), or --all; not both."
        )
    if args.policy is None and not args.fix:
        raise ConfigError("Say what to publish: --policy FILE, --fix BUNDLE or both.")
    policy = _read(args.policy) if args.policy is not None else None
    fixes = [(str(path), _read(path)) for path in args.fix]
    where = database(args)
    enrolment = EnrolmentBook(where)
    updates = UpdateBook(where)
    try:
        tokens = [t.token_id for t in enrolment.tokens()] if args.all else list(args.token_ids)
        if not tokens:
            raise ConfigError("There are no enrolment tokens yet; nothing to publish to.")
        filed = updates.publish(tokens, time.time(), policy, fixes)
        devices = [d for d in enrolment.devices() if d.token_id in tokens]
    finally:
        enrolment.close()
        updates.close()
    fix_ids = list(dict.fromkeys(p.name for p in filed if p.kind == "fix"))
    number = policy_number(policy.decode("utf-8", "replace")) if policy is not None else None
    what = ([f"policy {number}"] if policy is not None else []) + [f"fix {i}" for i in fix_ids]
    _audit(args, tokens, number, fix_ids)
    if args.json:
        print(json.dumps({"tokens": tokens, "policy": number, "fixes": fix_ids,
                          "devices": len(devices)}))  # fmt: skip
        return 0
    print(
        f"Published {' and '.join(what)} for the devices of {len(tokens)} token(s): "
        f"{len(devices)} enrolled now, and those enrolled from now on. Connected devices "
        "get it within seconds, the others when they connect; a device that refuses it "
        "raises the 'policy-update' alert."
    )
    return 0


def _audit(
    args: argparse.Namespace, tokens: list[str], number: int | None, fixes: list[str]
) -> None:
    """The publication in the relay's audit log (``puente-relay audit export``)."""
    from .events import EventType, NewEvent
    from .stores import open_store

    store = open_store(args.data_dir, args.database_url)
    try:
        for token_id in tokens:
            data = {"outcome": "published", "policy": number, "fixes": fixes}
            store.record_event(
                NewEvent(EventType.DEVICE_UPDATE, f"token-{token_id}", data), time.time(), ()
            )
    finally:
        store.close()


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
