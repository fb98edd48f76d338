"""The organisation's rule book for self-help: knowledge-base rules it signed (pure).

Agents triage their own diagnostics for self-help with the built-in rules
(``protocol/rules/default.toml``) and, when the organisation published one, its rule
book: rule files in the same TOML language (:mod:`protocol.triage`), signed like a
category list (:mod:`protocol.categories`)::

    {"rules": {"format": "puente-rules/1", "organisation_key": HEX64,
               "organisation_public_key": B64, "number": N, "issued_at": T,
               "source": "[[rule]]\\nproblem = ..."},
     "signature": B64}

The relay checks only that it is well formed and signed by the key it names
(:func:`parse_rule_book`); the agent checks it against its pinned key
(:func:`verify_rule_book`) and otherwise uses the built-in rules alone, so a relay
can neither add a rule nor change which fix a problem is offered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import MalformedDocument, RuleError
from .identity import (
    MAX_DOCUMENT_SIZE,
    OrganisationSecret,
    _integer,
    _split_signed,
    b64encode,
    check_pinned_signer,
    check_self_signed,
    raw_public_key,
    sign_document,
)
from .triage import Rule, parse_rules

RULES_LABEL = b"puente/1 knowledge-base rules\n"
RULES_FORMAT = "puente-rules/1"
#: Longest rule source accepted (the signed document must fit MAX_DOCUMENT_SIZE).
MAX_RULES_SOURCE = MAX_DOCUMENT_SIZE // 2
#: How the rule book's rules name their source in errors and findings.
SOURCE_NAME = "organisation-rules.toml"


@dataclass(frozen=True)
class RuleBook:
    organisation_key: str
    organisation_public_key: bytes
    number: int
    issued_at: int
    source: str

    def body(self) -> dict[str, Any]:
        return {
            "format": RULES_FORMAT,
            "organisation_key": self.organisation_key,
            "organisation_public_key": b64encode(self.organisation_public_key),
            "number": self.number,
            "issued_at": self.issued_at,
            "source": self.source,
        }

    def rules(self) -> list[Rule]:
        """The book's rules (checked when it was parsed, so this does not raise)."""
        return parse_rules(self.source, SOURCE_NAME)


_FIELDS = set(RuleBook("", b"", 0, 0, "").body())


def check_source(source: str) -> list[Rule]:
    """The rules of ``source`` if it is an acceptable rule file, else MalformedDocument."""
    if len(source) > MAX_RULES_SOURCE:
        raise MalformedDocument(
            f"The rules are {len(source)} characters; a rule book holds at most "
            f"{MAX_RULES_SOURCE}. Publish only the rules self-help needs."
        )
    try:
        rules = parse_rules(source, SOURCE_NAME)
    except RuleError as exc:
        raise MalformedDocument(f"The rule book's rules are not valid: {exc}") from None
    if not rules:
        raise MalformedDocument("The rule book holds no [[rule]]; add at least one.")
    return rules


def issue_rule_book(
    organisation: OrganisationSecret, number: int, issued_at: int, source: str
) -> bytes:
    """A signed rule book (JSON bytes) of the rule file text ``source``."""
    check_source(source)
    book = RuleBook(
        organisation.key_id, raw_public_key(organisation.public_key), number, issued_at, source
    )
    return sign_document("rules", RULES_LABEL, book.body(), organisation.private_key)


def parse_rule_book(data: bytes) -> RuleBook:
    """A rule book checked against the key it names (what a relay can check)."""
    what = "rule book"
    body, signature = _split_signed(data, "rules", what)
    if body.get("format") != RULES_FORMAT or set(body) != _FIELDS:
        raise MalformedDocument("This is not a Puente rule book (made by 'puente-tech org rules').")
    source = body.get("source")
    if not isinstance(source, str):
        raise MalformedDocument("The rule book's source must be the text of a rule file.")
    organisation_key, public_raw = check_self_signed(body, signature, RULES_LABEL, what)
    check_source(source)
    return RuleBook(
        organisation_key=organisation_key,
        organisation_public_key=public_raw,
        number=_integer(body, "number", what),
        issued_at=_integer(body, "issued_at", what),
        source=source,
    )


def verify_rule_book(data: bytes, organisation_key: Ed25519PublicKey) -> RuleBook:
    """The rule book in ``data`` if the pinned ``organisation_key`` signed it."""
    book = parse_rule_book(data)
    check_pinned_signer(book.organisation_key, organisation_key, "rule book")
    return book
