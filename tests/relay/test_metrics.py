"""The relay's /metrics (Prometheus text, checked with prometheus_client's parser) and
its graceful drain on shutdown. Real in-process relays and websockets clients."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus

from protocol import envelope
from relay.metrics import authorize
from relay.server import RelayServer
from relay.testing import add_technician, create_session, http_request
from tests.relay.test_ws import (
    AGENT,
    TECH,
    claim,
    expect_closed,
    expect_error,
    open_end,
    pair,
    recv_json,
    refused_claim,
    run_with_relay,
    wait_for_state,
)
from tests.support.relay import start_relay
from tests.support.timeouts import scaled


async def scrape(relay: RelayServer, **headers: str) -> dict[str, float]:
    """GET /metrics and return every sample as ``name{labels}`` -> value."""
    reply = await http_request(relay, "GET", "/metrics", headers=headers)
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def test_metrics_follow_sessions_bytes_and_refusals(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        first = await scrape(relay)
        for name in (
            "puente_sessions_waiting",
            "puente_sessions_active",
            "puente_pairings_failed_total",
            "puente_webhook_backlog",
            "puente_forwarding_latency_seconds_count",
        ):
            assert first[name] == 0, name
        assert first["puente_bytes_forwarded_total{direction=agent_to_technician}"] == 0

        session = await create_session(relay, token)
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            assert (await claim(agent, AGENT, session["nameplate"]))["type"] == "waiting"
            waiting = await scrape(relay)
            assert waiting["puente_sessions_waiting"] == 1
            assert waiting["puente_sessions_active"] == 0
            assert (await claim(tech, TECH, session["nameplate"]))["type"] == "waiting"
            await recv_json(agent), await recv_json(tech)
            for size in (10, 20_000, 300):
                await agent.send(os.urandom(size))
                await asyncio.wait_for(tech.recv(), scaled(5))
            await tech.send(os.urandom(5))
            await asyncio.wait_for(agent.recv(), scaled(5))
            active = await scrape(relay)
            assert active["puente_sessions_waiting"] == 0
            assert active["puente_sessions_active"] == 1
            assert active["puente_connections_open"] == 2
            assert active["puente_bytes_forwarded_total{direction=agent_to_technician}"] == 20_310
            assert active["puente_bytes_forwarded_total{direction=technician_to_agent}"] == 5
            assert active["puente_forwarding_latency_seconds_count"] == 4
            assert active["puente_forwarding_latency_seconds_bucket{le=+Inf}"] == 4
            assert 0 < active["puente_forwarding_latency_seconds_sum"] < 4 * scaled(1)

            # A failed pairing: the agent burns the code.
            await agent.send(envelope.encode({"type": "burn", "reason": "wrong code"}))
            await expect_closed(agent)
        await wait_for_state(relay, token, session["session_id"], "failed")
        assert await refused_claim(relay, AGENT, "999999") == "unknown_nameplate"
        try:
            async with open_end(relay, origin="https://evil.example"):
                raise AssertionError("the upgrade should be refused")
        except InvalidStatus:
            pass
        after = await scrape(relay)
        assert after["puente_pairings_failed_total"] == 1
        assert after["puente_sessions_active"] == 0
        assert after["puente_joins_refused_total{reason=unknown_nameplate}"] == 1
        assert after["puente_joins_refused_total{reason=forbidden}"] == 1

    run_with_relay(tmp_path, scenario)


def test_metrics_are_for_this_machine_unless_a_token_is_set(tmp_path: Path) -> None:
    async def loopback_only(relay: RelayServer) -> None:
        assert (await http_request(relay, "GET", "/metrics")).status == 200
        # Through a proxy (even one on this machine), the scraper is not local.
        proxied = await http_request(
            relay, "GET", "/metrics", headers={"X-Forwarded-For": "203.0.113.9"}
        )
        assert proxied.status == 403
        assert "PUENTE_METRICS_TOKEN" in proxied.json()["message"]
        assert (await http_request(relay, "POST", "/metrics")).status == 405
        for path in ("/metrics/", "/metrics?x=1", "/Metrics"):
            assert (await http_request(relay, "GET", path)).status == 404, path

    run_with_relay(tmp_path, loopback_only)

    async def with_token(relay: RelayServer) -> None:
        assert (await http_request(relay, "GET", "/metrics")).status == 401
        wrong = await http_request(relay, "GET", "/metrics", token="not-it")
        assert wrong.status == 401
        assert wrong.headers["www-authenticate"].startswith("Bearer")
        technician = add_technician(relay)  # a technician's token is not the metrics token
        assert (await http_request(relay, "GET", "/metrics", token=technician)).status == 401
        ok = await http_request(relay, "GET", "/metrics", token="scrape-secret-1")
        assert ok.status == 200 and b"puente_sessions_active" in ok.body

    run_with_relay(tmp_path / "t", with_token, metrics_token="scrape-secret-1")


def test_metrics_access_rule() -> None:
    def allowed(
        peer: str, token: str | None = None, proxies: tuple[str, ...] = (), **h: str
    ) -> bool:
        return authorize(Headers(h), peer, proxies, token) is None

    assert allowed("127.0.0.1") and allowed("::1") and allowed("127.0.0.2")
    assert not allowed("10.0.0.5") and not allowed("unknown")
    assert not allowed("127.0.0.1", proxies=("127.0.0.1",))
    assert not allowed("127.0.0.1", Forwarded="for=203.0.113.9")
    assert not allowed("127.0.0.1", token="s3cret")
    assert allowed("10.0.0.5", token="s3cret", Authorization="Bearer s3cret")
    assert not allowed("10.0.0.5", token="s3cret", Authorization="Bearer s3cre")
    assert not allowed("10.0.0.5", token="s3cret", Authorization="Basic s3cret")


# ---------------------------------------------------------------------------
# draining
# ---------------------------------------------------------------------------


def test_drain_lets_paired_sessions_finish_and_sends_waiting_ends_away(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        paired_session = await create_session(relay, token, "T-1")
        waiting_session = await create_session(relay, token, "T-2")
        async with (
            open_end(relay) as agent,
            open_end(relay, token) as tech,
            open_end(relay) as lone,
        ):
            await pair(relay, agent, tech, paired_session["nameplate"])
            assert (await claim(lone, AGENT, waiting_session["nameplate"]))["type"] == "waiting"
            draining = asyncio.create_task(relay.drain(scaled(30)))
            await expect_error(lone, "shutdown")  # at once: it may claim again elsewhere
            health = await http_request(relay, "GET", "/healthz")
            assert health.status == 503 and health.json()["error"] == "draining"
            # New sessions are refused (ends of paired ones may still come back to resume).
            assert await refused_claim(relay, AGENT, waiting_session["nameplate"]) == "shutdown"
            # The paired session still forwards.
            for _ in range(3):
                await agent.send(b"frame")
                assert await asyncio.wait_for(tech.recv(), scaled(5)) == b"frame"
            assert not draining.done()
            started = time.monotonic()
            await tech.send(envelope.encode({"type": "end", "reason": "done"}))
            await asyncio.wait_for(draining, scaled(5))
            assert time.monotonic() - started < scaled(2)  # returned once nothing was left
        stored = relay.store.get_session(waiting_session["session_id"])
        assert stored is not None and stored.state == "waiting"  # usable after a restart

    run_with_relay(tmp_path, scenario)


def test_drain_period_over_tells_both_ends_to_reconnect(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await pair(relay, agent, tech, session["nameplate"])
            await relay.drain(0.3)
            await relay.close()
            await expect_error(agent, "shutdown")
            await expect_error(tech, "shutdown")

    run_with_relay(tmp_path, scenario)


def test_sigterm_drains_then_a_second_sigterm_stops_at_once(tmp_path: Path) -> None:
    relay = start_relay(tmp_path / "data", "--drain-timeout", "60")
    token = relay.add_technician()

    async def main() -> None:
        from websockets.asyncio.client import connect

        from technician.client import RelayAPI

        api = RelayAPI(relay.ws_url, token)
        session = await asyncio.to_thread(api.create_session, "T-1")
        url = relay.ws_url + envelope.WS_PATH
        headers = {"Authorization": f"Bearer {token}"}
        async with connect(url) as agent, connect(url, additional_headers=headers) as tech:
            await claim(agent, AGENT, session["nameplate"])
            await claim(tech, TECH, session["nameplate"])
            await recv_json(agent), await recv_json(tech)
            relay.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            await agent.send(b"still here")
            assert await asyncio.wait_for(tech.recv(), scaled(5)) == b"still here"
            assert relay.proc.poll() is None  # draining, not gone
            relay.proc.send_signal(signal.SIGTERM)
            await expect_error(agent, "shutdown")
            await expect_error(tech, "shutdown")

    asyncio.run(asyncio.wait_for(main(), scaled(30)))
    # It stops by itself; relay.stop() must not send a third SIGTERM into its last moments.
    relay.proc.wait(timeout=scaled(15))
    log = relay.stop()
    assert relay.proc.returncode == 0
    assert "relay draining for up to 60 s" in log and "relay stopped" in log


def test_webhook_backlog_counts_undelivered_events(tmp_path: Path) -> None:
    """A help desk that is down: every event waits in the outbox, and the gauge says so."""
    from relay.connectors import WebhookConnector
    from tests.support.services import spare_port

    down = WebhookConnector(f"http://127.0.0.1:{spare_port()}/hook", "a-secret-of-16-chars")

    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        assert (await scrape(relay))["puente_webhook_backlog"] == 0
        for ticket in ("T-1", "T-2"):
            await create_session(relay, token, ticket)
        assert (await scrape(relay))["puente_webhook_backlog"] == 2  # session.created each

    run_with_relay(tmp_path, scenario, connectors=(down,))
