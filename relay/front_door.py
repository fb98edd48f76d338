"""The relay's front door: every HTTP request passes here before anything else.

:class:`FrontDoor` answers what needs no WebSocket (the REST API, ``/healthz``,
``/metrics``, unreadable bodies) and judges each upgrade of ``/v1/session`` (method,
``Origin``, cluster hops, the technician's bearer token, capacity). It returns None
only for an upgrade it accepts; then :class:`relay.server.RelayServer` takes the
connection. Agent downloads and the join page's pictures go to
:class:`relay.downloads.DownloadDesk`, which streams them itself.
"""

from __future__ import annotations

import http
import ipaddress
import json
import logging
from collections.abc import Awaitable
from typing import Protocol

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from protocol import envelope
from protocol.device_wire import DEVICE_PATH
from protocol.envelope import ErrorCode

from . import metrics as metrics_module
from . import unattended
from .api import RestApi
from .cluster import ClusterNode
from .config import RelayConfig
from .devices import DeviceDesk
from .downloads import DownloadDesk, shelf_for
from .errors import HeaderError
from .http import (
    RelayConnection,
    at_capacity_response,
    bearer_token,
    error_response,
    single_header,
)
from .store import RelayStore

logger = logging.getLogger("relay.server")


class RelayState(Protocol):
    """What the front door reads of the relay behind it (:class:`relay.server.RelayServer`)."""

    config: RelayConfig
    metrics: metrics_module.RelayMetrics

    @property
    def store(self) -> RelayStore: ...
    @property
    def devices(self) -> DeviceDesk: ...
    @property
    def cluster(self) -> ClusterNode | None: ...
    @property
    def draining(self) -> bool: ...
    @property
    def closing(self) -> bool: ...
    @property
    def connections_open(self) -> int: ...


