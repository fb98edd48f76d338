"""Enrolled devices at the relay: enrolment over HTTPS, presence over one WebSocket,
check summaries turned into alerts and tickets.

The messages are :mod:`protocol.device_wire`'s. :class:`DeviceDesk` answers the
enrolment requests (``process_request``), serves each device's WebSocket once the
front door accepted the upgrade (``serve``), keeps who is online in memory, written
down lazily and shared across cluster nodes (:mod:`relay.presence`), and feeds each
result summary to the alert book
(:mod:`relay.alert_book`), whose owed ticket actions one background thread delivers
to Request Tracker when the relay has it configured, several alerts at once
(:mod:`relay.alert_delivery`), on one node of a cluster at a time: the one holding
the delivery lease (:class:`relay.device_sql.Lease`); the thread runs only while this
process holds it.

Everything is kept in the relay's SQLite file, or in the PostgreSQL database of a
cluster (:mod:`relay.device_sql`). In a cluster a device's WebSocket is on one node
and a technician may ask any node: a message for the device (an unattended request)
is passed over Redis to the node holding it (:meth:`relay.cluster.ClusterNode.tell_device`),
and so are the news that an alert action is owed (to wake the node delivering) and
that a device was unenrolled (to close its connections everywhere).

The relay never sees what a check found, only which check, its kind, status and
severity; details arrive sealed to the organisation's details key
(:mod:`protocol.sealed_details`), are kept as they came (the latest per device and
check) and handed to technicians (``GET /api/devices/ID``), who open them. It proves each device by a
challenge signed with the device key it registered, so a copied device id without
the key (a cloned disk with a regenerated key, a forged id) is refused.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import http
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from protocol import device_wire as wire
from protocol.device_policy import DevicePolicy, read_policy_unverified, standard_checks
from protocol.errors import MalformedDocument, TrustError
from protocol.identity import public_key_from_raw, verify_signature
from protocol.safe_text import safe_text

from .alert_book import AlertBook, RequestTrackerAlerts, Ticketing
from .alert_delivery import DEFAULT_WORKERS, AlertDelivery
from .alerts import Action, Observation
from .cluster import ClusterNode
from .config import RelayConfig
from .connectors import RequestTrackerConnector
from .device_sql import DeviceDatabase, Lease
from .device_updates import UpdateDesk
from .enrolment import EnrolmentBook
from .errors import EnrolmentRefused, HeaderError
from .events import EventType, NewEvent
from .http import bearer_token, error_response, json_response
from .presence import PresenceBook, SealedDetails, open_tickets, stored_details

logger = logging.getLogger("relay.devices")

Account = TypeVar("Account")

#: The technicians' list of devices (REST, bearer token).
DEVICES_API = "/api/devices"
#: Seconds between a device's heartbeats (it is told so in ``welcome``).
HEARTBEAT = 30
#: A device silent for this many heartbeats is taken as gone.
MISSED_HEARTBEATS = 3
#: Seconds a device has to answer the challenge.
PROOF_TIMEOUT = 10.0
#: The alert-delivery lease: held this long, renewed every third of it while its
#: holder lives (relay.device_sql, rule "delivery").
DELIVERY_LEASE = "alert-delivery"
LEASE_SECONDS = 10.0
#: Seconds a node waits for another to say it passed a message to a device.
TELL_TIMEOUT = 3.0


@dataclass(frozen=True)
class Presence:
    device_id: str
    online: bool
    last_seen: float | None
    open_alerts: list[str]
    #: The same alerts in full: check, severity, since (opened at), ticket (or None).
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "online": self.online,
            "last_seen": self.last_seen,
            "open_alerts": self.open_alerts,
            "alerts": self.alerts,
        }


class DeviceDesk:
    """Everything the relay does for enrolled devices."""

    def __init__(
        self,
        database: Path | DeviceDatabase | None,
        ticketing: Ticketing | None = None,
        heartbeat: int = HEARTBEAT,
        clock: Callable[[], float] = time.time,
        cluster: ClusterNode | None = None,
        audit: Callable[[NewEvent], object] | None = None,
        delivery_workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.heartbeat = heartbeat
        self._audit = audit
        self._clock = clock
        self._ticketing = ticketing
        self._cluster = cluster
        self._database = DeviceDatabase.of(database) if database is not None else None
        self._enrolment = EnrolmentBook(self._database) if self._database else None
        self._alerts = AlertBook(self._database, clock) if self._database else None
        # The event loop's own connection for the technicians' reads (details, tickets).
        self._db = self._database.connect() if self._database else None
        self.presence_book = (
            PresenceBook(self._database, clock, cluster) if self._database else None
        )
        # Newer policies and fixes for the devices connected here (relay.device_updates).
        self.updates = (
            UpdateDesk(
                self._database,
                self._alerts,
                clock,
                functools.partial(self.tell, locally=True),
                self._owed,
                audit,
            )
            if self._database and self._alerts
            else None
        )
        # Live connections per device, oldest first: unenrolling drops every one of
        # them, and tell() speaks to the newest.
        self._connections: dict[str, list[ServerConnection]] = {}
        self._policies: dict[str, DevicePolicy] = {}
        self._tokens: dict[str, str] = {}
        self._spawned: set[asyncio.Task[Any]] = set()
        #: Whether this process holds the delivery lease (as of its last renewal); the
        #: delivery's owner thread runs only while it does.
        self.delivering = False
        self._holder = (
            cluster.node_id
            if cluster is not None
            else f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        )
        if cluster is not None:
            cluster.on_device_message = self._cluster_message
        self._delivery = (
            AlertDelivery(ticketing, delivery_workers, retry_after=heartbeat)
            if ticketing is not None and self._database is not None
            else None
        )
        self._lease_task: asyncio.Task[None] | None = None
        self._delivery_task: asyncio.Task[None] | None = None
        self._stop_delivery = threading.Event()

    # -- life --------------------------------------------------------------------------

    def start(self) -> None:
        """Deliver what a previous run still owed, then whatever comes."""
        if self._delivery is not None:
            self._lease_task = asyncio.create_task(self._lease_loop(), name="device-alerts-lease")
        if self.presence_book is not None:
            self.presence_book.start()
        if self.updates is not None:
            self.updates.start()

    async def close(self) -> None:
        if self.presence_book is not None:
            await self.presence_book.close()
        if self.updates is not None:
            await self.updates.close()
        if self._lease_task is not None:  # stops the delivery, then lets the lease go
            self._lease_task.cancel()
            await asyncio.gather(self._lease_task, return_exceptions=True)
        for book in (self._enrolment, self._alerts, self._db):
            if book is not None:
                book.close()

    async def _lease_loop(self) -> None:
        """Take the delivery lease when it is free or lapsed, and keep it while alive;
        deliver while it is held."""
        assert self._database is not None
        connection = await asyncio.to_thread(self._database.connect, thread_safe=True)
        lease = Lease(connection, DELIVERY_LEASE, self._holder)
        try:
            while True:
                try:
                    held = await asyncio.to_thread(lease.take, self._clock(), LEASE_SECONDS)
                except Exception:  # the database away: deliver nothing until it is back
                    logger.exception("the alert-delivery lease could not be renewed")
                    held = False
                if held != self.delivering:
                    logger.info("alert delivery %s here", "starts" if held else "stops")
                    self.delivering = held
                    if held:
                        self._start_delivering()
                    else:
                        await self._stop_delivering()
                await asyncio.sleep(LEASE_SECONDS / 3)
        finally:
            self.delivering = False
            await self._stop_delivering()
            # A clean stop lets the next node take over at once.
            with contextlib.suppress(Exception):
                await asyncio.to_thread(lease.release)
            connection.close()

    def _start_delivering(self) -> None:
        """The lease is ours: the delivery's owner thread starts (what a previous holder
        still owed, then whatever comes)."""
        self._stop_delivery = threading.Event()
        self._delivery_task = asyncio.create_task(
            asyncio.to_thread(self._deliver_until_stopped, self._stop_delivery),
            name="device-alerts",
        )

    async def _stop_delivering(self) -> None:
        """The lease is lost or let go: the owner thread stops. Calls still in flight
        end on their own, their actions owed and counted as tried (relay.alert_delivery,
        rule 4), so the next holder looks for what they made before making it again."""
        task, self._delivery_task = self._delivery_task, None
        if task is None or self._delivery is None:
            return
        self._stop_delivery.set()
        self._delivery.poke()
        try:
            await asyncio.shield(task)
        except Exception:
            logger.exception("alert delivery ended with an error")

    def _deliver_until_stopped(self, stop: threading.Event) -> None:
        """The delivery's owner thread, with its own connection to the book
        (relay.device_sql: a connection is never shared between threads at once)."""
        assert self._database is not None and self._delivery is not None
        while not stop.is_set():
            try:
                book = AlertBook(self._database, self._clock)
            except Exception:  # the database away: try again after a heartbeat
                logger.exception("alert delivery cannot open the alert book")
                stop.wait(self.heartbeat)
                continue
            try:
                self._delivery.run(book, stop, idle=self.heartbeat)
            except Exception:  # a bug or a locked database: keep delivering
                logger.exception("alert delivery failed; starting again in %d s", self.heartbeat)
                stop.wait(self.heartbeat)
            finally:
                book.close()

    def _wake_delivery(self) -> None:
        """New actions may be owed: the owner thread, if it runs here, reads them now."""
        if self._delivery is not None and self.delivering:
            self._delivery.poke()

    def _owed(self) -> None:
        """An alert action was recorded: deliver it here, or wake the node that delivers."""
        self._wake_delivery()
        if self._cluster is not None and not self.delivering:
            self._spawn(self._cluster.publish_device_message({"kind": "wake"}))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    def _cluster_message(self, message: dict[str, Any]) -> None:
        """What another node said about devices (relay.cluster, on the device channel)."""
        kind = message.get("kind")
        if kind == "wake":
            self._wake_delivery()
        elif kind == "tell" and message.get("device_id") in self._connections:
            assert self._cluster is not None
            self._spawn(self._tell_for(self._cluster, message))
        elif kind == "forgotten" and isinstance(message.get("device_id"), str):
            device_id = message["device_id"]
            if device_id in self._connections and self.presence_book is not None:
                self.presence_book.forgotten(device_id)
                self._spawn(self._drop_others(device_id, None))

    async def _tell_for(self, cluster: ClusterNode, message: dict[str, Any]) -> None:
        """Pass another node's message to a device connected here, and say if it went."""
        if not await cluster.claim_reply(str(message["reply"])):
            return  # another node holding a connection of the device took it
        device_id = str(message["device_id"])
        sent = await self.tell(device_id, str(message["text"]), locally=True)
        await cluster.reply(str(message["reply"]), sent)
        logger.info(
            "message passed for node=%s device=%s sent=%s", message.get("node"), device_id, sent
        )

    # -- HTTP --------------------------------------------------------------------------

    def owns(self, path: str) -> bool:
        return path in (wire.ENROL_PATH, wire.ENROL_POLICY_PATH, DEVICES_API) or (
            path.startswith(DEVICES_API + "/")
        )

    def process_request(
        self,
        request: Request,
        body: bytes,
        authenticate: Callable[[str], object | None],
    ) -> Response:
        """Answer ``/v1/enrol``, ``/v1/enrol/policy`` and (for technicians) ``/api/devices``."""
        if self._enrolment is None:
            return error_response(
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                "unavailable",
                "This relay does not enrol devices (it needs its store: --data-dir or "
                "--database-url).",
            )
        path = request.path.partition("?")[0]
        now = self._clock()
        if path == DEVICES_API or path.startswith(DEVICES_API + "/"):
            return self._devices_api(request, path, authenticate)
        try:
            if path == wire.ENROL_POLICY_PATH and request.method == "GET":
                token = _enrol_token(request.headers.get("Authorization"))
                policy = self._enrolment.peek(token, now)
                return json_response(http.HTTPStatus.OK, {"policy": policy})
            if path == wire.ENROL_PATH and request.method == "POST":
                token, public_key = _enrol_body(body)
                device = self._enrolment.redeem(token, public_key, now)
                logger.info("device enrolled device=%s token=%s", device.device_id, device.token_id)
                payload = {"device_id": device.device_id, "policy": device.policy}
                return json_response(http.HTTPStatus.CREATED, payload)
        except EnrolmentRefused as exc:
            return error_response(http.HTTPStatus.FORBIDDEN, "enrolment_refused", str(exc))
        return error_response(
            http.HTTPStatus.METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Use GET /v1/enrol/policy to read a token's policy and POST /v1/enrol to enrol.",
        )

    def _devices_api(
        self, request: Request, path: str, authenticate: Callable[[str], object | None]
    ) -> Response:
        """``GET /api/devices``: who is online and which alerts are open; ``GET
        /api/devices/ID``: one device, with its checks' sealed details (technicians)."""
        technician = technician_or_refusal(request, authenticate)
        if isinstance(technician, Response):
            return technician
        if request.method != "GET":
            return error_response(
                http.HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Use GET /api/devices.",
                (("Allow", "GET"),),
            )
        if path != DEVICES_API:
            return self._device_api(path.removeprefix(DEVICES_API + "/"))
        devices = [presence.as_dict() for presence in self.presence()]
        return json_response(http.HTTPStatus.OK, {"devices": devices})

    def _device_api(self, device_id: str) -> Response:
        one = [p for p in self.presence() if p.device_id == device_id]
        if not one or self._db is None or self.presence_book is None:
            return error_response(
                http.HTTPStatus.NOT_FOUND,
                "not_found",
                f"No device {device_id[:40]!r} is enrolled here; 'puente-tech devices' lists them.",
            )
        details: dict[str, SealedDetails] = {
            d.check: d for d in stored_details(self._db, device_id)
        }
        for newer in self.presence_book.details_owed(device_id):
            if newer.check not in details or newer.at >= details[newer.check].at:
                details[newer.check] = newer
        device = self._enrolment.device(device_id) if self._enrolment else None
        body = {
            **one[0].as_dict(),
            "details": [details[check].as_dict() for check in sorted(details)],
            "tickets": open_tickets(self._db, device_id),
            # The signed policy, for the technician's side to verify (the relay cannot).
            "policy": device.policy if device is not None else None,
        }
        return json_response(http.HTTPStatus.OK, body)

    # -- the device's WebSocket ----------------------------------------------------------

    async def serve(self, connection: ServerConnection) -> None:
        """Prove the device, then take heartbeats and results until it goes."""
        device_id = await self._prove(connection)
        if device_id is None:
            return
        book = self.presence_book
        assert book is not None  # _prove refuses devices without the store
        book.arrived(device_id)
        self._connections.setdefault(device_id, []).append(connection)
        updates = self.updates
        assert updates is not None  # made with the store, like the presence book
        # The device's heartbeats prove it alive (MISSED_HEARTBEATS of them lost and it is
        # gone): the server's keepalive pings would add two frames per device every 20 s,
        # most of the relay's CPU for 10,000 idle devices (docs/PERFORMANCE.md).
        if connection.keepalive_task is not None:
            connection.keepalive_task.cancel()
            connection.keepalive_task = None
        logger.info("device online device=%s", device_id)
        try:
            updates.arrived(device_id, self._tokens[device_id])
            await updates.offer(device_id)
            while True:
                async with asyncio.timeout(self.heartbeat * MISSED_HEARTBEATS):
                    text = await connection.recv()
                message = wire.parse_device_message(text)
                book.heard(device_id)  # memory only (relay.presence, rule 1)
                if message["type"] == "results":
                    self._results(device_id, message["results"], message["at"])
                elif message["type"] == "action":
                    self._action(device_id, message)
                elif message["type"] == "updated":
                    updates.answered(device_id, message)
                    self._policies.pop(device_id, None)  # it may run another one now
                elif message["type"] == "unenrol" and self._enrolment is not None:
                    self._enrolment.forget(device_id)
                    book.forgotten(device_id)
                    logger.info("device unenrolled device=%s", device_id)
                    await connection.send(wire.encode("goodbye"))
                    await self._drop_others(device_id, connection)
                    if self._cluster is not None:  # its service may be on another node
                        await self._cluster.publish_device_message(
                            {"kind": "forgotten", "device_id": device_id}
                        )
                    return
                elif message["type"] != "heartbeat":
                    raise MalformedDocument(
                        "A device sends only heartbeats, check results, failure-action "
                        "reports, answers to updates and its unenrolment; update the agent."
                    )
        except (ConnectionClosed, TimeoutError):
            pass
        except MalformedDocument as exc:
            with contextlib.suppress(ConnectionClosed):
                await connection.send(wire.encode("error", message=str(exc)))
        finally:
            live = self._connections.get(device_id, [])
            if connection in live:
                live.remove(connection)
            if not live:
                # Offline only when its last connection goes (a service and 'unenrol'
                # beside it, or a dead link still timing out, are two at once).
                self._connections.pop(device_id, None)
                updates.left(device_id)
                book.left(device_id)  # no-op if forgotten
                logger.info("device offline device=%s", device_id)

    async def _drop_others(self, device_id: str, unenrolling: ServerConnection | None) -> None:
        """Close the device's other connections (its service, while ``unenrol`` runs
        beside it): its key no longer works, and its next dial is refused."""
        for other in list(self._connections.get(device_id, ())):
            if other is not unenrolling:
                await other.close(1008, "this device was unenrolled")

    async def _prove(self, connection: ServerConnection) -> str | None:
        refusal = "This device is not enrolled here; enrol it again with 'puente-agent enrol'."
        try:
            async with asyncio.timeout(PROOF_TIMEOUT):
                hello = wire.parse_device_message(await connection.recv())
                if self._enrolment is None:
                    raise MalformedDocument(
                        "This relay does not serve enrolled devices (it has no store for "
                        "them); ask your help desk which relay to use."
                    )
                if hello["type"] != "hello":
                    raise MalformedDocument("A device starts with hello.")
                device = self._enrolment.device(hello["device_id"])
                if device is None:
                    raise MalformedDocument(refusal)
                nonce = secrets.token_bytes(wire.NONCE_SIZE)
                await connection.send(
                    wire.encode("challenge", nonce=base64.b64encode(nonce).decode())
                )
                proof = wire.parse_device_message(await connection.recv())
                if proof["type"] != "proof":
                    raise MalformedDocument("A device answers the challenge with proof.")
                signature = _b64(proof["signature"])
                key = public_key_from_raw(device.public_key, "The device key")
                if not verify_signature(
                    key, signature, wire.proof_message(device.device_id, nonce)
                ):
                    logger.warning("device key mismatch device=%s", device.device_id)
                    raise MalformedDocument(
                        "This device's key does not match its registration (a copied disk, "
                        "or another device using its id); it is refused. Unenrol it and "
                        "enrol it again with a new token."
                    )
                self._policies[device.device_id] = _alert_policy(device.policy)
                self._tokens[device.device_id] = device.token_id
                await connection.send(wire.encode("welcome", heartbeat=self.heartbeat))
                return device.device_id
        except (ConnectionClosed, TimeoutError):
            return None
        except (MalformedDocument, TrustError) as exc:
            with contextlib.suppress(ConnectionClosed):
                await connection.send(wire.encode("error", message=str(exc)))
            return None

    def _action(self, device_id: str, message: dict[str, Any]) -> None:
        """A failure action's outcome: a comment on the alert's ticket (relay.alert_book)."""
        noted = self._alerts is not None and self._alerts.note(
            device_id, message["check"], safe_text(message["note"], wire.MAX_NOTE)
        )
        logger.info(
            "device failure action device=%s check=%s fix=%s outcome=%s ticket_note=%s",
            device_id,
            message["check"],
            message["fix"],
            message["outcome"],
            "owed" if noted else "no open alert",
        )
        if noted:
            self._owed()
        if self._audit is not None:
            fields = ("check", "fix", "outcome", "note")
            data = {name: message[name] for name in fields}
            data["ticket_note"] = "owed" if noted else "no open alert"
            self._audit(NewEvent(EventType.DEVICE_FAILURE_ACTION, f"device-{device_id}", data))

    def _results(self, device_id: str, results: list[dict[str, Any]], reported_at: int) -> None:
        if self._alerts is None:
            return
        policy = self._policies.get(device_id)
        if policy is None:  # an update changed it: read the one it runs now
            registered = self.registration(device_id)
            policy = registered[1] if registered is not None else _alert_policy(None)
            self._policies[device_id] = policy
        now = self._clock()
        quiet = policy.in_maintenance(int(now))
        observations = []
        for summary in results:
            if "sealed" in summary and self.presence_book is not None:
                self.presence_book.sealed(
                    device_id, summary["check"], reported_at, summary["status"], summary["sealed"]
                )
            check = policy.check(summary["check"])
            threshold = check.failures_before_alert if check is not None else 3
            observations.append(
                Observation(
                    device_id,
                    summary["check"],
                    summary["status"],
                    summary["severity"],
                    now,
                    threshold,
                    quiet,
                    reported_at,
                    policy.repeat_comment_seconds,
                )
            )
        steps = self._alerts.observe_results(observations)
        if any(step.action is not Action.NONE for step in steps):
            self._owed()

    async def tell(self, device_id: str, text: str, *, locally: bool = False) -> bool:
        """Send one message to ``device_id``; False if it is not online. It goes to the
        device's newest live connection here (an older one may be a link that is about
        to time out), else, in a cluster, to the node that holds one (unless
        ``locally``)."""
        for connection in reversed(list(self._connections.get(device_id, ()))):
            try:
                await connection.send(text)
            except ConnectionClosed:
                continue
            return True
        if self._cluster is None or locally:
            return False
        try:
            return await self._cluster.tell_device(device_id, text, TELL_TIMEOUT)
        except Exception as exc:  # Redis away: as good as offline, and said so in the log
            logger.warning("could not ask the cluster for device=%s (%s)", device_id, exc)
            return False

    def registration(self, device_id: str) -> tuple[bytes, DevicePolicy] | None:
        """The device's registered public key and (unverified) policy, if it is enrolled."""
        device = self._enrolment.device(device_id) if self._enrolment is not None else None
        if device is None:
            return None
        return device.public_key, _alert_policy(device.policy)

    # -- who is there ----------------------------------------------------------------------

    def presence(self) -> list[Presence]:
        if self._enrolment is None or self._alerts is None:
            return []
        alerts = self._alerts.open_alert_details()
        book = self.presence_book
        assert book is not None
        return [
            Presence(
                device.device_id,
                book.online(device.device_id),
                book.last_seen(device.device_id) or device.last_seen,
                [alert["check"] for alert in alerts.get(device.device_id, [])],
                alerts.get(device.device_id, []),
            )
            for device in self._enrolment.devices()
        ]


