"""``puente-tech queue list|accept|decline`` and ``puente-tech availability``: the
help queue from the technician's side (:mod:`relay.help_api` at the relay).

``queue accept ID`` (or ``--next``: the request offered to you, else the oldest one
waiting) takes the request and opens the same session console as ``puente-tech
session``. Nobody reads a code aloud: the customer's agent learns the rendezvous
from the relay as soon as you accept, and the two pair without a code, your
certificate (``--cert``/``--key``) proven in the key exchange and checked by the agent
against its pinned organisation key (SIGMA-I, :mod:`protocol.cert_pairing`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from protocol.safe_text import safe_text

from . import trust_cli
from .client import RATING_WAIT, RelayAPI, TechnicianSession, take_help_request
from .errors import RelayApiError
from .output import Output

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOBODY = 0, 1, 2, 4


def add_commands(commands: Any) -> None:
    queue = commands.add_parser(
        "queue",
        help="see the help requests customers filed, and take one",
        description="Customers ask for help from their agent; the relay routes each request "
        "to a technician with the right skills. List what waits, accept one (it opens the "
        "session console, no code to read), or decline it (it goes to the next technician).",
    )
    actions = queue.add_subparsers(dest="queue_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the requests waiting, yours first")
    listing.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON"
    )
    accept = actions.add_parser(
        "accept",
        help="take a request and open its session console",
        description="Take request ID (or --next) and wait for the customer's agent, which "
        "joins by itself; then type console commands as in 'puente-tech session'. Inside, "
        "'transfer NAME|QUEUE --note TEXT' hands the customer on.",
    )
    which = accept.add_mutually_exclusive_group(required=True)
    which.add_argument("request_id", nargs="?", metavar="ID", help="the request's id")
    which.add_argument(
        "--next", action="store_true", help="the request offered to you, else the oldest"
    )
    accept.add_argument(
        "--wait", type=float, default=120.0, help="seconds to wait for the agent (default 120)"
    )
    accept.add_argument(
        "--rating-wait",
        type=float,
        default=RATING_WAIT,
        metavar="S",
        help=f"seconds to wait for the customer's rating when you end (default {RATING_WAIT:.0f})",
    )
    trust_cli.add_knowledge_options(accept)
    decline = actions.add_parser("decline", help="pass a request on to the next technician")
    decline.add_argument("request_id", metavar="ID", help="the request's id")
    availability = commands.add_parser(
        "availability",
        help="say whether you take help requests now",
        description="available: requests are offered to you (up to your capacity); busy: "
        "none for now; away: none, and you are not waited for.",
    )
    availability.add_argument("availability", choices=("available", "busy", "away"))


def _line(item: dict[str, Any]) -> str:
    mark = "offered to you" if item.get("offered_to_you") else str(item.get("state"))
    note = f"  note: {item['note']}" if item.get("note") else ""
    return (
        f"{item['request_id']}  {mark}  [{item.get('category')}/{item.get('language')}]  "
        f"{item.get('description')}{note}"
    )


#: How a paired session is served (``technician.cli.serve_session``: the console,
#: then the summary); passed in, since the CLI imports this module.
ServeSession = Callable[
    [argparse.Namespace, Output, RelayAPI, dict[str, Any], TechnicianSession], Awaitable[int]
]


async def run(
    args: argparse.Namespace, out: Output, ssl_context: Any, *, serve: ServeSession
) -> int:
    api = RelayAPI(args.relay, args.token, ssl_context)
    try:
        if args.command == "availability":
            profile = await asyncio.to_thread(api.set_availability, args.availability)
            out.event(
                "availability",
                f"You are {profile['effective_availability']} (capacity {profile['capacity']}, "
                f"holding {profile['holding']}).",
                technician=profile,
            )
            return EXIT_OK
        if args.queue_command == "list":
            listing = await asyncio.to_thread(api.queue)
            if out.as_json:
                print(json.dumps(listing), flush=True)
                return EXIT_OK
            me = listing["technician"]
            print(
                safe_text(
                    f"You: {me['effective_availability']}, skills {','.join(me['skills'])}, "
                    f"holding {me['holding']} of {me['capacity']}."
                )
            )
            items = sorted(listing["requests"], key=lambda i: not i.get("offered_to_you"))
            if not items:
                print("No help requests are waiting.")
            for item in items:
                print(safe_text(_line(item), 600))
            return EXIT_OK
        if args.queue_command == "decline":
            declined = await asyncio.to_thread(api.queue_action, args.request_id, "decline")
            out.event(
                "declined",
                f"Declined {args.request_id}; it goes to the next technician.",
                request=declined,
            )
            return EXIT_OK
        return await _accept(api, args, out, ssl_context, serve)
    except RelayApiError as exc:
        out.error(str(exc), code=exc.code)
        return EXIT_USAGE if exc.status in (400, 404, 409) else EXIT_ERROR


async def _accept(
    api: RelayAPI, args: argparse.Namespace, out: Output, ssl_context: Any, serve: ServeSession
) -> int:
    if args.credentials is None:
        # The customer's agent pins the organisation and pairs with no code: only a
        # certified technician can prove who they are to it.
        out.error(
            "Taking a help request needs your organisation certificate: pass --cert and "
            "--key (or set PUENTE_CERT and PUENTE_KEY)."
        )
        return EXIT_USAGE
    request_id = args.request_id
    if args.next:
        listing = await asyncio.to_thread(api.queue)
        items = listing["requests"]
        mine = [i for i in items if i.get("offered_to_you")]
        free = [i for i in items if i.get("state") == "waiting"]
        if not mine and not free:
            out.error("No help request is waiting for you; try again later.")
            return EXIT_NOBODY
        request_id = (mine or free)[0]["request_id"]

    def accepted(request: dict[str, Any], session_id: str) -> None:
        out.event(
            "accepted",
            f"Accepted {request_id}: {request.get('description')} "
            f"[{request.get('category')}/{request.get('language')}]"
            + (f" note: {request['note']}" if request.get("note") else "")
            + f". Waiting up to {args.wait:.0f} s for the customer's agent to join...",
            request=request,
            session_id=session_id,
        )

    try:
        opened = await take_help_request(
            api,
            request_id,
            args.credentials,
            ssl=ssl_context,
            wait_timeout=args.wait,
            on_accepted=accepted,
        )
    except TimeoutError:
        out.error(f"The customer's agent did not join within {args.wait:.0f} seconds.")
        return EXIT_NOBODY
    session = opened.session
    session.rating_wait = args.rating_wait
    out.paired(session.sas)
    args.queue_request = (api, request_id)
    return await serve(args, out, api, opened.created, session)
