"""Honest test doubles and helpers for code that talks to a real relay.

Not used by the relay itself. Tests of the relay, the agent and the technician
client can start a real in-process relay on port 0 and drive it with these::

    clock = FakeClock()
    async with RelayServer(RelayConfig(data_dir=tmp_path, port=0, clock=clock)) as relay:
        token = add_technician(relay, "Ana")
        session = await create_session(relay, token, "T-1")
        clock.advance(601)  # the nameplate is now expired
"""

from __future__ import annotations

import asyncio
import http.client
import json
from dataclasses import dataclass
from typing import Any

from .server import RelayServer


class FakeClock:
    """A wall clock that moves only when told to; pass it as ``RelayConfig.clock``."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class HttpReply:
    """One HTTP answer: status, headers (lower-case names) and the body parsed as JSON."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def add_technician(relay: RelayServer, name: str = "Ana Technician") -> str:
    """Create a technician account in the relay's store; return its API token."""
    _, token = relay.store.add_technician(name, relay.config.clock())
    return token


async def http_request(
    relay: RelayServer,
    method: str,
    path: str,
    *,
    token: str | None = None,
    json_body: Any = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> HttpReply:
    """Make one real HTTP request to the relay from a worker thread (the loop keeps serving)."""
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    if json_body is not None:
        body = json.dumps(json_body).encode()
        all_headers.setdefault("Content-Type", "application/json")

    def request() -> HttpReply:
        connection = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            reply_headers = {k.lower(): v for k, v in response.getheaders()}
            return HttpReply(response.status, reply_headers, response.read())
        finally:
            connection.close()

    return await asyncio.to_thread(request)


async def create_session(
    relay: RelayServer, token: str, ticket_id: str = "T-1", ticket_url: str | None = None
) -> dict[str, Any]:
    """``POST /api/sessions`` and return the session JSON (raise if not 201)."""
    payload: dict[str, Any] = {"ticket_id": ticket_id}
    if ticket_url is not None:
        payload["ticket_url"] = ticket_url
    reply = await http_request(relay, "POST", "/api/sessions", token=token, json_body=payload)
    if reply.status != 201:
        raise AssertionError(f"creating a session failed: {reply.status} {reply.body!r}")
    session: dict[str, Any] = reply.json()
    return session
