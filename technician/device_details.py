"""``puente-tech devices show DEVICE``: one enrolled device, its checks' details opened.

The relay keeps each check's latest details as the device sealed them to the
organisation's details key (:mod:`protocol.sealed_details`); it cannot read them.
This command fetches them (``GET /api/devices/ID``) and opens them here with the
private details key (``--details-key FILE``, from ``puente-tech policy details-key``).
Without the key it says which checks carry sealed details. Everything shown came
from the device, so every text goes through :func:`protocol.safe_text.safe_text`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from protocol import sealed_details
from protocol.errors import TrustError
from protocol.safe_text import safe_text

from .client import RelayAPI
from .output import Output

EXIT_OK, EXIT_ERROR = 0, 1


def add_show(devices: argparse.ArgumentParser) -> None:
    """Add ``show DEVICE [--details-key FILE]`` under ``puente-tech devices``."""
    actions = devices.add_subparsers(dest="devices_command", metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="one device: online or not, open alerts, its checks' details",
        description="Show DEVICE (an id from 'puente-tech devices') with its checks' latest "
        "results. Their details reach the relay sealed to the organisation's details key; "
        "--details-key opens them here (the relay never can).",
        epilog="example:\n  puente-tech devices show 3f2a... --details-key acme-org/details.key",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("device", help="the device id (32 hex digits)")
    show.add_argument(
        "--details-key", type=Path, metavar="FILE", help="the organisation's private details key"
    )


def read_details_key(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustError(f"Cannot read {path} ({exc.strerror or exc}); check the path.") from None
    return sealed_details.private_from_pem(data)


def opened(device: dict[str, Any], key: Any) -> list[dict[str, Any]]:
    """The device's checks, each with ``details`` opened (or ``problem`` saying why not)."""
    rows = []
    for item in device.get("details") or []:
        row = {k: item.get(k) for k in ("check", "at", "status")}
        if key is None:
            row["problem"] = "sealed; pass --details-key to open"
        else:
            try:
                row["details"] = sealed_details.open_sealed(
                    str(item.get("sealed")),
                    key,
                    str(device.get("device_id")),
                    str(item.get("check")),
                    int(item.get("at") or 0),
                )
            except TrustError as exc:
                row["problem"] = str(exc)
        rows.append(row)
    return rows


async def run_show(args: argparse.Namespace, out: Output, ssl_context: Any) -> int:
    try:
        key = read_details_key(args.details_key) if args.details_key else None
    except TrustError as exc:
        out.error(str(exc))
        return EXIT_ERROR
    api = RelayAPI(args.relay, args.token, ssl_context)
    device = await asyncio.to_thread(api.device, args.device)
    checks = opened(device, key)
    if out.as_json:
        print(json.dumps({**device, "details": checks}), flush=True)
        return EXIT_OK
    alerts = device.get("open_alerts") or []
    print(
        f"{safe_text(device.get('device_id'), 64)}  "
        f"{'online' if device.get('online') else 'offline'}  "
        + (
            "open alerts: " + safe_text(", ".join(map(str, alerts)), 400)
            if alerts
            else "no open alerts"
        ),
        flush=True,
    )
    if not checks:
        print("  No check details have arrived from this device.", flush=True)
    for row in checks:
        head = f"  {safe_text(row['check'], 64)} ({safe_text(row['status'], 16)})"
        if "details" in row:
            body = json.dumps(row["details"], ensure_ascii=False, sort_keys=True)
            print(f"{head}: {safe_text(body, 2000)}", flush=True)
        else:
            print(f"{head}: {safe_text(row['problem'], 400)}", flush=True)
    return EXIT_OK