def technician_or_refusal(
    request: Request, authenticate: Callable[[str], Account | None]
) -> Account | Response:
    """The technician the request's bearer token names, or the refusal to send back."""
    try:
        token = bearer_token(request.headers)
    except HeaderError as exc:
        return error_response(http.HTTPStatus.BAD_REQUEST, "bad_request", f"Refused: {exc}.")
    technician = authenticate(token) if token is not None else None
    if technician is None:
        return error_response(
            http.HTTPStatus.UNAUTHORIZED,
            "unauthorized",
            "The relay did not accept your API token; check --token or PUENTE_TOKEN.",
            (("WWW-Authenticate", 'Bearer realm="puente-relay"'),),
        )
    return technician


def device_desk(
    config: RelayConfig,
    cluster: ClusterNode | None = None,
    audit: Callable[[NewEvent], object] | None = None,
) -> DeviceDesk:
    """The desk for this relay's settings: devices live in its store (SQLite in
    ``data_dir``, or PostgreSQL at ``database_url``); alerts become Request Tracker
    tickets when the relay has RT configured; ``audit`` records an event in the relay's
    audit log (failure actions)."""
    database = None
    if config.data_dir or config.database_url:
        database = DeviceDatabase.for_relay(config.data_dir, config.database_url)
    ticketing = next(
        (
            RequestTrackerAlerts.from_connector(c)
            for c in config.connectors
            if isinstance(c, RequestTrackerConnector)
        ),
        None,
    )
    return DeviceDesk(
        database,
        ticketing,
        clock=config.clock,
        cluster=cluster,
        audit=audit,
        delivery_workers=config.delivery.alert_workers,
    )


@functools.lru_cache(maxsize=256)
def _alert_policy(document: str | None) -> DevicePolicy:
    """The device's policy as far as alerts go (thresholds, maintenance windows). Cached:
    the devices of one token share one policy document, and so one parsed object."""
    if document is None:
        return DevicePolicy("", "", 1, standard_checks())
    try:
        return read_policy_unverified(document.encode())
    except TrustError:
        return DevicePolicy("", "", 1, standard_checks())


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise MalformedDocument("A device message holds invalid base64.") from None


def _enrol_token(header: str | None) -> str:
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme != "Enrol" or not token.strip():
        raise EnrolmentRefused("Send the enrolment token as 'Authorization: Enrol TOKEN'.")
    return token.strip()


def _enrol_body(body: bytes) -> tuple[str, bytes]:
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if (
        not isinstance(payload, dict)
        or set(payload) != {"token", "public_key"}
        or not all(isinstance(v, str) for v in payload.values())
    ):
        raise EnrolmentRefused('Enrol with {"token": TOKEN, "public_key": BASE64}.')
    try:
        return payload["token"], _b64(payload["public_key"])
    except MalformedDocument as exc:
        raise EnrolmentRefused(str(exc)) from None
