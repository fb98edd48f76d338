"""``puente-relay`` commands of the help queue: technicians' routing profiles
(``technician add|update --skills --capacity``) and the organisation's signed
category list (``categories set|show``). Called by :mod:`relay.cli`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from protocol.categories import CATEGORY_ID, parse_category_list
from protocol.errors import TrustError

from .errors import ConfigError
from .help_records import TechnicianProfile
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
