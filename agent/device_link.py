"""An enrolled device online: one outbound WebSocket to the relay, heartbeats, check
results, and reconnecting with jitter when the link drops.

The messages are :mod:`protocol.device_wire`'s. After the relay's ``welcome`` the
device sends a heartbeat every interval the relay named, and runs its policy's due
checks (:func:`agent.monitoring.runner.run_policy`, in a worker thread) once a
minute (or as often as its quickest check's ``every_seconds`` asks), sending only
their summaries (with the details sealed to the organisation's details key when the
policy names one: :mod:`protocol.sealed_details`), then the outcome of any failure
action that came due (:mod:`agent.failure_actions`).
When the relay says a technician asks for an unattended session, the device starts
``puente-agent unattended`` for it (:mod:`agent.unattended`; one at a time), which
pairs end to end and lets the owner's policy decide; a system service also listens
for the helpers of the people signed in (:mod:`agent.helper_hub`) and hands each
session its way to them. When the relay passes on a newer policy or fix bundles the
organisation published, the device verifies and applies or refuses them
(:mod:`agent.device_updates`), answers ``updated``, and goes on under the policy in
force (redialling at once when it changed, so everything runs under it).
A refusal by the relay (an unknown device, a key that does not match) ends the loop
with the relay's sentence; a dropped link is redialled after an exponential,
jittered wait (the relay may be restarting along with many devices).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import signal
import ssl as ssl_module
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from agent.device_updates import apply_update
from agent.enrolment import DeviceState
from agent.errors import HubUnavailable
from agent.failure_actions import FailureActions
from agent.helper_hub import HelperHub
from agent.i18n import t
from agent.monitoring.history import MeasurementHistory
from agent.monitoring.runner import due_checks, run_policy
from protocol import device_wire as wire
from protocol.device_policy import CheckDefinition, DevicePolicy
from protocol.errors import MalformedDocument
from protocol.safe_text import safe_text

#: How often due checks are looked for, in seconds.
CHECK_TICK = 60.0
#: The device's WebSocket settings. Its heartbeats tell the relay it is alive; its own
#: pings (every 60 s, 30 s to answer) tell it that the relay is, within 90 s, at a
#: third of the frames of the websockets default (20 s) across 10,000 devices.
LINK_SETTINGS: dict[str, Any] = {
    "compression": None,
    # An update carries fix bundles; every other message the relay sends is small.
    "max_size": wire.MAX_UPDATE_MESSAGE,
    "ping_interval": 60,
    "ping_timeout": 30,
}
BACKOFF_BASE, BACKOFF_CAP = 1.0, 60.0


class DeviceRefused(Exception):
    """The relay refused this device; the message is its sentence."""


class PolicyChanged(Exception):
    """An update put a new policy in force: go on under ``state``'s."""

    def __init__(self, state: DeviceState) -> None:
        super().__init__("the policy in force changed")
        self.state = state


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
        while True:
            answer = wire.parse_device_message(await websocket.recv())
            if answer["type"] not in ("update", "unattended"):  # none is for us now
                break
        if answer["type"] != "goodbye":
            raise DeviceRefused(str(answer.get("message", "the relay did not say goodbye")))


async def stay_online(
    state: DeviceState,
    say: Callable[[str], None],
    ssl: ssl_module.SSLContext | None = None,
    check_tick: float = CHECK_TICK,
    ca_file: str | None = None,
    helper_socket: Path | None = None,
) -> None:
    """Keep the device online until cancelled; DeviceRefused if the relay refuses it.

    ``ca_file`` is passed on to the unattended sessions it starts. ``helper_socket``
    (a system service's): where the helpers of the people signed in connect
    (:mod:`agent.helper_hub`), through which those sessions ask and show the banner."""
    hub = await _open_hub(helper_socket, say) if helper_socket is not None else None
    sessions = UnattendedStarter(state, say, ca_file, hub)
    this = asyncio.current_task()
    if this is not None:  # a service manager stops the device with SIGTERM: stop cleanly
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, this.cancel)
    try:
        await _stay_online(state, say, ssl, check_tick, sessions)
    finally:
        sessions.stop()  # an unattended session does not outlive the device link
        if hub is not None:
            await hub.close()


