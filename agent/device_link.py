"""An enrolled device online: one outbound WebSocket to the relay, heartbeats, check
results, and reconnecting with jitter when the link drops.

The messages are :mod:`protocol.device_wire`'s. After the relay's ``welcome`` the
device sends a heartbeat every interval the relay named, and runs its policy's due
checks (:func:`agent.monitoring.runner.run_policy`, in a worker thread) once a
minute, sending only their summaries (with the details sealed to the organisation's
details key when the policy names one: :mod:`protocol.sealed_details`).
A refusal by the relay (an unknown device, a key that does not match) ends the loop
with the relay's sentence; a dropped link is redialled after an exponential,
jittered wait (the relay may be restarting along with many devices).
"""

from __future__ import annotations

import asyncio
import base64
import random
import ssl as ssl_module
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from agent.enrolment import DeviceState
from agent.i18n import t
from agent.monitoring.history import MeasurementHistory
from agent.monitoring.runner import due_checks, run_policy
from protocol import device_wire as wire
from protocol.device_policy import DevicePolicy
from protocol.errors import MalformedDocument
from protocol.safe_text import safe_text

#: How often due checks are looked for, in seconds.
CHECK_TICK = 60.0
#: The device's WebSocket settings. Its heartbeats tell the relay it is alive; its own
#: pings (every 60 s, 30 s to answer) tell it that the relay is, within 90 s, at a
#: third of the frames of the websockets default (20 s) across 10,000 devices.
LINK_SETTINGS: dict[str, Any] = {
    "compression": None,
    "max_size": wire.MAX_MESSAGE,
    "ping_interval": 60,
    "ping_timeout": 30,
}
BACKOFF_BASE, BACKOFF_CAP = 1.0, 60.0


class DeviceRefused(Exception):
    """The relay refused this device; the message is its sentence."""


def _ws_url(relay: str) -> str:
    return relay.rstrip("/") + wire.DEVICE_PATH


async def _prove(websocket: ClientConnection, state: DeviceState) -> int:
    """hello → challenge → proof → welcome; the heartbeat interval."""
    send, recv = websocket.send, websocket.recv
    await send(wire.encode("hello", device_id=state.device_id))
    challenge = wire.parse_device_message(await recv())
    if challenge["type"] == "error":
        raise DeviceRefused(challenge["message"])
    nonce = base64.b64decode(challenge["nonce"])
    signature = state.key.sign(wire.proof_message(state.device_id, nonce))
    await send(wire.encode("proof", signature=base64.b64encode(signature).decode()))
    welcome = wire.parse_device_message(await recv())
    if welcome["type"] == "error":
        raise DeviceRefused(welcome["message"])
    if welcome["type"] != "welcome":
        raise MalformedDocument("The relay did not welcome this device.")
    return int(welcome["heartbeat"])


async def say_goodbye(state: DeviceState, ssl: ssl_module.SSLContext | None = None) -> None:
    """Ask the relay to forget this device (it proves its key first)."""
    async with connect(_ws_url(state.relay), ssl=ssl, **LINK_SETTINGS) as websocket:
        await _prove(websocket, state)
        await websocket.send(wire.encode("unenrol"))
        answer = wire.parse_device_message(await websocket.recv())
        if answer["type"] != "goodbye":
            raise DeviceRefused(str(answer.get("message", "the relay did not say goodbye")))


async def stay_online(
    state: DeviceState,
    say: Callable[[str], None],
    ssl: ssl_module.SSLContext | None = None,
    check_tick: float = CHECK_TICK,
) -> None:
    """Keep the device online until cancelled; DeviceRefused if the relay refuses it."""
    policy = state.verified_policy()
    last_runs: dict[str, float] = {}
    attempt = 0
    latest: list[str] = []  # the last results message, sent again after a reconnect
    with MeasurementHistory(state.folder) as history:
        while True:
            try:
                async with connect(_ws_url(state.relay), ssl=ssl, **LINK_SETTINGS) as websocket:
                    heartbeat = await _prove(websocket, state)
                    attempt = 0
                    say(t("enrol.online", seconds=heartbeat))
                    if latest:
                        await websocket.send(latest[0])
                    await _online(
                        websocket,
                        state.device_id,
                        policy,
                        history,
                        last_runs,
                        latest,
                        heartbeat,
                        check_tick,
                    )
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                attempt += 1
                ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(attempt - 1, 10))
                wait = ceiling / 2 + random.random() * ceiling / 2
                say(t("enrol.reconnecting", reason=safe_text(exc, 200), seconds=f"{wait:.0f}"))
                await asyncio.sleep(wait)


async def _online(
    websocket: ClientConnection,
    device_id: str,
    policy: DevicePolicy,
    history: MeasurementHistory,
    last_runs: dict[str, float],
    latest: list[str],
    heartbeat: int,
    check_tick: float,
) -> None:
    send = websocket.send
    next_beat = time.monotonic() + heartbeat
    while True:
        due = due_checks(policy, last_runs, time.time())
        if due:
            report = await asyncio.to_thread(run_policy, policy, history, None, due)
            last_runs.update((result.check, report.at) for result in report.results)
            summary = report.relay_summary(device_id)
            latest[:] = [wire.encode("results", at=summary["at"], results=summary["results"])]
            await send(latest[0])
        now = time.monotonic()
        if now >= next_beat:
            await send(wire.encode("heartbeat"))
            next_beat = now + heartbeat
        await asyncio.sleep(min(check_tick, max(0.05, next_beat - time.monotonic())))
