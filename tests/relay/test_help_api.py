"""The help queue's HTTP routes on an in-process relay: what customers and technicians
get back, status codes with sentences, and the long-poll that wakes on a change."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.categories import Category, issue_category_list
from protocol.identity import OrganisationSecret
from relay.routing import Availability
from relay.server import RelayServer
from relay.testing import HttpReply, add_technician, http_request
from tests.relay.test_rest import run_with_relay

ORG = OrganisationSecret("Example Org", Ed25519PrivateKey.generate())
REQUEST = {
    "organisation_key": ORG.key_id,
    "description": "Cannot print",
    "category": "printing",
    "language": "es",
}


def set_up(relay: RelayServer) -> dict[str, str]:
    now = relay.config.clock()
    document = issue_category_list(ORG, 1, 0, [Category("printing", "Printing")]).decode()
    relay.store.set_categories(ORG.key_id, document, now)
    tokens = {}
    for name in ("Ana", "Bo"):
        tokens[name] = add_technician(relay, name)
        relay.store.set_profile(name, now, ["printing", "es"], 1, Availability.AWAY)
    return tokens


def test_filing_following_and_taking_a_request_over_http(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        tokens = set_up(relay)
        categories = await http_request(relay, "GET", f"/help/categories/{ORG.key_id}")
        assert categories.status == 200 and b'"printing"' in categories.body
        filed = await http_request(relay, "POST", "/help/requests", json_body=REQUEST)
        assert filed.status == 201, filed.body
        view = filed.json()
        assert (view["state"], view["position"]) == ("waiting", 1)
        path = f"/help/requests/{view['request_id']}"
        customer = {"Authorization": f"Bearer {view['token']}"}
        # Someone without the customer's token learns nothing.
        stranger = await http_request(relay, "GET", path, headers={"Authorization": "Bearer guess"})
        assert stranger.status == 404
        # The customer's long-poll is held while nothing changes ...
        held = asyncio.ensure_future(
            http_request(relay, "GET", f"{path}?after={view['version']}", headers=customer)
        )
        await asyncio.sleep(0.5)
        assert not held.done()
        # ... and answered as soon as a technician becomes available and is offered it.
        answer = await http_request(
            relay,
            "PUT",
            "/api/availability",
            token=tokens["Ana"],
            json_body={"availability": "available"},
        )
        assert answer.status == 200 and answer.json()["effective_availability"] == "busy"
        offered = await asyncio.wait_for(held, 5)
        assert offered.json()["state"] == "offered"

        def accept(token: str) -> Awaitable[HttpReply]:
            accepting = f"/api/queue/{view['request_id']}/accept"
            return http_request(relay, "POST", accepting, token=token, json_body={})

        # Bo may not take what is offered to Ana.
        refused = await accept(tokens["Bo"])
        assert (
            refused.status == 409 and "offered to another technician" in refused.json()["message"]
        )
        taken = await accept(tokens["Ana"])
        assert taken.status == 200, taken.body
        again = await accept(tokens["Bo"])
        assert (
            again.status == 409
            and "Another technician took this request" in again.json()["message"]
        )
        status = await http_request(relay, "GET", path, headers=customer)
        assert status.json()["technician"] == "Ana"
        assert status.json()["nameplate"] == taken.json()["nameplate"]

    run_with_relay(tmp_path, scenario)


def test_refusals_are_sentences_with_the_right_status(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        set_up(relay)
        cases = [
            ({**REQUEST, "organisation_key": ""}, 400, "session code"),
            ({**REQUEST, "category": "plumbing"}, 400, "choose one of: printing"),
            ({**REQUEST, "description": "x" * 501}, 400, "keep it to 500"),
            ({**REQUEST, "extra": 1}, 400, "Unknown field 'extra'"),
        ]
        for body, status, words in cases:
            reply = await http_request(relay, "POST", "/help/requests", json_body=body)
            assert reply.status == status and words in reply.json()["message"], reply.body
        for _ in range(5):
            assert (
                await http_request(relay, "POST", "/help/requests", json_body=REQUEST)
            ).status == 201
        flood = await http_request(relay, "POST", "/help/requests", json_body=REQUEST)
        assert flood.status == 429 and int(flood.headers["retry-after"]) > 0
        assert "Too many help requests from your address" in flood.json()["message"]
        unknown = await http_request(relay, "GET", "/help/categories/" + "ab" * 32)
        assert unknown.status == 404

    run_with_relay(tmp_path, scenario)


def test_a_waiting_request_survives_a_relay_restart(tmp_path: Path) -> None:
    filed: dict[str, str] = {}

    async def before(relay: RelayServer) -> None:
        filed.update(set_up(relay))  # everyone away: the request waits
        reply = await http_request(relay, "POST", "/help/requests", json_body=REQUEST)
        assert reply.status == 201
        filed["request_id"], filed["token"] = reply.json()["request_id"], reply.json()["token"]

    async def after(relay: RelayServer) -> None:
        path = f"/help/requests/{filed['request_id']}"
        customer = {"Authorization": f"Bearer {filed['token']}"}
        status = await http_request(relay, "GET", path, headers=customer)
        assert (status.json()["state"], status.json()["position"]) == ("waiting", 1)
        await http_request(
            relay,
            "PUT",
            "/api/availability",
            token=filed["Bo"],
            json_body={"availability": "available"},
        )
        listing = await http_request(relay, "GET", "/api/queue", token=filed["Bo"])
        [item] = listing.json()["requests"]
        assert item["request_id"] == filed["request_id"] and item["offered_to_you"]
        # Its place as its customer sees it (the viewer's Queue shows both).
        assert (item["position"], item["estimated_wait_seconds"]) == (1, 0)

    run_with_relay(tmp_path, before)
    run_with_relay(tmp_path, after)  # a new relay process's state: only the store is kept


def test_a_held_long_poll_outlives_the_handshake_deadline(tmp_path: Path) -> None:
    """In a quiet queue the customer's long-poll is held past ``open_timeout`` (the queue
    bounds it by LONG_POLL_SECONDS), not cut with no answer: the agent would show "could
    not reach the relay" every few seconds while nothing is wrong."""

    async def scenario(relay: RelayServer) -> None:
        tokens = set_up(relay)
        view = (await http_request(relay, "POST", "/help/requests", json_body=REQUEST)).json()
        held = asyncio.ensure_future(
            http_request(
                relay,
                "GET",
                f"/help/requests/{view['request_id']}?after={view['version']}",
                headers={"Authorization": f"Bearer {view['token']}"},
            )
        )
        await asyncio.sleep(1.5)  # three times the deadline of an opening handshake
        assert not held.done()
        await http_request(
            relay,
            "PUT",
            "/api/availability",
            token=tokens["Ana"],
            json_body={"availability": "available"},
        )
        answer = await asyncio.wait_for(held, 5)
        assert answer.status == 200 and answer.json()["state"] == "offered"

    run_with_relay(tmp_path, scenario, open_timeout=0.5)