async def _open_hub(path: Path, say: Callable[[str], None]) -> HelperHub | None:
    """The helpers' socket, or None (said why: the questions go to the console then)."""
    hub = HelperHub(path, say)
    try:
        await hub.start()
    except HubUnavailable as exc:
        say(str(exc))
        return None
    say(t("service.helpers_listening", path=path))
    return hub


async def _stay_online(
    state: DeviceState,
    say: Callable[[str], None],
    ssl: ssl_module.SSLContext | None,
    check_tick: float,
    sessions: UnattendedStarter,
) -> None:
    policy = state.verified_policy()
    actions = FailureActions(state, policy)
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
                    await _first_of(
                        _online(
                            websocket,
                            state.device_id,
                            policy,
                            history,
                            last_runs,
                            latest,
                            heartbeat,
                            check_tick,
                            actions,
                        ),
                        _listen(websocket, sessions, state, policy, say),
                    )
            except PolicyChanged as change:
                state, policy = change.state, change.state.verified_policy()
                actions = FailureActions(state, policy)  # its counts are kept on disk
                sessions.state = state
                last_runs.clear()  # the new policy's checks run at once
                say(t("update.policy_in_force", number=policy.number))
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
    device_id: str,
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
    # A policy may schedule a check every few seconds (protocol.device_policy rule 4).
    check_tick = min([check_tick, *(float(check.interval) for check in policy.checks)])
    while True:
        due = due_checks(policy, last_runs, time.time())
        if due:
            report = await asyncio.to_thread(run_policy, policy, history, None, due)
            last_runs.update((result.check, report.at) for result in report.results)
            summary = report.relay_summary(device_id)
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


async def _first_of(*work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` together until one ends; re-raise what it raised, cancel the rest."""
    tasks = [asyncio.ensure_future(item) for item in work]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _listen(
    websocket: ClientConnection,
    sessions: UnattendedStarter,
    state: DeviceState,
    policy: DevicePolicy,
    say: Callable[[str], None],
) -> None:
    """What the relay sends once the device is online: unattended requests, updates."""
    async for text in websocket:
        try:
            message = wire.parse_device_message(text)
        except MalformedDocument:
            continue  # a newer relay's message: nothing to do with it here
        if message["type"] == "unattended":
            await sessions.start(message["nameplate"], message["ticket_id"])
        elif message["type"] == "update":
            done = await asyncio.to_thread(
                apply_update, state, policy, message["policy"], message["fixes"]
            )
            say(t(f"update.{done.outcome}", note=safe_text(done.note, wire.MAX_NOTE)))
            await websocket.send(
                wire.encode(
                    "updated",
                    id=message["id"],
                    outcome=done.outcome,
                    policy=done.policy_number,
                    note=done.note[: wire.MAX_NOTE],
                )
            )
            if done.state is not None:
                raise PolicyChanged(done.state)
    raise ConnectionError("the relay closed the device's connection")


class UnattendedStarter:
    """Starts ``puente-agent unattended`` for each request, one session at a time; with
    a hub, the session gets its end of a socket pair to the signed-in users' helpers."""

    def __init__(
        self,
        state: DeviceState,
        say: Callable[[str], None],
        ca_file: str | None,
        hub: HelperHub | None = None,
    ):
        self.state = state
        self._say = say
        self._ca_file = ca_file
        self._hub = hub
        self._running: asyncio.subprocess.Process | None = None

    async def start(self, nameplate: str, ticket: str) -> None:
        from agent.unattended import command_line

        if self._running is not None and self._running.returncode is None:
            self._say(t("unattended.busy", ticket=safe_text(ticket, 200)))
            return
        self._say(t("unattended.asked", ticket=safe_text(ticket, 200)))
        helpers = self._hub.open_session() if self._hub is not None else None
        fd = helpers.fileno() if helpers is not None else None
        try:
            self._running = await asyncio.create_subprocess_exec(
                *command_line(self.state.folder, nameplate, ticket, self._ca_file, fd),
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=() if fd is None else (fd,),
            )
        finally:
            if helpers is not None:
                helpers.close()  # the session's process has its own copy

    def stop(self) -> None:
        if self._running is not None and self._running.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._running.terminate()
