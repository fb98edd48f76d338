"""Agent downloads served by a real in-process relay on port 0 (relay.downloads).

Real HTTP over loopback: whole files, one range (206), ranges past the end (416),
If-Range, unknown systems, a file gone missing, paths that try to climb out, expired
sessions, and a 30 MB file streamed while the relay's Python memory stays flat.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import ssl
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from websockets.datastructures import Headers

from relay.config import RelayConfig
from relay.downloads import ByteBudget, DownloadShelf, UnsatisfiableRange, requested_range
from relay.server import RelayServer
from relay.testing import FakeClock, add_technician, create_session, http_request
from tests.support.services import self_signed_certificate
from tests.support.timeouts import scaled

MB = 1024 * 1024


def agent_file(path: Path, size: int) -> Path:
    """A stand-in agent of ``size`` bytes (a pattern no range can hide an error in)."""
    block = bytes(range(251)) * (MB // 251 + 1)
    with path.open("wb") as out:
        left = size
        while left:
            piece = block[: min(left, MB)]
            out.write(piece)
            left -= len(piece)
            block = block[7:] + block[:7]  # each MiB differs from the last
    return path


def create_over_tls(port: int, token: str, context: ssl.SSLContext) -> dict[str, Any]:
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=scaled(10), context=context)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connection.request("POST", "/api/sessions", body=b'{"ticket_id": "HD-7"}', headers=headers)
    reply = connection.getresponse()
    assert reply.status == 201
    session: dict[str, Any] = json.loads(reply.read())
    connection.close()
    return session


def run(
    tmp_path: Path,
    scenario: Any,
    size: int = 3 * MB,
    tls: ssl.SSLContext | None = None,
    **settings: Any,
) -> None:
    """Run ``scenario(relay, session, source)`` with a Linux and a Windows agent stored."""
    source = agent_file(tmp_path / "built-agent", size)
    shelf = DownloadShelf(tmp_path / "relay")
    shelf.add(source, "linux", 1_800_000_000.0)
    shelf.add(source, "windows", 1_800_000_000.0)

    async def main() -> None:
        config = RelayConfig(
            data_dir=tmp_path / "relay", port=0, close_timeout=scaled(1), **settings
        )
        async with RelayServer(config) as relay:
            token = add_technician(relay, "Ana")
            if config.tls_cert is None:
                session = await create_session(relay, token, "HD-7")
            else:
                session = await asyncio.to_thread(create_over_tls, relay.port, token, tls)
            await scenario(relay, session, source)

    asyncio.run(asyncio.wait_for(main(), scaled(60)))


def agent_path(session: dict[str, Any], system: str = "linux") -> str:
    return f"/join/{session['session_id']}/agent/{system}"


def test_the_whole_file_is_named_after_the_nameplate(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer, session: dict[str, Any], source: Path) -> None:
        reply = await http_request(relay, "GET", agent_path(session))
        assert reply.status == 200
        assert reply.body == source.read_bytes()
        nameplate = session["nameplate"]
        disposition = reply.headers["content-disposition"]
        assert disposition == f'attachment; filename="puente-agent-{nameplate}"'
        assert reply.headers["content-length"] == str(source.stat().st_size)
        assert reply.headers["accept-ranges"] == "bytes"
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        assert reply.headers["etag"] == f'"{digest[:32]}"'
        assert reply.headers["content-type"] == "application/octet-stream"
        windows = await http_request(relay, "GET", agent_path(session, "windows"))
        assert windows.headers["content-disposition"].endswith(f'puente-agent-{nameplate}.exe"')
        head = await http_request(relay, "HEAD", agent_path(session))
        assert head.status == 200 and head.body == b""
        assert head.headers["content-length"] == str(source.stat().st_size)

    run(tmp_path, scenario)


def test_one_range_resumes_and_a_range_past_the_end_is_416(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer, session: dict[str, Any], source: Path) -> None:
        data = source.read_bytes()
        size = len(data)
        cases = {
            "bytes=1000-1999": (1000, 1999),
            "bytes=2000000-": (2000000, size - 1),
            "bytes=-500": (size - 500, size - 1),
            f"bytes=10-{size + 50}": (10, size - 1),
        }
        for header, (first, last) in cases.items():
            reply = await http_request(relay, "GET", agent_path(session), headers={"Range": header})
            assert reply.status == 206, header
            assert reply.headers["content-range"] == f"bytes {first}-{last}/{size}"
            assert reply.body == data[first : last + 1], header
        etag = (await http_request(relay, "HEAD", agent_path(session))).headers["etag"]
        resumed = await http_request(
            relay, "GET", agent_path(session), headers={"Range": "bytes=5-", "If-Range": etag}
        )
        assert resumed.status == 206 and resumed.body == data[5:]
        changed = await http_request(
            relay, "GET", agent_path(session), headers={"Range": "bytes=5-", "If-Range": '"old"'}
        )
        assert changed.status == 200 and changed.body == data  # the file changed: all of it
        for header in (f"bytes={size}-", "bytes=-0"):
            past = await http_request(relay, "GET", agent_path(session), headers={"Range": header})
            assert past.status == 416, header
            assert past.headers["content-range"] == f"bytes */{size}"
            assert str(size) in past.json()["message"]
        several = await http_request(
            relay, "GET", agent_path(session), headers={"Range": "bytes=0-1,5-9"}
        )
        assert several.status == 200 and several.body == data

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", (0, 0)),
        ("bytes=9-", (9, 9)),
        ("bytes=-20", (0, 9)),
        ("bytes=5-3", None),
        ("bytes=-", None),
        ("lines=1-2", None),
        ("bytes=1-2, 4-5", None),
    ],
)
def test_requested_range(header: str, expected: tuple[int, int] | None, tmp_path: Path) -> None:
    shelf = DownloadShelf(tmp_path)
    download = shelf.add(agent_file(tmp_path / "a", 10), "linux", 0.0)
    assert requested_range(Headers([("Range", header)]), download) == expected
    with pytest.raises(UnsatisfiableRange):
        requested_range(Headers([("Range", "bytes=10-")]), download)


def test_unknown_systems_missing_files_and_climbing_paths_serve_nothing(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer, session: dict[str, Any], source: Path) -> None:
        beos = await http_request(relay, "GET", agent_path(session, "beos"))
        assert beos.status == 404 and "windows, macos, linux" in beos.json()["message"]
        macos = await http_request(relay, "GET", agent_path(session, "macos"))
        assert macos.status == 404
        assert "no agent for macOS" in macos.json()["message"]
        (tmp_path / "relay" / "downloads" / "linux.agent").unlink()
        gone = await http_request(relay, "GET", agent_path(session))
        assert gone.status == 404 and "ask your technician" in gone.json()["message"]
        secret = (tmp_path / "relay" / "relay.sqlite3").read_bytes()[:16]
        base = f"/join/{session['session_id']}"
        for path in (
            f"{base}/agent/../../relay.sqlite3",
            f"{base}/agent/%2e%2e%2frelay.sqlite3",
            f"{base}/agent/windows/../../downloads/windows.agent",
            "/join/assets/../downloads/windows.agent",
            "/join/assets/%2e%2e/downloads/windows.json",
            "/join/assets/..%2f..%2frelay.sqlite3",
        ):
            reply = await http_request(relay, "GET", path)
            assert reply.status == 404, path
            assert secret not in reply.body and len(reply.body) < 1000
        post = await http_request(relay, "POST", agent_path(session, "windows"), body=b"x")
        assert post.status == 405 and post.headers["allow"] == "GET, HEAD"

    run(tmp_path, scenario)


def test_a_session_that_no_longer_waits_serves_no_download(tmp_path: Path) -> None:
    clock = FakeClock()

    async def scenario(relay: RelayServer, session: dict[str, Any], source: Path) -> None:
        clock.advance(601)
        reply = await http_request(relay, "GET", agent_path(session))
        assert reply.status == 410 and "new one" in reply.json()["message"]
        unknown = await http_request(relay, "GET", f"/join/{'0' * 32}/agent/linux")
        assert unknown.status == 410

    run(tmp_path, scenario, clock=clock)


def test_downloads_are_rate_limited_per_address(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer, session: dict[str, Any], source: Path) -> None:
        statuses = [
            (await http_request(relay, "HEAD", agent_path(session))).status for _ in range(31)
        ]
        assert statuses[:30] == [200] * 30
        assert statuses[30] == 429

    run(tmp_path, scenario, size=1000)


def test_a_30_mb_download_streams_in_constant_memory(tmp_path: Path) -> None:
    """The relay's Python allocations while it streams 30 MB stay under 1 MB: the file
    is never read whole. The client reads slowly into one reused buffer, so the relay
    has to wait on a full socket many times over."""

    async def scenario(relay: RelayServer, session: dict[str, Any], source: Path) -> None:
        def download() -> tuple[int, str]:
            connection = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=scaled(30))
            connection.request("GET", agent_path(session))
            response = connection.getresponse()
            assert response.status == 200
            buffer = bytearray(256 * 1024)
            view = memoryview(buffer)
            digest = hashlib.sha256()
            total = 0
            while n := response.readinto(buffer):
                digest.update(view[:n])
                total += n
            connection.close()
            return total, digest.hexdigest()

        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            total, digest = await asyncio.to_thread(download)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert total == 30 * MB
        assert digest == hashlib.sha256(source.read_bytes()).hexdigest()
        grew = peak - before
        assert grew < 1 * MB, f"the relay's memory grew by {grew / MB:.1f} MB while streaming"

    run(tmp_path, scenario, size=30 * MB)


def test_a_client_that_stops_reading_is_dropped_and_its_slot_freed(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer, session: dict[str, Any], source: Path) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(f"GET {agent_path(session)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        # Read nothing more: past the stall timeout the relay drops the connection.
        await asyncio.sleep(scaled(1.5))
        received = len(head)
        try:
            while chunk := await reader.read(MB):
                received += len(chunk)
        except ConnectionError:
            pass
        writer.close()
        assert received < 30 * MB
        after = await http_request(relay, "HEAD", agent_path(session))
        assert after.status == 200

    run(tmp_path, scenario, size=30 * MB, download_stall_timeout=0.5, max_connections_per_ip=2)


def test_downloads_command_line(tmp_path: Path) -> None:
    source = agent_file(tmp_path / "puente-agent.exe", 4096)
    (tmp_path / "puente-agent.exe.sig").write_bytes(b"\x01" * 64)
    data = ["--data-dir", str(tmp_path / "relay")]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "relay.cli", "downloads", *args],
            capture_output=True,
            text=True,
            timeout=scaled(30),
        )

    added = cli("add", str(source), "--os", "windows", "--json", *data)
    assert added.returncode == 0, added.stderr
    entry = json.loads(added.stdout)
    assert entry["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert entry["size"] == 4096 and entry["signature"]
    listed = cli("list", "--json", *data)
    assert [e["system"] for e in json.loads(listed.stdout)] == ["windows"]
    assert "SHA-256" in cli("add", str(source), "--os", "linux", *data).stdout
    assert "unsigned" not in cli("list", *data).stdout.split("\n")[0]
    missing = cli("add", str(tmp_path / "nope"), "--os", "linux", *data)
    assert missing.returncode == 2 and "is not a file" in missing.stderr
    wrong = cli("add", str(source), "--os", "beos", *data)
    assert wrong.returncode == 2 and "invalid choice" in wrong.stderr
    assert cli("remove", "--os", "windows", *data).returncode == 0
    again = cli("remove", "--os", "windows", *data)
    assert again.returncode == 1 and "downloads list" in again.stderr
    assert "downloads add dist/puente-agent --os linux" in cli("add", "--help").stdout
    no_dir = cli("list")
    assert no_dir.returncode == 2 and "--data-dir" in no_dir.stderr


def test_over_tls_the_same_file_and_ranges_in_constant_memory(tmp_path: Path) -> None:
    """Behind the relay's own TLS (sendfile falls back to small encrypted writes)."""
    pair = self_signed_certificate(tmp_path / "tls")
    context = ssl.create_default_context(cafile=str(pair.cert))

    async def scenario(relay: RelayServer, session: dict[str, Any], source: Path) -> None:
        def fetch(headers: dict[str, str]) -> tuple[int, str, str, int]:
            connection = http.client.HTTPSConnection(
                "127.0.0.1", relay.port, timeout=scaled(30), context=context
            )
            connection.request("GET", agent_path(session), headers=headers)
            response = connection.getresponse()
            digest, total = hashlib.sha256(), 0
            buffer = bytearray(256 * 1024)
            while n := response.readinto(buffer):
                digest.update(memoryview(buffer)[:n])
                total += n
            connection.close()
            return (
                response.status,
                response.headers["Content-Range"] or "",
                digest.hexdigest(),
                total,
            )

        data = source.read_bytes()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            status, _, digest, total = await asyncio.to_thread(fetch, {})
            grew = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        assert (status, total) == (200, len(data))
        assert digest == hashlib.sha256(data).hexdigest()
        assert grew < 2 * MB, f"{grew / MB:.1f} MB"
        status, content_range, digest, total = await asyncio.to_thread(
            fetch, {"Range": "bytes=1000000-"}
        )
        assert (status, content_range) == (206, f"bytes 1000000-{len(data) - 1}/{len(data)}")
        assert digest == hashlib.sha256(data[1000000:]).hexdigest()

    run(tmp_path, scenario, 12 * MB, context, tls_cert=pair.cert, tls_key=pair.key)


def test_the_byte_budget_paces_all_downloads_together() -> None:
    budget = ByteBudget(rate=1000.0, burst=500.0)
    assert budget.delay(400, now=0.0) == 0.0  # within the burst
    assert budget.delay(400, now=0.0) == pytest.approx(0.3)  # 300 bytes over: 0.3 s
    assert budget.delay(100, now=0.3) == pytest.approx(0.1)  # the debt was paid by 0.3
    assert budget.delay(100, now=10.0) == 0.0  # refilled, up to the burst only
    assert budget.delay(600, now=10.0) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        ByteBudget(rate=0, burst=1)
