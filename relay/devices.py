"""Enrolled devices at the relay: enrolment over HTTPS, presence over one WebSocket,
check summaries turned into alerts and tickets.

The messages are :mod:`protocol.device_wire`'s. :class:`DeviceDesk` answers the
enrolment requests (``process_request``), serves each device's WebSocket once the
front door accepted the upgrade (``serve``), keeps who is online in memory, written
down lazily and shared across cluster nodes (:mod:`relay.presence`), and feeds each
result summary to the alert book
(:mod:`relay.alert_book`), whose owed ticket actions one background thread delivers
to Request Tracker when the relay has it configured, several alerts at once
(:mod:`relay.alert_delivery`).

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
import secrets
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
from .alerts import Observation
from .cluster import ClusterNode
from .config import RelayConfig
from .connectors import RequestTrackerConnector
from .enrolment import EnrolmentBook
from .errors import EnrolmentRefused, HeaderError
from .events import EventType, NewEvent
from .http import bearer_token, error_response, json_response
from .presence import PresenceBook, SealedDetails, open_tickets, stored_details
from .sqlite_store import DATABASE_NAME

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
    """Everything the relay does for enrolled devices (SQLite store only)."""

    def __init__(
        self,
        database: Path | None,
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
        self._database = database
        self._enrolment = EnrolmentBook(database) if database else None
        self._alerts = AlertBook(database, clock) if database else None
        self.presence_book = PresenceBook(database, clock, cluster) if database else None
        # Live connections per device, oldest first: unenrolling drops every one of
        # them, and tell() speaks to the newest.
        self._connections: dict[str, list[ServerConnection]] = {}
        self._policies: dict[str, DevicePolicy] = {}
        self._delivery = (
            AlertDelivery(ticketing, delivery_workers, retry_after=heartbeat)
            if ticketing is not None and database is not None
            else None
        )
        self._delivery_task: asyncio.Task[None] | None = None
        self._stop_delivery = threading.Event()

    # -- life --------------------------------------------------------------------------

    def start(self) -> None:
        """Deliver what a previous run still owed, then whatever comes."""
        if self._delivery is not None:
            self._delivery_task = asyncio.create_task(
                asyncio.to_thread(self._deliver_until_stopped), name="device-alerts"
            )
        if self.presence_book is not None:
            self.presence_book.start()

    async def close(self) -> None:
        if self.presence_book is not None:
            await self.presence_book.close()
        if self._delivery is not None and self._delivery_task is not None:
            self._stop_delivery.set()
            self._delivery.poke()
            # Returns at once: calls still in flight end on their own, their actions
            # owed and counted as tried (relay.alert_delivery, rule 4).
            await self._delivery_task
        for book in (self._enrolment, self._alerts):
            if book is not None:
                book.close()

    def _deliver_until_stopped(self) -> None:
        """The delivery's owner thread, with its own connection to the book."""
        assert self._database is not None and self._delivery is not None
        while not self._stop_delivery.is_set():
            book = AlertBook(self._database, self._clock)
            try:
                self._delivery.run(book, self._stop_delivery, idle=self.heartbeat)
            except Exception:  # a bug or a locked database: keep delivering
                logger.exception("alert delivery failed; starting again in %d s", self.heartbeat)
                self._stop_delivery.wait(self.heartbeat)
            finally:
                book.close()

    def _wake_delivery(self) -> None:
        if self._delivery is not None:
            self._delivery.poke()

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
                "This relay does not enrol devices (it needs its SQLite store, --data-dir).",
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
        if not one or self._database is None or self.presence_book is None:
            return error_response(
                http.HTTPStatus.NOT_FOUND,
                "not_found",
                f"No device {device_id[:40]!r} is enrolled here; 'puente-tech devices' lists them.",
            )
        details: dict[str, SealedDetails] = {
            d.check: d for d in stored_details(self._database, device_id)
        }
        for newer in self.presence_book.details_owed(device_id):
            if newer.check not in details or newer.at >= details[newer.check].at:
                details[newer.check] = newer
        device = self._enrolment.device(device_id) if self._enrolment else None
        body = {
            **one[0].as_dict(),
            "details": [details[check].as_dict() for check in sorted(details)],
            "tickets": open_tickets(self._database, device_id),
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
        # The device's heartbeats prove it alive (MISSED_HEARTBEATS of them lost and it is
        # gone): the server's keepalive pings would add two frames per device every 20 s,
        # most of the relay's CPU for 10,000 idle devices (docs/PERFORMANCE.md).
        if connection.keepalive_task is not None:
            connection.keepalive_task.cancel()
            connection.keepalive_task = None
        logger.info("device online device=%s", device_id)
        try:
            while True:
                async with asyncio.timeout(self.heartbeat * MISSED_HEARTBEATS):
                    text = await connection.recv()
                message = wire.parse_device_message(text)
                book.heard(device_id)  # memory only (relay.presence, rule 1)
                if message["type"] == "results":
                    self._results(device_id, message["results"], message["at"])
                elif message["type"] == "action":
                    self._action(device_id, message)
                elif message["type"] == "unenrol" and self._enrolment is not None:
                    self._enrolment.forget(device_id)
                    book.forgotten(device_id)
                    logger.info("device unenrolled device=%s", device_id)
                    await connection.send(wire.encode("goodbye"))
                    await self._drop_others(device_id, connection)
                    return
                elif message["type"] != "heartbeat":
                    raise MalformedDocument(
                        "A device sends only heartbeats, check results, failure-action "
                        "reports and its unenrolment; update the agent."
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
                book.left(device_id)  # no-op if forgotten
                logger.info("device offline device=%s", device_id)

    async def _drop_others(self, device_id: str, unenrolling: ServerConnection) -> None:
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
                        "This relay does not serve enrolled devices (it needs its SQLite "
                        "store); ask your help desk which relay to use."
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
            self._wake_delivery()
        if self._audit is not None:
            fields = ("check", "fix", "outcome", "note")
            data = {name: message[name] for name in fields}
            data["ticket_note"] = "owed" if noted else "no open alert"
            self._audit(NewEvent(EventType.DEVICE_FAILURE_ACTION, f"device-{device_id}", data))

    def _results(self, device_id: str, results: list[dict[str, Any]], reported_at: int) -> None:
        if self._alerts is None:
            return
        policy = self._policies.get(device_id) or _alert_policy(None)
        now = self._clock()
        quiet = policy.in_maintenance(int(now))
        spoke = False
        for summary in results:
            if "sealed" in summary and self.presence_book is not None:
                self.presence_book.sealed(
                    device_id, summary["check"], reported_at, summary["status"], summary["sealed"]
                )
            check = policy.check(summary["check"])
            threshold = check.failures_before_alert if check is not None else 3
            step = self._alerts.observe(
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
            spoke |= step.action.value != "none"
        if spoke:
            self._wake_delivery()

    async def tell(self, device_id: str, text: str) -> bool:
        """Send one message to ``device_id`` if it is online here; False if it is not.
        It goes to the device's newest live connection (an older one may be a link
        that is about to time out)."""
        for connection in reversed(list(self._connections.get(device_id, ()))):
            try:
                await connection.send(text)
            except ConnectionClosed:
                continue
            return True
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
    """The desk for this relay's settings: enrolment needs the SQLite store; alerts
    become Request Tracker tickets when the relay has RT configured; ``audit`` records
    an event in the relay's audit log (failure actions)."""
    database = None
    if config.data_dir and not config.database_url:
        database = Path(config.data_dir) / DATABASE_NAME
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
