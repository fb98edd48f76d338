"""Issue 17, acceptance 3 (last rule): the same help request routed correctly when the
customer and the technician reach different relay nodes (three real relay processes
sharing a real Redis and PostgreSQL): filed on one node, offered to the matching
technician who lists and accepts it on another, the session paired across nodes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.routing import Availability
from relay.stores import open_store
from tests.relay.test_cluster import nodes  # noqa: F401  (fixture)
from tests.support.customer import ScriptedCustomer, technician
from tests.support.relay import RelayProcess
from tests.support.services import (  # noqa: F401  (fixtures)
    postgres_server,
    redis_server,
)
from tests.support.trust_fixtures import Organisation, make_organisation, tech_cli


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Organisation]:
    yield make_organisation(tmp_path_factory.mktemp("acme"), "Acme IT")


def test_a_request_filed_on_one_node_is_taken_on_another(
    nodes: tuple[list[RelayProcess], str],  # noqa: F811
    org: Organisation,
    tmp_path: Path,
) -> None:
    (first, second, _), database = nodes
    listing = tmp_path / "categories.json"
    done = tech_cli(
        "org", "categories", "printing", "network", "--org-key", str(org.key), "--out", str(listing)
    )
    assert done.returncode == 0, done.stderr
    from protocol.categories import parse_category_list

    store = open_store(None, database)
    try:
        parsed = parse_category_list(listing.read_bytes())
        store.set_categories(parsed.organisation_key, listing.read_text(), time.time())
        tokens = {}
        for name, skills in (("Nina", ["network", "en"]), ("Paco", ["printing", "en"])):
            tokens[name] = store.add_technician(name, time.time())[1]
            store.set_profile(name, time.time(), skills, 1, Availability.AVAILABLE)
    finally:
        store.close()
    customer = ScriptedCustomer(
        second.ws_url,
        "",
        tmp_path / "logs",
        answers={"Diagnostics": "y"},
        after={r"^Attach this summary to your request\?": "y"},
        rating=4,
        code_via="none",
        extra=["--org-key", str(org.public), "--request", "Printer jams", "--category", "printing"],
    )
    customer.expect(r"^You are number 1 in the queue")
    listed = technician(first.ws_url, tokens["Paco"], "queue", "list", "--json")
    assert listed.wait(30) == 0, listed.read_stderr()
    [item] = json.loads(listed.output)["requests"]
    assert item["offered_to_you"]
    cert, key = org.technician("Paco", "paco")
    tech = technician(
        first.ws_url,
        tokens["Paco"],
        "--cert",
        str(cert),
        "--key",
        str(key),
        "queue",
        "accept",
        item["request_id"],
        stdin=True,
    )
    tech.expect(r"^Customer joined\. Check code: ", timeout=60)
    customer.expect(r"^Paco took your request")
    tech.send("diagnostics " + str(tmp_path / "d.json"))
    tech.expect(r"^ok diagnostics:", timeout=60)
    tech.send("end")
    assert tech.wait(60) == 0, tech.output + tech.read_stderr()
    assert customer.wait(30) == 0, customer.output + customer.read_stderr()
    assert (tmp_path / "d.json").exists()
