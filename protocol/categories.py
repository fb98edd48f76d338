"""The organisation's list of help categories, signed by its key (pure).

Customers pick a category when they ask for help; technicians' skills name the same
ids. The list is signed like a revocation list (:mod:`protocol.identity`)::

    {"categories": {"format": "puente-categories/1", "organisation_key": HEX64,
                    "organisation_public_key": B64, "number": N, "issued_at": T,
                    "categories": [{"id": "printing", "title": "Printing"}, ...]},
     "signature": B64}

The relay checks only that it is well formed and signed by the key it names
(:func:`parse_category_list`); the agent checks it against its pinned key
(:func:`verify_category_list`) before showing it, so a relay cannot add or rename one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import MalformedDocument
from .identity import (
    OrganisationSecret,
    _integer,
    _split_signed,
    b64encode,
    check_pinned_signer,
    check_self_signed,
    raw_public_key,
    sign_document,
)

CATEGORIES_LABEL = b"puente/1 help categories\n"
CATEGORIES_FORMAT = "puente-categories/1"

#: A category id: what skills and requests name (lower case, digits, dashes).
CATEGORY_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
MAX_CATEGORIES = 100
MAX_TITLE = 80
#: The longest description of a help request, in characters: the relay refuses a longer
#: one, and the agent's form and console say so before anything is sent.
MAX_DESCRIPTION = 500


@dataclass(frozen=True)
class Category:
    id: str
    title: str


@dataclass(frozen=True)
class CategoryList:
    organisation_key: str
    organisation_public_key: bytes
    number: int
    issued_at: int
    categories: tuple[Category, ...]

    def body(self) -> dict[str, Any]:
        return {
            "format": CATEGORIES_FORMAT,
            "organisation_key": self.organisation_key,
            "organisation_public_key": b64encode(self.organisation_public_key),
            "number": self.number,
            "issued_at": self.issued_at,
            "categories": [{"id": c.id, "title": c.title} for c in self.categories],
        }

    def ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.categories)


_FIELDS = set(CategoryList("", b"", 0, 0, ()).body())


def check_categories(categories: Sequence[Category]) -> tuple[Category, ...]:
    """The categories if every id and title is acceptable, else MalformedDocument."""
    if not 1 <= len(categories) <= MAX_CATEGORIES:
        raise MalformedDocument(f"A category list names 1 to {MAX_CATEGORIES} categories.")
    seen: set[str] = set()
    for category in categories:
        if not CATEGORY_ID.fullmatch(category.id):
            raise MalformedDocument(
                f"{category.id!r} is not a category id: use 1 to 32 lower-case letters, "
                "digits or dashes, such as 'printing'."
            )
        if category.id in seen:
            raise MalformedDocument(f"The category {category.id!r} is listed twice.")
        seen.add(category.id)
        title = category.title
        if not title.strip() or len(title) > MAX_TITLE or not title.isprintable():
            raise MalformedDocument(
                f"The title of {category.id!r} must be 1 to {MAX_TITLE} printable characters."
            )
    return tuple(categories)


def issue_category_list(
    organisation: OrganisationSecret, number: int, issued_at: int, categories: Sequence[Category]
) -> bytes:
    """A signed category list (JSON bytes)."""
    listing = CategoryList(
        organisation.key_id,
        raw_public_key(organisation.public_key),
        number,
        issued_at,
        check_categories(categories),
    )
    return sign_document("categories", CATEGORIES_LABEL, listing.body(), organisation.private_key)


def parse_category_list(data: bytes) -> CategoryList:
    """A category list checked against the key it names (what a relay can check)."""
    what = "category list"
    body, signature = _split_signed(data, "categories", what)
    if body.get("format") != CATEGORIES_FORMAT or set(body) != _FIELDS:
        raise MalformedDocument(
            "This is not a Puente category list (made by 'puente-tech org categories')."
        )
    entries = body.get("categories")
    if not isinstance(entries, list) or not all(
        isinstance(e, dict)
        and set(e) == {"id", "title"}
        and isinstance(e["id"], str)
        and isinstance(e["title"], str)
        for e in entries
    ):
        raise MalformedDocument("The list's categories must be objects with an id and a title.")
    organisation_key, public_raw = check_self_signed(body, signature, CATEGORIES_LABEL, what)
    return CategoryList(
        organisation_key=organisation_key,
        organisation_public_key=public_raw,
        number=_integer(body, "number", what),
        issued_at=_integer(body, "issued_at", what),
        categories=check_categories([Category(e["id"], e["title"]) for e in entries]),
    )


def verify_category_list(data: bytes, organisation_key: Ed25519PublicKey) -> CategoryList:
    """The list in ``data`` if the pinned ``organisation_key`` signed it."""
    listing = parse_category_list(data)
    check_pinned_signer(listing.organisation_key, organisation_key, "category list")
    return listing
