"""``puente-tech devices show DEVICE``: one enrolled device, its checks' details opened.

The relay keeps each check's latest details as the device sealed them to the
organisation's details key (:mod:`protocol.sealed_details`); it cannot read them.
This command fetches them (``GET /api/devices/ID``) and opens them here with the
private details key (``--details-key FILE``, from ``puente-tech policy details-key``).
Without the key it says which checks carry sealed details. Everything shown came
from the device, so every text goes through :func:`protocol.safe_text.safe_text`.

``--post-to-ticket`` copies the opened details onto the tickets of the device's open
alerts (Request Tracker REST 2.0, with the technician's own RT credentials), only if
the device's policy, verified here against ``--org-key``, says
``details_to_help_desk = true``. The technician's side posts them: the relay never
holds them in the clear.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from protocol import sealed_details
from protocol.device_policy import verify_policy
from protocol.errors import TrustError
from protocol.identity import load_public_key
from protocol.safe_text import safe_text

from .client import RelayAPI
from .output import Output

EXIT_OK, EXIT_ERROR = 0, 1


class PostRefused(Exception):
    """The details could not be posted on a ticket; the message says why."""


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
    show.add_argument(
        "--post-to-ticket",
        metavar="RT_URL",
        help="copy the opened details onto the open alerts' Request Tracker tickets "
        "(credentials: PUENTE_RT_TOKEN, or PUENTE_RT_USER and PUENTE_RT_PASSWORD); only "
        "when the device's policy allows it (verified with --org-key)",
    )
    show.add_argument("--org-key", type=Path, metavar="ORG.pub", help="the organisation's key")


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
    if args.post_to_ticket and (key is None or args.org_key is None):
        out.error(
            "--post-to-ticket needs --details-key (to open the details) and --org-key "
            "(to check that the device's policy allows it); nothing was posted."
        )
        return EXIT_ERROR
    api = RelayAPI(args.relay, args.token, ssl_context)
    device = await asyncio.to_thread(api.device, args.device)
    checks = opened(device, key)
    if args.post_to_ticket:
        try:
            posted = await asyncio.to_thread(post_to_tickets, args, device, checks)
        except (TrustError, PostRefused) as exc:
            out.error(f"{exc} Nothing was posted.")
            return EXIT_ERROR
        for check, ticket in posted:
            out.event(
                "posted",
                f"Details of {check} posted on ticket {ticket}.",
                check=check,
                ticket=ticket,
            )
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


def post_to_tickets(
    args: argparse.Namespace, device: dict[str, Any], checks: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    """Comment each opened check's details on its open alert's ticket; (check, ticket)."""
    document = device.get("policy")
    if not isinstance(document, str):
        raise PostRefused(
            "This device enrolled with the default policy, which keeps details off tickets."
        )
    try:
        organisation_key = load_public_key(args.org_key.read_bytes())
    except OSError as exc:
        raise PostRefused(f"Cannot read {args.org_key} ({exc.strerror or exc}).") from None
    policy = verify_policy(document.encode(), organisation_key)
    if not policy.details_to_help_desk:
        raise PostRefused(
            "This device's policy does not let the help desk copy check details "
            "onto tickets (details_to_help_desk is false)."
        )
    tickets = device.get("tickets") or {}
    posted = []
    for row in checks:
        ticket = tickets.get(row["check"])
        if ticket is None or "details" not in row:
            continue
        text = (
            f"Details of check {row['check']} ({row['status']}) as the device found "
            f"them, opened by the help desk:\n"
            + json.dumps(row["details"], indent=2, sort_keys=True, ensure_ascii=False)
        )
        _rt_comment(args.post_to_ticket, str(ticket), f"Details of check {row['check']}", text)
        posted.append((str(row["check"]), str(ticket)))
    return posted


def _rt_comment(url: str, ticket: str, subject: str, text: str) -> None:
    token = os.environ.get("PUENTE_RT_TOKEN")
    if token:
        authorization = f"token {token}"
    else:
        user, password = os.environ.get("PUENTE_RT_USER"), os.environ.get("PUENTE_RT_PASSWORD")
        if not user or not password:
            raise PostRefused(
                "Set PUENTE_RT_TOKEN, or PUENTE_RT_USER and PUENTE_RT_PASSWORD, "
                "to post on Request Tracker."
            )
        authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    body = json.dumps({"Subject": subject, "Content": text, "ContentType": "text/plain"})
    request = urllib.request.Request(
        f"{url.rstrip('/')}/REST/2.0/ticket/{urllib.parse.quote(ticket, safe='')}/comment",
        data=body.encode(),
        method="POST",
        headers={"Authorization": authorization, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=20):
            pass
    except (urllib.error.URLError, OSError) as exc:
        raise PostRefused(
            f"Request Tracker at {url} did not take the comment on ticket "
            f"{ticket} ({getattr(exc, 'reason', exc)})."
        ) from None
