"""An enrolled device online: one outbound WebSocket to the relay, heartbeats, check
results, and reconnecting with jitter when the link drops.

The messages are :mod:`protocol.device_wire`'s. After the relay's ``welcome`` the
device sends a heartbeat every interval the relay named, and runs its policy's due
checks (:func:`agent.monitoring.runner.run_policy`, in a worker thread) once a
minute, sending only their summaries (and details where the policy shares them),
then the outcome of any failure action that came due (:mod:`agent.failure_actions`).
A refusal by the relay (an unknown device, a key that does not match) ends the loop
with the relay's sentence; a dropped link is redialled after an exponential,
jittered wait (the relay may be restarting along with many devices).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import ssl as ssl_module
import time
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from agent.enrolment import DeviceState
from agent.failure_actions import FailureActions
from agent.i18n import t
from agent.monitoring.history import MeasurementHistory
from agent.monitoring.runner import due_checks, run_policy
from protocol import device_wire as wire
from protocol.device_policy import CheckDefinition, DevicePolicy
from protocol.errors import MalformedDocument
from protocol.safe_text import safe_text

#: How often due checks are looked for, in seconds.
CHECK_TICK = 60.0
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
    async with connect(
        _ws_url(state.relay), ssl=ssl, compression=None, max_size=wire.MAX_MESSAGE
    ) as websocket:
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
    actions = FailureActions(state, policy)
    last_runs: dict[str, float] = {}
    attempt = 0
    latest: list[str] = []  # the last results message, sent again after a reconnect
    with MeasurementHistory(state.folder) as history:
        while True:
            try:
                async with connect(
                    _ws_url(state.relay), ssl=ssl, compression=None, max_size=wire.MAX_MESSAGE
                ) as websocket:
                    heartbeat = await _prove(websocket, state)
                    attempt = 0
                    say(t("enrol.online", seconds=heartbeat))
                    if latest:
                        await websocket.send(latest[0])
                    await _online(
                        websocket,
                        policy,
                        history,
                        last_runs,
                        latest,
                        heartbeat,
                        check_tick,
                        actions,
                    )
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                attempt += 1
                ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(attempt - 1, 10))
                wait = ceiling / 2 + random.random() * ceiling / 2
                say(t("enrol.reconnecting", reason=safe_text(exc, 200), seconds=f"{wait:.0f}"))
                await asyncio.sleep(wait)


#: Failure actions running (kept referenced until they end).
_RUNNING: set[asyncio.Task[None]] = set()


async def _failure_action(
    websocket: ClientConnection, actions: FailureActions, check: CheckDefinition
) -> None:
    """Run one due action and tell the relay (if the link still stands: the outcome is
    in the device's audit log either way)."""
    done = await actions.run(check)
    message = wire.encode(
        "action",
        check=done.check,
        fix=done.fix,
        outcome=done.outcome,
        note=done.note[: wire.MAX_NOTE],
    )
    with contextlib.suppress(ConnectionClosed):
        await websocket.send(message)


async def _online(
    websocket: ClientConnection,
    policy: DevicePolicy,
    history: MeasurementHistory,
    last_runs: dict[str, float],
    latest: list[str],
    heartbeat: int,
    check_tick: float,
    actions: FailureActions,
) -> None:
    send = websocket.send
    next_beat = time.monotonic() + heartbeat
    while True:
        due = due_checks(policy, last_runs, time.time())
        if due:
            report = await asyncio.to_thread(run_policy, policy, history, None, due)
            last_runs.update((result.check, report.at) for result in report.results)
            summary = report.relay_summary()
            latest[:] = [wire.encode("results", at=summary["at"], results=summary["results"])]
            await send(latest[0])
            # After the results, so that the relay has opened the alert to comment on.
            # A fix may run for minutes: beside the heartbeats, not in their way.
            for check in actions.due(report):
                task = asyncio.create_task(_failure_action(websocket, actions, check))
                _RUNNING.add(task)
                task.add_done_callback(_RUNNING.discard)
        now = time.monotonic()
        if now >= next_beat:
            await send(wire.encode("heartbeat"))
            next_beat = now + heartbeat
        await asyncio.sleep(min(check_tick, max(0.05, next_beat - time.monotonic())))
