"""The relay holds under abuse (issue 15, findings 4, 5 and 7): real relay processes
on loopback, raw sockets and real websockets clients."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import socket
import stat
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.relay import RelayProcess, start_relay
from tests.support.timeouts import scaled

#: What a relay may grow by while one client floods it with pings it never reads the
#: pongs of: its send buffer cap (4 MiB) plus websockets' and Python's own slack.
#: (Before the cap, 20 s of such a flood grew a relay by about 240 MB.)
RSS_GROWTH_BOUND = 48 * 1024 * 1024


def _api(
    relay: RelayProcess,
    method: str,
    path: str,
    token: str | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        relay.http_url + path, data=body, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=scaled(10)) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def _new_session(relay: RelayProcess, token: str, ticket: str = "T-1") -> dict[str, Any]:
    status, _, session = _api(
        relay, "POST", "/api/sessions", token, json.dumps({"ticket_id": ticket}).encode()
    )
    assert status == 201, session
    return session


def _upgrade(port: int, source: str = "127.0.0.1", rcvbuf: int | None = None) -> socket.socket:
    """A raw socket that completed a WebSocket upgrade of /v1/session."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.settimeout(scaled(10))
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /v1/session HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "the relay closed the upgrade"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (payload under 126 bytes)."""
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + masked


def _flood_pings(sock: socket.socket, relay_pid: int, seconds: float) -> tuple[bool, int]:
    """Send 125-byte pings without reading; return (closed by the relay, peak RSS)."""
    process = psutil.Process(relay_pid)
    burst = _frame(0x9, b"p" * 125) * 512
    peak = process.memory_info().rss
    deadline = time.monotonic() + seconds
    sock.settimeout(0.5)
    closed = False
    while time.monotonic() < deadline:
        try:
            sock.sendall(burst)
        except TimeoutError:
            pass  # the relay stopped reading for now; keep trying
        except OSError:
            closed = True
            break
        peak = max(peak, process.memory_info().rss)
    return closed, max(peak, process.memory_info().rss)


@pytest.fixture
def abuse_relay(tmp_path: Path) -> Iterator[RelayProcess]:
    relay = start_relay(
        tmp_path / "relay-data",
        "--max-connections",
        "40",
        "--max-connections-per-ip",
        "5",
        "--sessions-per-minute",
        "5",
    )
    try:
        yield relay
    finally:
        relay.stop()


@pytest.mark.parametrize("claimed", [False, True], ids=["before-claim", "after-claim"])
def test_a_ping_flooder_that_never_reads_is_closed_and_memory_stays_bounded(
    abuse_relay: RelayProcess, claimed: bool
) -> None:
    relay = abuse_relay
    sock = _upgrade(relay.port, rcvbuf=4096)
    if claimed:
        session = _new_session(relay, relay.add_technician())
        claim = {"type": "claim", "version": 1, "role": "agent"}
        claim["nameplate"] = session["nameplate"]
        sock.sendall(_frame(0x1, json.dumps(claim).encode()))
    time.sleep(0.2)
    before = psutil.Process(relay.proc.pid).memory_info().rss
    # Well under the claim timeout (10 s): the flood, not the missing claim, closes it.
    closed, peak = _flood_pings(sock, relay.proc.pid, scaled(8))
    sock.close()
    assert closed, "the relay kept a client that never reads its pongs"
    assert peak - before < RSS_GROWTH_BOUND, (before, peak)
    assert "over 4194304 bytes unread" in relay.stop()


def test_one_address_cannot_take_every_connection(abuse_relay: RelayProcess) -> None:
    relay = abuse_relay

    async def scenario() -> None:
        url = relay.ws_url + "/v1/session"
        held = [await connect(url, local_addr=("127.0.0.1", 0)) for _ in range(5)]
        try:
            with pytest.raises(InvalidStatus) as refused:
                await connect(url, local_addr=("127.0.0.1", 0))
            assert refused.value.response.status_code == 503
            assert b"too many connections" in refused.value.response.body
            # Another address still gets in.
            other = await connect(url, local_addr=("127.0.0.2", 0))
            await other.close()
        finally:
            for connection in held:
                await connection.close()
        # Slots come back once connections close.
        again = await connect(url, local_addr=("127.0.0.1", 0))
        await again.close()

    asyncio.run(scenario())


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the relay sends before it closes ``sock``."""
    answer = b""
    while chunk := sock.recv(4096):
        answer += chunk
    return answer


