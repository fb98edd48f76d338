"""protocol.categories: the organisation's signed list of help categories."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.categories import (
    Category,
    issue_category_list,
    parse_category_list,
    verify_category_list,
)
from protocol.errors import ForeignSigner, MalformedDocument, SignatureMismatch
from protocol.identity import OrganisationSecret

ORG = OrganisationSecret("Org", Ed25519PrivateKey.generate())
OTHER = OrganisationSecret("Other", Ed25519PrivateKey.generate())
LIST = [Category("printing", "Printers"), Category("network", "Network")]


def test_a_list_verifies_against_its_organisation_only() -> None:
    document = issue_category_list(ORG, 3, 100, LIST)
    listing = verify_category_list(document, ORG.public_key)
    assert listing.ids() == ("printing", "network") and listing.number == 3
    with pytest.raises(ForeignSigner):
        verify_category_list(document, OTHER.public_key)


def test_an_edited_list_is_refused() -> None:
    document = json.loads(issue_category_list(ORG, 1, 0, LIST))
    document["categories"]["categories"].append({"id": "fake", "title": "Call this number"})
    with pytest.raises(SignatureMismatch):
        parse_category_list(json.dumps(document).encode())


@pytest.mark.parametrize(
    "categories",
    [
        [],
        [Category("Printing", "x")],
        [Category("a", "x"), Category("a", "y")],
        [Category("ok", "line\nbreak")],
    ],
)
def test_bad_categories_are_refused_with_a_sentence(categories: list[Category]) -> None:
    with pytest.raises(MalformedDocument):
        issue_category_list(ORG, 1, 0, categories)


def test_not_a_category_list() -> None:
    with pytest.raises(MalformedDocument, match="not a Puente category list|not a category"):
        parse_category_list(
            b'{"categories": {"format": "x"}, "signature": "' + b"A" * 86 + b"==" + b'"}'
        )
