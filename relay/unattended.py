"""A technician asks an enrolled device for an unattended session.

``POST /api/devices/{device_id}/connect`` (bearer token, body ``{"session_id": S}``):
the technician first creates a session for the ticket (``POST /api/sessions``), then
asks here. The relay checks the session is theirs and still waiting and that the
device is online, and tells the device, over its presence WebSocket
(:meth:`relay.devices.DeviceDesk.tell`), the session's nameplate and ticket. Both then
claim the nameplate and pair code-less (:mod:`protocol.cert_pairing`): the relay
forwards ciphertext only, exactly as for any session. It never learns the
technician's certificate, and it decides nothing about access: the device checks the
certificate, its "unattended" role and its own policy (:mod:`agent.unattended`).

The answer (202) carries the device's registered public key, so the technician's
client requires the device to prove it in the key exchange, and the unattended terms
of the device's policy as registered (how long the device waits for an answer), which
the client only uses to know how long to wait.
"""

from __future__ import annotations

import base64
import http
import json
import logging
import re
from collections.abc import Awaitable

from websockets.http11 import Request, Response

from protocol import device_wire as wire

from .devices import DeviceDesk, technician_or_refusal
from .http import error_response, json_response
from .records import SessionState
from .store import RelayStore

logger = logging.getLogger("relay.unattended")

_CONNECT_PATH = re.compile(r"/api/devices/([0-9a-f]{32})/connect")


def owns(path: str) -> bool:
    return path.startswith("/api/devices/") and path.endswith("/connect")


def ask_device(
    request: Request, body: bytes, store: RelayStore, devices: DeviceDesk, now: float
) -> Response | Awaitable[Response]:
    """Answer ``POST /api/devices/{id}/connect`` (see the module docstring)."""
    technician = technician_or_refusal(request, store.authenticate)
    if isinstance(technician, Response):
        return technician
    if request.method != "POST":
        return error_response(
            http.HTTPStatus.METHOD_NOT_ALLOWED,
            "method_not_allowed",
            'Use POST /api/devices/DEVICE/connect with {"session_id": ...}.',
            (("Allow", "POST"),),
        )
    match = _CONNECT_PATH.fullmatch(request.path.partition("?")[0])
    registration = devices.registration(match.group(1)) if match else None
    if match is None or registration is None:
        return error_response(
            http.HTTPStatus.NOT_FOUND,
            "not_found",
            "No enrolled device has this id; list them with 'puente-tech devices'.",
        )
    device_id = match.group(1)
    session_id = _session_id(body)
    record = store.get_session(session_id) if session_id else None
    if record is None or record.technician_id != technician.id:
        return error_response(
            http.HTTPStatus.NOT_FOUND,
            "not_found",
            'Send {"session_id": ID} of a session you created for the ticket (POST /api/sessions).',
        )
    if record.state_at(now) is not SessionState.WAITING:
        return error_response(
            http.HTTPStatus.CONFLICT,
            "session_not_waiting",
            "That session is no longer waiting; create a new one for the ticket.",
        )
    public_key, policy = registration
    message = wire.encode("unattended", nameplate=record.nameplate, ticket_id=record.ticket_id)

    async def tell() -> Response:
        if not await devices.tell(device_id, message):
            return error_response(
                http.HTTPStatus.CONFLICT,
                "device_offline",
                "This device is not online now; it connects by itself when it is on and "
                "reaches the relay. Check 'puente-tech devices' and try again later.",
            )
        logger.info(
            "unattended request device=%s session=%s technician=%s",
            device_id,
            record.id,
            technician.id,
        )
        return json_response(
            http.HTTPStatus.ACCEPTED,
            {
                "device_id": device_id,
                "session_id": record.id,
                "nameplate": record.nameplate,
                "device_key": base64.b64encode(public_key).decode("ascii"),
                "unattended": policy.unattended.body(),
            },
        )

    return tell()


def _session_id(body: bytes) -> str | None:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return None
    if not isinstance(payload, dict) or set(payload) != {"session_id"}:
        return None
    value = payload["session_id"]
    return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{32}", value) else None