def _pong(sock: socket.socket) -> bytes:
    """Ping an upgraded raw socket and return the pong frame's payload."""
    sock.sendall(_frame(0x9, b"still here"))
    head = sock.recv(2)
    assert head[0] == 0x8A, head  # FIN + pong, unmasked from the server
    return sock.recv(head[1] & 0x7F)


def test_a_flood_of_half_open_sockets_over_max_handshakes_is_refused_and_upgraded_ones_live(
    tmp_path: Path,
) -> None:
    relay = start_relay(tmp_path / "relay-data", "--max-handshakes", "8")
    upgraded = [_upgrade(relay.port) for _ in range(3)]
    flood: list[socket.socket] = []
    try:
        for _ in range(8):  # fills the budget: each sends half a request head and waits
            sock = socket.create_connection(("127.0.0.1", relay.port), timeout=scaled(5))
            sock.sendall(b"GET /v1/session HTTP/1.1\r\nHost: x\r\n")
            flood.append(sock)
        for _ in range(20):  # past it: each is told why and closed at once
            sock = socket.create_connection(("127.0.0.1", relay.port), timeout=scaled(5))
            flood.append(sock)
            answer = _read_until_closed(sock)
            assert answer.startswith(b"HTTP/1.1 503"), answer
            assert b"at capacity or restarting; try again in a moment." in answer
        assert all(_pong(sock) == b"still here" for sock in upgraded)
        for sock in flood:
            sock.close()
        # The budget comes back once half-open connections close.
        deadline = time.monotonic() + scaled(5)
        while True:
            try:
                upgraded.append(_upgrade(relay.port))
                break
            except AssertionError:
                assert time.monotonic() < deadline, "the handshake budget never came back"
                time.sleep(0.05)
        assert _pong(upgraded[-1]) == b"still here"
        assert relay.proc.poll() is None
    finally:
        for sock in upgraded + flood:
            sock.close()
        relay.stop()


def _low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def test_half_open_requests_under_a_low_file_limit_leave_healthz_answering(
    tmp_path: Path,
) -> None:
    relay = start_relay(tmp_path / "relay-data", preexec_fn=_low_file_limit)
    flood: list[socket.socket] = []
    try:
        for _ in range(1100):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.2", 0))
            sock.settimeout(scaled(5))
            flood.append(sock)
            try:
                sock.connect(("127.0.0.1", relay.port))
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            except OSError:
                pass  # refused or closed at once: what the caps are for
        started = time.monotonic()
        with urllib.request.urlopen(relay.http_url + "/healthz", timeout=scaled(5)) as answer:
            assert answer.status == 200
            assert json.loads(answer.read()) == {"status": "ok"}
        assert time.monotonic() - started < scaled(5)
        assert relay.proc.poll() is None
    finally:
        for sock in flood:
            sock.close()
        relay.stop()


def test_json_nested_too_deep_is_refused_with_400(abuse_relay: RelayProcess) -> None:
    relay = abuse_relay
    token = relay.add_technician()
    for body in (b"[" * 60_000, b'{"a":' * 40 + b"1" + b"}" * 40):
        status, _, answer = _api(relay, "POST", "/api/sessions", token, body)
        assert status == 400, answer
        assert answer["error"] == "bad_request"
        assert answer["message"].endswith(".")
    status, _, answer = _api(relay, "POST", "/api/sessions", token, b"\xff\xfe[")
    assert status == 400, answer
    # A bracket inside a string is not nesting.
    ticket = json.dumps({"ticket_id": "[" * 150}).encode()
    assert _api(relay, "POST", "/api/sessions", token, ticket)[0] == 201


def test_session_creation_is_limited_per_token(abuse_relay: RelayProcess) -> None:
    relay = abuse_relay
    token, other = relay.add_technician("Ana"), relay.add_technician("Luis")
    for n in range(5):
        _new_session(relay, token, f"T-{n}")
    status, headers, answer = _api(
        relay, "POST", "/api/sessions", token, json.dumps({"ticket_id": "T-6"}).encode()
    )
    assert status == 429
    assert answer["error"] == "rate_limited"
    assert "wait" in answer["message"] and answer["message"].endswith("try again.")
    assert 1 <= int(headers["Retry-After"]) <= 60
    _new_session(relay, other, "T-7")  # another technician's token is not affected


def test_the_relay_files_are_readable_by_their_owner_only(abuse_relay: RelayProcess) -> None:
    relay = abuse_relay
    _new_session(relay, relay.add_technician())  # writes through the WAL
    data_dir = relay.data_dir
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    files = [
        data_dir / name for name in ("relay.sqlite3", "relay.sqlite3-wal", "relay.sqlite3-shm")
    ]
    assert files[0].exists()
    for path in files:
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