class FrontDoor:
    """Routes each HTTP request of ``relay`` (see the module docstring)."""

    def __init__(self, relay: RelayState, api: RestApi) -> None:
        self.relay = relay
        self.config = relay.config
        self._api = api
        self.downloads = DownloadDesk(
            shelf_for(relay.config.data_dir),
            lambda: relay.store,
            relay.config.clock,
            relay.config.download_stall_timeout,
            relay.config.download_rate,
        )
        api.downloads = self.downloads.shelf  # the join page lists what the desk serves

    def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | Awaitable[Response] | None:
        """Answer REST requests and refused upgrades; return None to accept an upgrade.

        A download is an awaitable that streams the file before it returns; a
        customer's long-poll of a help request is answered later (an awaitable too)."""
        assert isinstance(connection, RelayConnection)  # create_connection guarantees it
        connection.request_complete()
        ip = connection.client_ip = client_ip(connection, request, self.config.trusted_proxies)
        response: Response | None
        if connection.request_error is not None:
            response = body_refusal(connection.request_error)
        elif (download := self.downloads.answer(connection, request, ip)) is not None:
            if not isinstance(download, Response):
                return download  # it logs how the stream went
            response = download
        elif request.path in (envelope.WS_PATH, DEVICE_PATH):
            response = self._check_upgrade(connection, request, ip)
            ip = connection.client_ip  # a node hop names the real client
            if response is not None:
                self._count_refusal(response)
        elif request.path == "/metrics":
            response = self._serve_metrics(connection, request)
        elif request.path == "/healthz" and request.method == "GET" and self.relay.draining:
            response = error_response(
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                "draining",
                "The relay is draining before it stops; send new sessions elsewhere.",
            )
        elif unattended.owns(request.path.partition("?")[0]):
            return self._logged(
                unattended.ask_device(
                    request,
                    connection.request_body,
                    self.relay.store,
                    self.relay.devices,
                    self.config.clock(),
                ),
                request,
                ip,
            )
        elif self.relay.devices.owns(request.path.partition("?")[0]):
            response = self.relay.devices.process_request(
                request, connection.request_body, self.relay.store.authenticate
            )
        elif (held := self._api.help.long_poll(request)) is not None:
            # Held up to LONG_POLL_SECONDS by the queue itself: past open_timeout, which
            # would otherwise cut a quiet queue's wait with no answer at all.
            connection.lift_open_timeout()
            logger.info("http %s %s held (long-poll) ip=%s", request.method, request.path, ip)
            return held
        else:
            response = self._api.handle(request, connection.request_body, ip)
        path = request.path.partition("?")[0]
        status = response.status_code if response else "upgrade"
        logger.info("http %s %s status=%s ip=%s", request.method, path, status, ip)
        return response

    @staticmethod
    def _logged(
        answer: Response | Awaitable[Response], request: Request, ip: str
    ) -> Response | Awaitable[Response]:
        """Log an answer that may first have to wait (it tells a device something)."""

        async def wait() -> Response:
            response = answer if isinstance(answer, Response) else await answer
            path = request.path.partition("?")[0]
            logger.info(
                "http %s %s status=%s ip=%s", request.method, path, response.status_code, ip
            )
            return response

        return wait()

    def _serve_metrics(self, connection: RelayConnection, request: Request) -> Response:
        """``GET /metrics`` for those :func:`relay.metrics.authorize` lets in."""
        if request.method != "GET":
            return error_response(
                http.HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This route does not accept " + request.method + "; use GET.",
                (("Allow", "GET"),),
            )
        address = connection.remote_address
        peer = str(address[0]) if address else "unknown"
        refusal = metrics_module.authorize(
            request.headers, peer, self.config.trusted_proxies, self.config.metrics_token
        )
        return refusal or metrics_module.metrics_response(self.relay.metrics.render())

    def _count_refusal(self, response: Response) -> None:
        """Count a refused upgrade under the error code its body names."""
        try:
            reason = str(json.loads(response.body)["error"])
        except (ValueError, KeyError, TypeError):
            reason = str(response.status_code)
        self.relay.metrics.joins_refused.labels(reason).value += 1

    def _check_upgrade(
        self, connection: RelayConnection, request: Request, ip: str
    ) -> Response | None:
        """Refuse an upgrade with an HTTP error, or authenticate it and return None."""
        if request.method != "GET":
            return error_response(
                http.HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Open the session endpoint with a WebSocket (GET) request.",
                (("Allow", "GET"),),
            )
        if connection.request_body:
            return error_response(
                http.HTTPStatus.BAD_REQUEST, "bad_request", "A WebSocket upgrade has no body."
            )
        try:
            origin = single_header(request.headers, "Origin")
            token = bearer_token(request.headers)
        except HeaderError as exc:
            return error_response(http.HTTPStatus.BAD_REQUEST, "bad_request", f"Refused: {exc}.")
        # Native clients send no Origin; a browser page does, and only listed sites may
        # open sessions (cross-site WebSocket hijacking).
        if origin is not None and origin not in self.config.allowed_origins:
            return error_response(
                http.HTTPStatus.FORBIDDEN,
                "forbidden",
                "Web pages from this origin may not open relay sessions.",
            )
        if self.relay.cluster is not None and cluster_hop_headers(request.headers):
            vouched_ip = self.relay.cluster.verify_hop(request.headers)
            if vouched_ip is None:
                return error_response(
                    http.HTTPStatus.FORBIDDEN, "forbidden", "Refused: not a node of this cluster."
                )
            connection.from_node = True
            connection.client_ip = vouched_ip
        elif cluster_hop_headers(request.headers):
            return error_response(
                http.HTTPStatus.FORBIDDEN, "forbidden", "Refused: this relay is not in a cluster."
            )
        if token is not None:
            connection.technician = self.relay.store.authenticate(token)
            if connection.technician is None:
                return error_response(
                    http.HTTPStatus.UNAUTHORIZED,
                    "unauthorized",
                    envelope.ERROR_SENTENCES[ErrorCode.UNAUTHORIZED],
                    (("WWW-Authenticate", 'Bearer realm="puente-relay"'),),
                )
        # While draining, upgrades still come in: ends resume here, claims are refused.
        if self.relay.closing or self.relay.connections_open >= self.config.max_connections:
            return at_capacity_response()
        if not connection.take_upgrade_slot(connection.client_ip):
            return error_response(
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                "unavailable",
                "Your address has too many connections to this relay open; close some "
                "sessions and try again.",
                (("Retry-After", "10"),),
            )
        # From here it counts against max_connections, no longer against max_handshakes.
        connection.upgraded()
        return None


def cluster_hop_headers(headers: Headers) -> bool:
    """Whether an upgrade claims to be a hop from another node of a cluster."""
    return "X-Puente-Node-Secret" in headers


def client_ip(connection: ServerConnection, request: Request, trusted: tuple[str, ...]) -> str:
    """The client's address: the TCP peer, or what trusted proxies say it is.

    ``X-Forwarded-For`` is read right to left and the first address that is not a
    trusted proxy wins: hops to the left of it were written by the client and prove nothing.
    """
    address = connection.remote_address
    peer = str(address[0]) if address else "unknown"
    if peer not in trusted:
        return peer
    hops = [
        hop.strip()
        for value in request.headers.get_all("X-Forwarded-For")
        for hop in value.split(",")
    ]
    for hop in reversed(hops):
        if hop in trusted:
            continue
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            break
    return peer


def body_refusal(status: http.HTTPStatus) -> Response:
    messages = {
        http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE: ("too_large", "The request body is over 64 KiB."),
        http.HTTPStatus.LENGTH_REQUIRED: (
            "length_required",
            "Send the body with a Content-Length header, not chunked.",
        ),
    }
    code, message = messages.get(
        status, ("bad_request", "The request's Content-Length is malformed.")
    )
    return error_response(status, code, message)
