"""The relay's REST API over real HTTP against an in-process relay on port 0."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from relay.config import RelayConfig
from relay.openapi import OPENAPI
from relay.server import RelayServer
from relay.testing import FakeClock, add_technician, create_session, http_request
from tests.support.timeouts import scaled

Scenario = Callable[[RelayServer], Awaitable[None]]


def run_with_relay(tmp_path: Path, scenario: Scenario, **settings: Any) -> None:
    """Run ``scenario(relay)`` against a fresh relay, all within a scaled deadline."""

    async def main() -> None:
        config = RelayConfig(
            data_dir=tmp_path / "relay", port=0, close_timeout=scaled(1), **settings
        )
        async with RelayServer(config) as relay:
            await scenario(relay)

    asyncio.run(asyncio.wait_for(main(), scaled(20)))


async def raw_http(relay: RelayServer, *chunks: bytes) -> tuple[int, bytes]:
    """Send raw bytes (in separate writes) and return the status and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.01)
        answer = await asyncio.wait_for(reader.read(), scaled(5))
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    if head.startswith(b"HTTP/1.1 100 "):  # an interim answer, then the real one
        head, _, body = body.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


# ---------------------------------------------------------------------------
# unauthenticated routes
# ---------------------------------------------------------------------------


def test_healthz_and_openapi_need_no_token(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        health = await http_request(relay, "GET", "/healthz")
        assert (health.status, health.json()) == (200, {"status": "ok"})
        assert health.headers["content-type"] == "application/json"
        spec = await http_request(relay, "GET", "/openapi.json")
        assert spec.status == 200
        document = spec.json()
        assert document["openapi"].startswith("3.1")
        assert set(document["paths"]) == {
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/join/{session_id}",
            "/join/{session_id}/agent/{system}",
            "/api/sessions",
            "/api/sessions/{session_id}",
            "/api/sessions/{session_id}/summary",
            "/api/revocations",
            "/api/devices",
            "/api/devices/{device_id}",
            "/api/devices/{device_id}/connect",
            "/revocations/{organisation_key}",
            "/help/categories/{organisation_key}",
            "/help/requests",
            "/help/requests/{request_id}",
            "/api/queue",
            "/api/availability",
            "/api/queue/{request_id}/accept",
            "/api/queue/{request_id}/decline",
            "/api/queue/{request_id}/transfer",
            "/help/requests/{request_id}/self-help",
            "/help/requests/{request_id}/outcomes",
            "/api/outcomes",
            "/api/outcomes/recheck",
        }
        assert set(document["paths"]["/api/sessions"]) == {"get", "post"}
        assert set(document["paths"]["/api/sessions/{session_id}"]) == {
            "parameters",
            "get",
            "delete",
        }
        assert json.dumps(OPENAPI)  # plain JSON data, no Python objects

    run_with_relay(tmp_path, scenario)


# ---------------------------------------------------------------------------
# authentication and canonical routing
# ---------------------------------------------------------------------------


def test_api_needs_a_valid_bearer_token(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        no_token = await http_request(relay, "GET", "/api/sessions")
        assert no_token.status == 401
        assert no_token.json()["error"] == "unauthorized"
        assert no_token.headers["www-authenticate"].startswith("Bearer")
        wrong = await http_request(relay, "GET", "/api/sessions", token=token + "x")
        assert wrong.status == 401
        forged = await http_request(relay, "GET", "/api/sessions", token="pt_abc_def")
        assert forged.status == 401
        basic = await http_request(
            relay, "GET", "/api/sessions", headers={"Authorization": "Basic YTpi"}
        )
        assert basic.status == 401
        unknown_unauthenticated = await http_request(relay, "GET", "/api/secret-setup")
        assert unknown_unauthenticated.status == 401  # deny before revealing routes
        ok = await http_request(relay, "GET", "/api/sessions", token=token)
        assert (ok.status, ok.json()) == (200, {"sessions": []})

    run_with_relay(tmp_path, scenario)


def test_removed_technician_token_stops_working(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay, "Ana")
        assert (await http_request(relay, "GET", "/api/sessions", token=token)).status == 200
        relay.store.disable_technician("Ana")
        assert (await http_request(relay, "GET", "/api/sessions", token=token)).status == 401

    run_with_relay(tmp_path, scenario)


def test_only_canonical_paths_match(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        sid = session["session_id"]
        for path in [
            "/api/sessions/",
            "/api/sessions//",
            "/api/sessions/../sessions",
            "/api/./sessions",
            "/api/sessions%2F",
            "/API/sessions",
            f"/api/sessions/{sid}/",
            f"/api/sessions/{sid}/..",
            f"/api/sessions/{sid.upper()}",
            "/api/sessions/123",
            "/api",
            "/api/",
            "/healthz/",
            "/openapi.json/",
            "//healthz",
            "/join/123/",
            "/join/",
            "/join/0123",
            f"/api/sessions/{sid}/summary/",
            "/",
        ]:
            reply = await http_request(relay, "GET", path, token=token)
            assert reply.status == 404, path
            assert reply.json()["error"] == "not_found", path
        assert (await http_request(relay, "GET", f"/api/sessions/{sid}", token=token)).status == 200

    run_with_relay(tmp_path, scenario)


def test_wrong_method_is_405_with_allow(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        cases = [
            ("PUT", "/api/sessions", "GET, POST"),
            ("DELETE", "/api/sessions", "GET, POST"),
            ("POST", f"/api/sessions/{session['session_id']}", "DELETE, GET"),
            ("POST", "/healthz", "GET"),
            ("DELETE", "/openapi.json", "GET"),
            ("POST", "/v1/session", "GET"),
        ]
        for method, path, allow in cases:
            reply = await http_request(relay, method, path, token=token)
            assert reply.status == 405, (method, path)
            assert reply.headers["allow"] == allow
            assert reply.json()["error"] == "method_not_allowed"

    run_with_relay(tmp_path, scenario)


# ---------------------------------------------------------------------------
# sessions
# ---------------------------------------------------------------------------


def test_create_list_get_delete(tmp_path: Path) -> None:
    clock = FakeClock()

    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay, "Ana Lopez")
        reply = await http_request(
            relay,
            "POST",
            "/api/sessions",
            token=token,
            json_body={"ticket_id": "T-1", "ticket_url": "https://desk.example/T-1"},
        )
        assert reply.status == 201
        first = reply.json()
        assert reply.headers["location"] == f"/api/sessions/{first['session_id']}"
        assert re.fullmatch(r"[0-9a-f]{32}", first["session_id"])
        assert re.fullmatch(r"[1-9][0-9]{2}", first["nameplate"])
        assert first["ticket_id"] == "T-1"
        assert first["ticket_url"] == "https://desk.example/T-1"
        assert first["technician"] == "Ana Lopez"
        assert first["state"] == "waiting"
        assert first["created_at"] == "2027-01-15T08:00:00Z"
        assert first["expires_at"] == "2027-01-15T08:10:00Z"
        assert first["join_url"] == f"http://127.0.0.1:{relay.port}/join/{first['session_id']}"
        assert token not in reply.body.decode()
        token_secret = token.split("_", 2)[2]
        assert token_secret not in reply.body.decode()

        clock.advance(1)
        second = await create_session(relay, token, "T-2")
        assert second["ticket_url"] is None
        assert second["nameplate"] != first["nameplate"]

        listing = await http_request(relay, "GET", "/api/sessions", token=token)
        ids = [s["session_id"] for s in listing.json()["sessions"]]
        assert ids == [second["session_id"], first["session_id"]]
        only_t1 = await http_request(relay, "GET", "/api/sessions?ticket_id=T-1", token=token)
        assert [s["session_id"] for s in only_t1.json()["sessions"]] == [first["session_id"]]

        path = f"/api/sessions/{first['session_id']}"
        got = await http_request(relay, "GET", path, token=token)
        assert got.status == 200 and got.json()["nameplate"] == first["nameplate"]

        deleted = await http_request(relay, "DELETE", path, token=token)
        assert deleted.status == 200
        assert deleted.json()["state"] == "ended"
        assert deleted.json()["end_reason"] == "ended through the API"
        again = await http_request(relay, "DELETE", path, token=token)
        assert again.status == 200 and again.json()["state"] == "ended"

        clock.advance(600)
        expired = await http_request(
            relay, "GET", f"/api/sessions/{second['session_id']}", token=token
        )
        assert expired.json()["state"] == "expired"

    run_with_relay(tmp_path, scenario, clock=clock)


def test_sessions_are_private_to_their_technician(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        ana = add_technician(relay, "Ana")
        bob = add_technician(relay, "Bob")
        session = await create_session(relay, ana)
        path = f"/api/sessions/{session['session_id']}"
        assert (await http_request(relay, "GET", path, token=bob)).status == 404
        assert (await http_request(relay, "DELETE", path, token=bob)).status == 404
        listing = await http_request(relay, "GET", "/api/sessions", token=bob)
        assert listing.json() == {"sessions": []}
        still = await http_request(relay, "GET", path, token=ana)
        assert still.json()["state"] == "waiting"

    run_with_relay(tmp_path, scenario)


def test_join_url_uses_public_url(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        session = await create_session(relay, add_technician(relay))
        assert session["join_url"] == f"https://relay.example.com/join/{session['session_id']}"

    run_with_relay(tmp_path, scenario, public_url="https://relay.example.com/")


def test_create_session_validates_its_body(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        bad_bodies: list[Any] = [
            {},
            {"ticket_id": ""},
            {"ticket_id": "   "},
            {"ticket_id": "x" * 201},
            {"ticket_id": 7},
            {"ticket_id": "T\n1"},
            {"ticket_id": "T-1", "ticket_url": "javascript:alert(1)"},
            {"ticket_id": "T-1", "ticket_url": "file:///etc/passwd"},
            {"ticket_id": "T-1", "ticket_url": 5},
            {"ticket_id": "T-1", "technician_id": "someone else"},
            ["T-1"],
        ]
        for body in bad_bodies:
            reply = await http_request(relay, "POST", "/api/sessions", token=token, json_body=body)
            assert reply.status == 400, body
            assert reply.json()["error"] == "bad_request"
            assert reply.json()["message"].endswith(".")
        not_json = await http_request(
            relay,
            "POST",
            "/api/sessions",
            token=token,
            body=b"{nope",
            headers={"Content-Type": "application/json"},
        )
        assert not_json.status == 400
        form = await http_request(
            relay,
            "POST",
            "/api/sessions",
            token=token,
            body=b"ticket_id=T-1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert form.status == 415
        ok = await http_request(
            relay, "POST", "/api/sessions", token=token, json_body={"ticket_id": "x" * 200}
        )
        assert ok.status == 201
        query = await http_request(relay, "GET", "/api/sessions?debug=1", token=token)
        assert query.status == 400
        twice = await http_request(
            relay, "GET", "/api/sessions?ticket_id=a&ticket_id=b", token=token
        )
        assert twice.status == 400

    run_with_relay(tmp_path, scenario)


# ---------------------------------------------------------------------------
# request bodies on the websockets server
# ---------------------------------------------------------------------------


def test_request_bodies_are_read_in_pieces_and_capped(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        body = json.dumps({"ticket_id": "T-raw"}).encode()
        head = (
            f"POST /api/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        # Head and body split at awkward places, across several TCP writes.
        status, answer = await raw_http(relay, head[:10], head[10:] + body[:3], body[3:])
        assert status == 201 and json.loads(answer)["ticket_id"] == "T-raw"

        expect = head.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
        status, answer = await raw_http(relay, expect, body)
        assert status == 201

        huge = head.replace(f"Content-Length: {len(body)}".encode(), b"Content-Length: 70000")
        status, answer = await raw_http(relay, huge, b"x" * 1000)
        assert status == 413 and json.loads(answer)["error"] == "too_large"

        chunked = head.replace(
            f"Content-Length: {len(body)}".encode(), b"Transfer-Encoding: chunked"
        )
        status, _ = await raw_http(relay, chunked, b"5\r\nhello\r\n0\r\n\r\n")
        assert status == 411

        for length in (
            b"Content-Length: -1",
            b"Content-Length: 1e3",
            b"Content-Length: 2\r\nContent-Length: 3",
        ):
            malformed = head.replace(f"Content-Length: {len(body)}".encode(), length)
            status, _ = await raw_http(relay, malformed, body)
            assert status == 400, length

        # Bytes after the body are never parsed as another request or as frames.
        smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        status, answer = await raw_http(relay, head + body + smuggled)
        assert status == 201 and b"ok" not in answer

    run_with_relay(tmp_path, scenario)
