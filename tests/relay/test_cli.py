"""``puente-relay`` as a real process: technician accounts, serve, shutdown, logs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from protocol import envelope
from protocol.envelope import Role
from relay.sqlite_store import SQLiteStore
from tests.support.relay import RelayProcess, start_relay
from tests.support.timeouts import scaled


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay.cli", *args],
        capture_output=True,
        text=True,
        timeout=scaled(30),
        env={**os.environ, **(env or {})},
    )


def rest(
    relay: RelayProcess, method: str, path: str, token: str, body: Any = None
) -> tuple[int, Any]:
    request = urllib.request.Request(
        relay.http_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=scaled(10)) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_technician_add_prints_the_token_last(tmp_path: Path) -> None:
    result = cli("technician", "add", "Ana Lopez", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    token = lines[-1]
    assert token.startswith("pt_") and " " not in token
    assert len(lines) >= 2  # a sentence for the human first
    store = SQLiteStore(tmp_path)
    try:
        technician = store.authenticate(token)
        assert technician is not None and technician.name == "Ana Lopez"
    finally:
        store.close()


def test_technician_list_and_remove(tmp_path: Path) -> None:
    env = {"PUENTE_DATA_DIR": str(tmp_path)}  # the data dir may come from the environment
    token = cli("technician", "add", "Ana", env=env).stdout.strip().splitlines()[-1]
    cli("technician", "add", "Bob", env=env)
    listing = cli("technician", "list", env=env)
    assert listing.returncode == 0
    assert "Ana" in listing.stdout and "Bob" in listing.stdout and "active" in listing.stdout
    assert token not in listing.stdout and token.split("_", 2)[2] not in listing.stdout
    removed = cli("technician", "remove", "Ana", env=env)
    assert removed.returncode == 0
    assert "removed" in cli("technician", "list", env=env).stdout
    store = SQLiteStore(tmp_path)
    try:
        assert store.authenticate(token) is None
    finally:
        store.close()


def test_cli_errors_are_one_sentence_and_exit_2(tmp_path: Path) -> None:
    cli("technician", "add", "Ana", "--data-dir", str(tmp_path))
    for args in [
        ("technician", "add", "Ana", "--data-dir", str(tmp_path)),
        ("technician", "remove", "Nobody", "--data-dir", str(tmp_path)),
        ("technician", "add", "   ", "--data-dir", str(tmp_path)),
    ]:
        result = cli(*args)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("puente-relay: ") and result.stderr.count("\n") == 1
    env = {k: v for k, v in os.environ.items() if k != "PUENTE_DATA_DIR"}
    missing = subprocess.run(
        [sys.executable, "-m", "relay.cli", "technician", "list"],
        capture_output=True,
        text=True,
        timeout=scaled(30),
        env=env,
    )
    assert missing.returncode == 2 and "--data-dir" in missing.stderr


def test_help_mentions_commands_and_environment() -> None:
    top = cli("--help")
    assert top.returncode == 0
    assert "serve" in top.stdout and "technician" in top.stdout
    serve = cli("serve", "--help")
    for text in ("PUENTE_DATA_DIR", "PUENTE_HOST", "PUENTE_PORT", "--public-url", "--idle-timeout"):
        assert text in serve.stdout
    via_package = subprocess.run(
        [sys.executable, "-m", "relay", "--help"], capture_output=True, text=True, timeout=30
    )
    assert via_package.returncode == 0 and "technician" in via_package.stdout


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("serve", "--data-dir", str(tmp_path), "--port", str(port))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr


def test_serve_prints_listening_line_and_stops_on_sigterm(relay_process: RelayProcess) -> None:
    with urllib.request.urlopen(f"{relay_process.http_url}/healthz", timeout=scaled(10)) as reply:
        assert json.loads(reply.read()) == {"status": "ok"}
    relay_process.proc.send_signal(signal.SIGTERM)
    assert relay_process.proc.wait(timeout=scaled(15)) == 0
    log = relay_process.stop()
    assert "relay stopped" in log and "Traceback" not in log


def test_a_session_through_the_process_logs_no_content(relay_process: RelayProcess) -> None:
    token = relay_process.add_technician("Ana Lopez")
    status, session = rest(relay_process, "POST", "/api/sessions", token, {"ticket_id": "T-9"})
    assert status == 201
    payloads = [b"CONTENT-FROM-AGENT-" + os.urandom(16), b"CONTENT-FROM-TECH-" + os.urandom(16)]

    async def run_session() -> None:
        url = relay_process.ws_url + envelope.WS_PATH
        async with (
            connect(url, compression=None) as agent,
            connect(
                url, compression=None, additional_headers={"Authorization": f"Bearer {token}"}
            ) as tech,
        ):
            await agent.send(envelope.claim(Role.AGENT, session["nameplate"]))
            await tech.send(envelope.claim(Role.TECHNICIAN, session["nameplate"]))
            for ws in (agent, tech):
                kinds = [json.loads(await asyncio.wait_for(ws.recv(), scaled(5)))["type"]]
                if kinds[0] == "waiting":
                    kinds.append(json.loads(await asyncio.wait_for(ws.recv(), scaled(5)))["type"])
                assert kinds == ["waiting", "paired"]
            await agent.send(payloads[0])
            await tech.send(payloads[1])
            assert await asyncio.wait_for(tech.recv(), scaled(5)) == payloads[0]
            assert await asyncio.wait_for(agent.recv(), scaled(5)) == payloads[1]
            await tech.send(envelope.encode({"type": "end", "reason": "fixed"}))
            assert (
                json.loads(await asyncio.wait_for(agent.recv(), scaled(5)))["type"] == "peer_gone"
            )

    asyncio.run(asyncio.wait_for(run_session(), scaled(20)))
    # The relay records the end just after telling the peer; poll briefly.
    deadline = time.monotonic() + scaled(5)
    while True:
        _, record = rest(relay_process, "GET", f"/api/sessions/{session['session_id']}", token)
        if record["state"] == "ended" or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert record["state"] == "ended"
    assert record["bytes_agent_to_tech"] == len(payloads[0])
    log = relay_process.stop()
    assert relay_process.proc.returncode == 0
    assert "session paired" in log and session["session_id"] in log
    assert "CONTENT-FROM" not in log
    for payload in payloads:
        assert payload.hex() not in log
    assert token not in log and token.split("_", 2)[2] not in log


def test_serve_reads_settings_from_the_environment(tmp_path: Path) -> None:
    relay = start_relay(
        tmp_path / "relay",
        env={"PUENTE_PUBLIC_URL": "https://relay.example.com", "PUENTE_NAMEPLATE_TTL": "120"},
    )
    try:
        token = relay.add_technician()
        status, session = rest(relay, "POST", "/api/sessions", token, {"ticket_id": "T-1"})
        assert status == 201
        assert session["join_url"] == f"https://relay.example.com/join/{session['session_id']}"
        created = datetime.fromisoformat(session["created_at"])
        expires = datetime.fromisoformat(session["expires_at"])
        assert (expires - created).total_seconds() == 120
    finally:
        relay.stop()
