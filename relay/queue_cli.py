"""``puente-relay`` commands of the help queue: technicians' routing profiles
(``technician add|update --skills --capacity``) and the organisation's signed
category list (``categories set|show``). Called by :mod:`relay.cli`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from protocol.categories import CATEGORY_ID, parse_category_list
from protocol.errors import TrustError
from protocol.safe_text import safe_text

from .errors import ConfigError
from .help_records import RequestState, TechnicianProfile
from .routing import Availability
from .store import RelayStore


def _skills(text: str) -> list[str]:
    skills = [s.strip().lower() for s in text.split(",") if s.strip()]
    for skill in skills:
        if not CATEGORY_ID.fullmatch(skill):
            raise argparse.ArgumentTypeError(
                f"{skill!r} is not a skill: use category ids and language codes such as "
                "printing,network,es (letters, digits, dashes)"
            )
    return skills


def _capacity(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 20:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a capacity: give how many sessions at once, 1 to 20"
        )
    return value


def add_profile_options(parser: argparse.ArgumentParser, *, new: bool) -> None:
    """``--skills``, ``--capacity`` (and ``--availability``) of a technician's profile."""
    parser.add_argument(
        "--skills",
        type=_skills,
        help="comma-separated categories and languages this technician takes, such as "
        "printing,network,es (routing matches help requests on them)",
    )
    parser.add_argument(
        "--capacity",
        type=_capacity,
        help="how many help sessions at once (1 to 20); at capacity they count as busy"
        + (" (default 1)" if new else ""),
    )
    if not new:
        parser.add_argument(
            "--availability",
            choices=[a.value for a in Availability],
            help="set their availability (technicians usually set it themselves)",
        )


def add_categories_command(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    categories = commands.add_parser(
        "categories",
        help="the organisation's signed list of help categories",
        description="Customers pick a category when they ask for help from their agent. "
        "The list is signed by the organisation's key ('puente-tech org categories'), so "
        "the relay only keeps and serves it; agents check it against their pinned key.",
    )
    actions = categories.add_subparsers(dest="action", metavar="ACTION", required=True)
    setter = actions.add_parser(
        "set", help="keep a signed category list and serve it to the organisation's agents"
    )
    setter.add_argument("file", type=Path, help="the signed list (puente-tech org categories)")
    return setter


def add_queue_command(commands: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:  # type: ignore[type-arg]
    """``queue list [--json]`` and ``queue assign ID NAME``; returns the parsers that
    need the store's options."""
    queue = commands.add_parser(
        "queue",
        help="see the help queue and reassign a request",
        description="The help requests customers filed that no technician has taken yet. "
        "Works while the relay is running; a reassigned request is offered to that "
        "technician within a second.",
    )
    actions = queue.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the requests waiting, oldest first")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    assign = actions.add_parser("assign", help="offer a waiting request to one technician")
    assign.add_argument("request_id", metavar="ID", help="the request's id (queue list)")
    assign.add_argument("name", help="the technician's name")
    return [listing, assign]


def run_queue(store: RelayStore, args: argparse.Namespace) -> int:
    names = {p.technician_id: p.name for p in store.list_profiles()}
    if args.action == "list":
        requests = store.open_help_requests()
        for request in requests:
            view = {
                "request_id": request.id,
                "state": str(request.state),
                "category": request.category,
                "language": request.language,
                "waiting_since": request.created_at,
                "offered_to": names.get(request.offered_to or ""),
                "assigned_to": names.get(request.direct_to or ""),
                "queue": request.queue,
                "description": request.description,
            }
            if args.json:
                print(json.dumps(view))
            else:
                who = f"offered to {view['offered_to']}" if view["offered_to"] else "waiting"
                print(
                    safe_text(
                        f"{request.id}  {who}  [{request.category}/{request.language}]  "
                        f"{request.description}",
                        600,
                    )
                )
        if not requests and not args.json:
            print("No help requests are waiting.")
        return 0
    found = store.get_help_request(args.request_id)
    if found is None or not found.state.open:
        raise ConfigError(
            f"No waiting help request has the id {args.request_id!r}; see 'puente-relay queue list'."
        )
    request = found
    target = next((tid for tid, name in names.items() if name == args.name), None)
    if target is None:
        raise ConfigError(
            f"No technician with a routing profile is named {args.name!r}; see "
            "'puente-relay technician list'."
        )
    changed = store.change_help_request(
        request.id,
        request.version,
        {
            "state": RequestState.WAITING,
            "offered_to": None,
            "offered_at": None,
            "direct_to": target,
            "queue": None,
            "declined_by": tuple(t for t in request.declined_by if t != target),
        },
    )
    if changed is None:
        raise ConfigError(
            "The request changed meanwhile (someone took it?); look at the queue again."
        )
    print(
        f"Request {request.id} is assigned to {args.name}; it is offered to them within a second."
    )
    return 0


def profile_line(profile: TechnicianProfile) -> str:
    skills = ",".join(profile.skills) or "no skills"
    return f"{profile.name}: skills {skills}, capacity {profile.capacity}, {profile.availability}"


def set_profile(store: RelayStore, name: str, args: argparse.Namespace) -> TechnicianProfile:
    profile = store.set_profile(
        name,
        time.time(),
        skills=args.skills,
        capacity=args.capacity,
        availability=Availability(args.availability)
        if getattr(args, "availability", None)
        else None,
    )
    if profile is None:
        raise ConfigError(
            f"No active technician is named {name!r}; see 'puente-relay technician list'."
        )
    return profile


def run_categories(store: RelayStore, args: argparse.Namespace) -> int:
    if args.action == "set":
        try:
            document = args.file.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"Cannot read {args.file} ({exc.strerror}); check the path."
            ) from None
        try:
            listing = parse_category_list(document)
        except TrustError as exc:
            raise ConfigError(
                f"{args.file} is not a signed category list ({exc}); make one with "
                "'puente-tech org categories'."
            ) from None
        store.set_categories(listing.organisation_key, document.decode(), time.time())
        print(
            f"Kept {len(listing.categories)} categories ({', '.join(listing.ids())}) for "
            f"organisation key {listing.organisation_key[:16]}…; agents get them at once."
        )
        return 0
    raise ConfigError("Use 'puente-relay categories set FILE'.")
