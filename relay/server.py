"""The relay server: pairs an agent with a technician and forwards their ciphertext.

One port serves the WebSocket endpoint ``/v1/session`` (:data:`protocol.envelope.WS_PATH`)
and the REST API (:mod:`relay.api`). The relay never looks inside forwarded
messages and never logs them; it sees metadata only (accounts, tickets, times,
byte counts, IPs).

Rules of a WebSocket connection (anything not listed closes it with an error)::

    upgrade      Origin absent or allowed, else HTTP 403; Authorization absent or a
                 valid technician token, else HTTP 401; over max_connections: 503.
    claim        the first message, a text ``claim`` (or ``resume``), within
                 claim_timeout, else error bad_request. The claim is judged against
                 the store here (the refusals up to rate_limited per nameplate, in the
                 order listed in :mod:`relay.rendezvous`), then fed to the session's
                 rendezvous.
    the rest     what a claim, a resume, each message and each disconnect do to a
                 session, and the timers (nameplate expiry, idle timeout, resume
                 grace, drain, shutdown, DELETE through the API) are the rules of
                 :mod:`relay.rendezvous`: a sans-I/O table this adapter feeds with the
                 time as ``now``, performing the actions it returns (sends, forwarding,
                 closes, store writes, metrics, help-desk events).
    forwarding   once paired, binary messages are forwarded untouched as soon as they
                 are parsed (:meth:`RelayServer._forward`, which never consults the
                 table per message); while the peer's send buffer is over write_limit,
                 reading from the sender pauses, so a slow reader slows its sender
                 (backpressure). An oversized message closes with 1009 and ends the
                 session.
    draining     (SIGTERM with drain_timeout > 0) /healthz answers 503 and new claims
                 are refused with error shutdown; the rendezvous tells waiting ends
                 shutdown at once, paired sessions go on until they end or the drain
                 period is over, then shutdown.

Also served on the same port: ``GET /metrics`` (:mod:`relay.metrics`, its own access
rule). With ``redis_url`` the relay is one node of a cluster (:mod:`relay.cluster`):
a claim, or a resume, for a session held by another node is passed through to it.

Every refusal is one ``error`` text message followed by a close. Session state
lives in the store (:mod:`relay.store`); only connections live in memory. Each
change of a session's state (created, paired, ended) is recorded right after it as
a help-desk event in the audit log and the outbox (:mod:`relay.outbox`), which
delivers it to the configured connectors (:mod:`relay.connectors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from time import perf_counter
from types import TracebackType
from typing import Any, Self, cast

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.frames import CloseCode

from protocol import envelope
from protocol.device_wire import DEVICE_PATH
from protocol.envelope import ErrorCode, Role
from protocol.errors import EnvelopeError
from protocol.safe_text import safe_text

from . import metrics as metrics_module
from .admission import AddressLimits
from .api import RestApi
from .cluster import ClusterNode, default_node_url
from .config import RelayConfig, fit_open_file_limit
from .devices import DeviceDesk, device_desk
from .errors import ConfigError, RedisUnavailable
from .events import EventType, NewEvent, join_url
from .front_door import FrontDoor
from .http import RelayConnection, say_goodbye, send_all, send_now, send_quietly
from .live import Endpoint, LiveSession
from .metrics import Value
from .outbox import Outbox
from .ratelimit import SlidingWindowLimiter
from .records import SessionState
from .rendezvous import (
    Action,
    Attach,
    Detach,
    Event,
    Finish,
    Forget,
    Forward,
    Input,
    Kind,
    Pair,
    Phase,
    RefuseClaim,
    Refused,
    RefuseResume,
    Reissue,
    Rendezvous,
    Send,
    Suspended,
)
from .store import RelayStore
from .stores import open_store
from .tls import ServerTLS, check_pair

logger = logging.getLogger("relay.server")

_DIRECTIONS = {Role.AGENT: "agent_to_technician", Role.TECHNICIAN: "technician_to_agent"}


class RelayServer:
    """A running relay. Use ``async with RelayServer(config) as relay:`` or start()/close().

    ``store`` defaults to :class:`SQLiteStore` in ``config.data_dir``; the relay
    closes the store it was given when it closes.
    """

    def __init__(self, config: RelayConfig, store: RelayStore | None = None) -> None:
        self.config = config
        self._clock = config.clock
        self._store = store
        self._server: Server | None = None
        self._api: RestApi | None = None
        self._outbox: Outbox | None = None
        self._devices: DeviceDesk | None = None
        self._live: dict[str, LiveSession] = {}
        self._connections: set[RelayConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._housekeeping: asyncio.Task[None] | None = None
        self._ip_limiter = SlidingWindowLimiter(config.joins_per_ip_per_minute, 60.0)
        self._closing = False
        self._draining = False
        self._tls: ServerTLS | None = None
        self._cluster: ClusterNode | None = None
        self._idle = asyncio.Event()  # set whenever no session is live here
        self.metrics = metrics_module.RelayMetrics(
            sessions_waiting=lambda: sum(
                1 for live in self._live.values() if not live.rendezvous.paired
            ),
            sessions_active=lambda: sum(
                1 for live in self._live.values() if live.rendezvous.paired
            ),
            connections_open=lambda: len(self._connections),
            connections_proxied=lambda: self._cluster.proxied if self._cluster else 0,
            webhook_backlog=lambda: self._store.pending_deliveries() if self._store else 0,
        )

    # ------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------

    @property
    def store(self) -> RelayStore:
        """The store (open between start() and close())."""
        if self._store is None:
            raise RuntimeError("the relay is not started")
        return self._store

    @property
    def devices(self) -> DeviceDesk:
        """Enrolled devices (once started)."""
        if self._devices is None:
            raise RuntimeError("the relay is not started")
        return self._devices

    @property
    def outbox(self) -> Outbox:
        """Help-desk events: recording and delivery (open between start() and close())."""
        if self._outbox is None:
            raise RuntimeError("the relay is not started")
        return self._outbox

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("the relay is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        """``public_url`` if set, else ``http(s)://HOST:PORT`` of the listening socket."""
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        host = self.config.host
        scheme = "https" if self._tls else "http"
        return (
            f"{scheme}://[{host}]:{self.port}" if ":" in host else f"{scheme}://{host}:{self.port}"
        )

    @property
    def draining(self) -> bool:
        """True once a drain started (SIGTERM with a drain period)."""
        return self._draining

    @property
    def closing(self) -> bool:
        """True once close() started."""
        return self._closing

    @property
    def connections_open(self) -> int:
        """WebSocket connections open now (upgraded, not yet closed)."""
        return len(self._connections)

    @property
    def tls(self) -> ServerTLS | None:
        """The TLS settings when serving wss:// (reload() them to rotate certificates)."""
        return self._tls

    @property
    def cluster(self) -> ClusterNode | None:
        """This node's cluster membership, when running with redis_url."""
        return self._cluster

    async def start(self) -> None:
        """Open the store and listen. Raise ConfigError (a sentence) if impossible."""
        config = self.config
        check_pair(config.tls_cert, config.tls_key)
        if config.tls_cert is not None and config.tls_key is not None:
            self._tls = ServerTLS(config.tls_cert, config.tls_key)
        if self._store is None:
            self._store = open_store(config.data_dir, config.database_url)
        self._outbox = Outbox(
            self._store, config.connectors, self._clock, lambda: self.base_url, config.delivery
        )
        self._api = RestApi(
            self._store,
            self,
            self._clock,
            lambda: self.base_url,
            config.nameplate_ttl,
            outbox=self._outbox,
            agent_download_url=config.agent_download_url,
            sessions_per_minute=config.sessions_per_token_per_minute,
        )
        config = self.config = fit_open_file_limit(config)
        limits = AddressLimits(
            config.max_half_open_per_ip,
            config.connections_per_ip,
            config.trusted_proxies,
            config.max_handshakes,
        )
        connection_factory = RelayConnection.factory(
            limits, max_send_buffer=config.max_send_buffer, open_timeout=config.open_timeout
        )
        try:
            self._server = await serve(
                self._handle_connection,
                config.host,
                config.port,
                create_connection=cast(type[RelayConnection], connection_factory),
                process_request=FrontDoor(self, self._api).process_request,
                server_header="puente-relay",
                compression=None,  # ciphertext does not compress; deflate costs memory
                max_size=config.max_message_size,
                max_queue=config.max_queue,
                write_limit=config.write_limit,
                open_timeout=None,  # RelayConnection applies it (relay.downloads)
                close_timeout=config.close_timeout,
                ping_interval=config.ping_interval,
                ping_timeout=config.ping_timeout,
                ssl=self._tls.context if self._tls else None,
                ssl_handshake_timeout=config.open_timeout if self._tls else None,
            )
        except OSError as exc:
            self._store.close()
            where = f"{config.host}:{config.port}"
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"Port {config.port} on {config.host} is already in use; stop the other "
                    "program or choose another port with --port."
                ) from exc
            raise ConfigError(
                f"Cannot listen on {where} ({exc.strerror or exc}); check --host and --port."
            ) from exc
        if config.redis_url:
            await self._join_cluster(config.redis_url)
        self._housekeeping = asyncio.create_task(self._housekeeping_loop())
        # Events a crash cut off are recorded now; then pending deliveries resume.
        self._outbox.reconcile()
        self._outbox.start()
        self._devices = device_desk(config, self._cluster, self._audit_only)
        self._devices.start()
        logger.info("relay listening on %s", self.base_url)

    def _audit_only(self, event: NewEvent) -> None:
        """Record ``event`` in the audit log, for no help desk (device failure actions)."""
        if self._store is not None:
            self._store.record_event(event, self._clock(), ())

    async def _join_cluster(self, redis_url: str) -> None:
        config = self.config
        node_url = config.node_url or default_node_url(
            "wss" if self._tls else "ws", config.host, self.port
        )
        self._cluster = ClusterNode(
            redis_url,
            node_url,
            on_end=self._end_live_session,
            on_lost=self._sessions_lost,
            heartbeat_interval=config.cluster_heartbeat_interval,
            heartbeat_ttl=config.cluster_heartbeat_ttl,
            joins_per_ip_per_minute=config.joins_per_ip_per_minute,
            connect_settings=config.websocket_limits(),
        )
        try:
            await self._cluster.start()
        except ConfigError:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()
            self.store.close()
            raise

    async def drain(self, timeout: float) -> None:
        """Stop taking sessions and let paired ones go on for up to ``timeout`` seconds.

        Waiting ends are told ``shutdown`` at once so they can claim again (on another
        node of a cluster). Returns early when no session is left here.
        """
        if self._closing or self._server is None or self._draining:
            return
        self._draining = True
        logger.info("relay draining for up to %.0f s", timeout)
        if self._cluster is not None:
            await self._cluster.drain()
        now = self._clock()
        for live in list(self._live.values()):
            self._dispatch(live, Event(Input.DRAIN, now))
        try:
            async with asyncio.timeout(timeout):
                while self._live or (self._cluster is not None and self._cluster.proxied):
                    self._idle.clear()
                    # Proxied hops end without touching _live: poll them now and then.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._idle.wait(), 0.5)
        except TimeoutError:
            logger.info("drain period over with %d sessions still open", len(self._live))

    async def close(self) -> None:
        """Say ``shutdown`` to every connection, stop listening and close the store.

        Paired sessions are recorded as ended; waiting sessions stay waiting, so
        their nameplates still work once the relay is back (on any node).
        """
        if self._closing or self._server is None:
            return
        self._closing = True
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            await asyncio.gather(self._housekeeping, return_exceptions=True)
        now = self._clock()
        for live in list(self._live.values()):
            self._dispatch(live, Event(Input.SHUTDOWN, now))
        goodbye = envelope.error(ErrorCode.SHUTDOWN)
        for connection in list(self._connections):
            self._farewell(connection, goodbye)
        await self._drain_tasks()
        self._server.close()
        await self._server.wait_closed()
        await self._drain_tasks()
        if self._outbox is not None:
            await self._outbox.close()
        if self._devices is not None:
            await self._devices.close()
        if self._cluster is not None:
            await self._cluster.close()
        if self._store is not None:
            self._store.close()
        logger.info("relay stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # SessionControl (used by the REST API)

    def end_session(self, session_id: str, reason: str) -> None:
        """End a session now; connected ends get error ``ended`` and are closed.

        In a cluster the session may be held by another node: it is finished in the
        shared store here and the holder is told to close its connections.
        """
        if self._end_live_session(session_id, reason):
            return
        if self.store.finish_session(session_id, SessionState.ENDED, self._clock(), reason):
            logger.info("session finished session=%s state=ended why=%s", session_id, reason)
            self.outbox.session_ended(session_id)
        if self._cluster is not None:
            self._spawn(self._cluster.publish_end(session_id, reason))

    def _sessions_lost(self, session_ids: list[str]) -> None:
        """Record the paired sessions of a lost cluster node as ended."""
        why = "the relay node holding the session was lost"
        for session_id in session_ids:
            if self.store.finish_session(session_id, SessionState.ENDED, self._clock(), why):
                logger.info("session finished session=%s state=ended why=%s", session_id, why)
                self.outbox.session_ended(session_id)

    def _end_live_session(self, session_id: str, reason: str) -> bool:
        """End a session whose connections are here; False if they are not."""
        live = self._live.get(session_id)
        if live is None:
            return False
        self._dispatch(live, Event(Input.DELETE, self._clock(), reason=reason))
        return True

    def live_byte_counts(self, session_id: str) -> tuple[int, int] | None:
        """Bytes forwarded so far (agent→tech, tech→agent) if the session is connected."""
        live = self._live.get(session_id)
        if live is None:
            return None
        return live.sent[Role.AGENT], live.sent[Role.TECHNICIAN]

    # ------------------------------------------------------------------
    # WebSocket: one task per connection
    # ------------------------------------------------------------------

    async def _handle_connection(self, connection: ServerConnection) -> None:
        assert isinstance(connection, RelayConnection)
        ip = connection.client_ip
        self._connections.add(connection)
        logger.info("connection opened ip=%s", ip)
        try:
            if connection.request is not None and connection.request.path == DEVICE_PATH:
                await self.devices.serve(connection)
                return
            claimed = await self._claim_phase(connection, ip)
            if claimed is not None:
                await self._relay_phase(*claimed)
        finally:
            # Returning lets websockets close the connection: first finish saying why.
            if connection.farewell is not None:
                await connection.farewell
            self._connections.discard(connection)
            logger.info("connection closed ip=%s", ip)

    async def _claim_phase(
        self, connection: RelayConnection, ip: str
    ) -> tuple[LiveSession, Endpoint] | None:
        """Read and judge the claim; return the session and end, or None if refused."""
        try:
            async with asyncio.timeout(self.config.claim_timeout):
                message = await connection.recv()
        except TimeoutError:
            logger.info("claim refused code=bad_request why=no claim in time ip=%s", ip)
            self.metrics.joins_refused.labels(ErrorCode.BAD_REQUEST).value += 1
            self._farewell(connection, envelope.error(ErrorCode.BAD_REQUEST))
            return None
        except ConnectionClosed:
            return None
        try:
            decoded = envelope.decode(message)
            if decoded.get("type") == "resume":
                resume = envelope.parse_resume(decoded)
                # Cluster hook: a session held by another node is resumed there.
                if await self._route_resume(connection, ip, resume[1], str(message)):
                    return None
                return await self._resume_phase(connection, ip, *resume)
            role, nameplate = envelope.parse_claim(decoded)
        except EnvelopeError as exc:
            logger.info("claim refused code=%s why=malformed claim ip=%s", exc.code, ip)
            self.metrics.joins_refused.labels(exc.code).value += 1
            self._farewell(connection, envelope.error(exc.code))
            return None
        # Cluster hook: a session held by another node is passed on to it from here.
        ip_checked = connection.from_node
        if self._cluster is not None and not connection.from_node:
            routed = await self._route_claim(connection, ip, role, nameplate, str(message))
            if routed is not None:
                if isinstance(routed, ErrorCode):
                    logger.info(
                        "claim refused code=%s role=%s nameplate=%s ip=%s",
                        routed,
                        role,
                        nameplate,
                        ip,
                    )
                    self.metrics.joins_refused.labels(routed).value += 1
                    self._farewell(connection, envelope.error(routed))
                return None
            ip_checked = True
        outcome = self._claim(connection, ip, role, nameplate, check_ip=not ip_checked)
        if isinstance(outcome, ErrorCode):
            logger.info(
                "claim refused code=%s role=%s nameplate=%s ip=%s", outcome, role, nameplate, ip
            )
            self.metrics.joins_refused.labels(outcome).value += 1
            self._farewell(connection, envelope.error(outcome))
            return None
        live, endpoint, sends = outcome
        logger.info(
            "claim accepted session=%s nameplate=%s role=%s ip=%s",
            live.record.id,
            nameplate,
            role,
            ip,
        )
        # websockets queues a whole message before its first await, so "waiting" always
        # precedes the "paired" that another task may send to this end meanwhile.
        await send_all(sends)
        # Both ends may be here now: the rendezvous pairs them (once, whichever claimer
        # gets here first).
        await send_all(self._perform(live, self._feed(live, Input.PAIR)))
        return live, endpoint

    async def _route_resume(
        self, connection: RelayConnection, ip: str, session_id: str, resume_text: str
    ) -> bool:
        """In a cluster: pass a resume to the node holding the session; True once done."""
        if self._cluster is None or connection.from_node or session_id in self._live:
            return False
        try:
            holder_url = await self._cluster.holder_of(session_id)
        except RedisUnavailable as exc:
            logger.warning("resume judged here: Redis unreachable (%s)", exc)
            return False
        if holder_url is None:
            return False
        authorization = (
            connection.request.headers.get("Authorization") if connection.request else None
        )
        await self._cluster.proxy(connection, holder_url, resume_text, ip, authorization)
        return True

    async def _route_claim(
        self, connection: RelayConnection, ip: str, role: Role, nameplate: str, claim_text: str
    ) -> ErrorCode | bool | None:
        """In a cluster: None to judge the claim here, an ErrorCode to refuse it, or
        True once the connection was passed to the node holding its session (and is over).

        The cluster-wide per-IP limit is applied here, so ``_claim`` skips its own.
        """
        assert self._cluster is not None
        now = self._clock()
        if self._closing or self._draining:
            return ErrorCode.SHUTDOWN
        try:
            if role is Role.AGENT and not await self._cluster.allow_join(ip, now):
                return ErrorCode.RATE_LIMITED
            record = self.store.find_by_nameplate(nameplate)
            if record is None or record.state_at(now) is not SessionState.WAITING:
                return None  # refused here, with the same code any node would give
            owner_url = await self._cluster.owner_of(record.id, record.expires_at - now)
        except RedisUnavailable as exc:
            logger.warning("claim refused: Redis unreachable (%s)", exc)
            return ErrorCode.SHUTDOWN
        if owner_url is None:
            return None
        authorization = (
            connection.request.headers.get("Authorization") if connection.request else None
        )
        await self._cluster.proxy(connection, owner_url, claim_text, ip, authorization)
        return True

    def _claim(
        self,
        connection: RelayConnection,
        ip: str,
        role: Role,
        nameplate: str,
        check_ip: bool = True,
    ) -> tuple[LiveSession, Endpoint, list[_Message]] | ErrorCode:
        """Judge a claim and register the end (synchronous: no other task interleaves).

        The store's refusals are judged here; then the session's rendezvous takes the
        claim. Returns the session, the end and the messages to send it, or a refusal.
        ``check_ip`` False: the per-IP limit was already applied cluster-wide.
        """
        now = self._clock()
        technician = connection.technician
        if self._closing or self._draining:
            return ErrorCode.SHUTDOWN
        if role is Role.TECHNICIAN and technician is None:
            return ErrorCode.UNAUTHORIZED
        # Counted before the lookup so that guessing unknown nameplates is throttled too.
        if role is Role.AGENT and check_ip and not self._ip_limiter.allow(ip, now):
            return ErrorCode.RATE_LIMITED
        record = self.store.find_by_nameplate(nameplate)
        if record is None:
            return ErrorCode.UNKNOWN_NAMEPLATE
        refusal = record.claim_refusal(role, technician.id if technician else None, now)
        if refusal is not None:
            return refusal
        live = self._live.get(record.id)
        if role is Role.AGENT:
            if self.store.count_agent_claim(record.id) > self.config.claims_per_nameplate:
                if live is not None:  # someone else is using the code
                    self._dispatch(live, Event(Input.CONTESTED, now))
                return ErrorCode.RATE_LIMITED
        contested = (
            role is Role.TECHNICIAN
            and self.store.agent_claims(record.id) > self.config.claims_per_nameplate
        )
        if live is None:
            rendezvous = Rendezvous(
                record.expires_at,
                resume_grace=self.config.resume_grace,
                idle_timeout=self.config.idle_timeout,
            )
            live = self._live[record.id] = LiveSession(record, rendezvous)
        claim = Event(Input.of(Kind.CLAIM, role), now, contested=contested)
        actions = live.rendezvous.handle(claim)
        for action in actions:
            if isinstance(action, RefuseClaim):
                if role is Role.AGENT and action.code is ErrorCode.ROLE_TAKEN:
                    self._dispatch(live, Event(Input.CONTESTED, now))
                return action.code
        sends = self._perform(live, actions, connection, ip)
        return live, live.ends[role], sends

    def _pair(self, live: LiveSession, now: float) -> list[_Message]:
        """Both ends are here: record the pairing; return "paired" for both."""
        if self.store.mark_paired(live.record.id, now):
            self.outbox.session_paired(live.record.id)
        if self._cluster is not None:
            self._spawn(self._cluster.track(live.record.id))
        record = live.record
        logger.info(
            "session paired session=%s nameplate=%s ticket=%s",
            record.id,
            record.nameplate,
            record.ticket_id,
        )
        paired = envelope.encode(
            {
                "type": "paired",
                "session_id": record.id,
                "ticket_id": record.ticket_id,
                "ticket_url": record.ticket_url,
                "technician": record.technician_name,
                "resume_grace": self.config.resume_grace,
            }
        )
        # From now on binary messages skip the reader tasks (see _forward); set before
        # "paired" goes out, so that no end can send data the old way first.
        for end in live.ends.values():
            end.connection.forward_binary = self._direct_path(live, end)
        return [(end.connection, paired) for end in live.ends.values()]

    def _direct_path(
        self, live: LiveSession, end: Endpoint
    ) -> Callable[[bytes | bytearray | memoryview], None]:
        """The callback that forwards ``end``'s binary messages as they are parsed."""
        return functools.partial(
            self._forward,
            live,
            end,
            end.role.peer,
            self.metrics.bytes_forwarded.labels(_DIRECTIONS[end.role]),
            live.rendezvous,
        )

    def _forward(
        self,
        live: LiveSession,
        end: Endpoint,
        peer_role: Role,
        forwarded: Value,
        rendezvous: Rendezvous,
        message: bytes | bytearray | memoryview,
    ) -> None:
        """Pass one binary message from ``end`` to its peer (called as it is parsed).

        Backpressure: when the peer's send buffer is over its limit, reading from
        ``end`` pauses until the peer's buffer drains, so a slow reader slows its sender.
        This runs for every message the relay forwards: keep it lean. It does what the
        rendezvous table says of binary in a paired phase (forward to the peer if it is
        here, else drop) without asking the table each time.
        """
        ends = live.ends
        if live.finished or ends.get(end.role) is not end:
            return  # over, or this connection was replaced by a resumed one
        peer = ends.get(peer_role)
        if peer is None:
            return  # the peer dropped and may come back: the ends resend what it missed
        started = perf_counter()
        if not send_now(end.connection, peer.connection, message):
            # The peer is closing; its own task decides whether the session ends or
            # waits for it to resume. Either way this message is not needed.
            return
        self.metrics.forwarding_latency.observe(perf_counter() - started)
        size = len(message)
        forwarded.value += size
        live.sent[end.role] += size
        rendezvous.last_activity = self._clock()

    async def _resume_phase(
        self, connection: RelayConnection, ip: str, role: Role, session_id: str, resume_id: bytes
    ) -> tuple[LiveSession, Endpoint] | None:
        """An end comes back to a suspended (or not yet suspended) session."""
        outcome = self._resume(connection, ip, role, session_id, resume_id)
        if isinstance(outcome, str):
            logger.info(
                "resume refused session=%s role=%s why=%s ip=%s", session_id, role, outcome, ip
            )
            self._farewell(connection, envelope.error(ErrorCode.NOT_RESUMABLE))
            return None
        live, endpoint, sends = outcome
        logger.info("resume accepted session=%s role=%s ip=%s", session_id, role, ip)
        both_back = live.rendezvous.phase is Phase.PAIRED
        await send_all(sends)
        if both_back:
            logger.info("session resumed session=%s", session_id)
        return live, endpoint

    def _resume(
        self, connection: RelayConnection, ip: str, role: Role, session_id: str, resume_id: bytes
    ) -> tuple[LiveSession, Endpoint, list[_Message]] | str:
        """Judge a resume (synchronous); return the session, the new end and what to
        send, or why it is refused."""
        now = self._clock()
        if self._closing:
            return "the relay is shutting down"
        live = self._live.get(session_id)
        if live is None:
            # Counted like a claim so that guessing session ids is throttled too.
            self._ip_limiter.allow(ip, now)
            return "no such live session"
        technician = connection.technician
        authorised = role is Role.AGENT or (
            technician is not None and technician.id == live.record.technician_id
        )
        event = Event(Input.of(Kind.RESUME, role), now, resume_id=resume_id, authorised=authorised)
        actions = live.rendezvous.handle(event)
        for action in actions:
            if isinstance(action, RefuseResume):
                if action.guess:
                    self._ip_limiter.allow(ip, now)
                return action.why
        sends = self._perform(live, actions, connection, ip)
        return live, live.ends[role], sends

    async def _relay_phase(self, live: LiveSession, end: Endpoint) -> None:
        """Read this end until it or the session is done.

        Binary normally takes the direct path (_forward) as it is parsed; what reaches
        this loop (before pairing, or after a fragmented message) is fed to the
        rendezvous and, when it says so, forwarded here. Each end's task forwards its
        own direction, and awaiting the peer's send stops reading here while the
        peer is slow.
        """
        role = end.role
        reason = f"the {role} disconnected"
        forwarded = self.metrics.bytes_forwarded.labels(_DIRECTIONS[role])
        latency = self.metrics.forwarding_latency
        binary = Input.of(Kind.BINARY, role)
        dropped = False
        try:
            async for message in end.connection:
                if live.finished:
                    return
                if live.ends.get(role) is not end:
                    return  # replaced by a resumed connection
                if isinstance(message, bytes):
                    received = time.perf_counter()
                    actions = live.rendezvous.handle(Event(binary, self._clock()))
                    if not actions:
                        continue  # the peer dropped and may come back: it gets these again
                    if not isinstance(actions[0], Forward):
                        self._perform_now(live, actions)
                        return
                    peer = live.ends.get(role.peer)
                    if peer is None:
                        continue
                    try:
                        await peer.connection.send(message)
                    except ConnectionClosed:
                        # The peer is gone; its own task decides whether the session
                        # ends or waits for it. Either way this message is not needed.
                        continue
                    latency.observe(time.perf_counter() - received)
                    forwarded.value += len(message)
                    live.sent[role] += len(message)
                    live.rendezvous.last_activity = self._clock()
                elif not self._control_message(live, end, message):
                    return
        except ConnectionClosedError as exc:
            if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
                reason = f"the {role} sent a message over the size limit"
            else:
                reason = f"the {role} disconnected abruptly"
                dropped = True
        finally:
            self._leave(live, end, reason, dropped=dropped)

    def _control_message(self, live: LiveSession, end: Endpoint, text: str) -> bool:
        """Feed a text message after the claim; return False when this end is done."""
        role = end.role
        verifier: str | None = None
        detail: str | None = None
        try:
            message = envelope.decode(text)
        except EnvelopeError:
            kind = Kind.MALFORMED
        else:
            kind = _TEXT_KINDS.get(message["type"], Kind.UNEXPECTED)
            if kind is Kind.RESUMABLE:
                with contextlib.suppress(EnvelopeError):
                    verifier = envelope.parse_verifier(message)
            elif kind is not Kind.UNEXPECTED:
                detail = _client_reason(message)
        event = Event(Input.of(kind, role), self._clock(), verifier=verifier, detail=detail)
        self._perform_now(live, live.rendezvous.handle(event))
        return not live.finished and live.ends.get(role) is end

    def _leave(self, live: LiveSession, end: Endpoint, reason: str, dropped: bool = False) -> None:
        """This end's connection is over: the rendezvous ends the session, suspends it
        (a resumable end that dropped) or frees the role (a waiting session)."""
        if live.finished or live.ends.get(end.role) is not end:
            return
        kind = Kind.DROPPED if dropped else Kind.LEFT
        self._dispatch(live, Event(Input.of(kind, end.role), self._clock(), reason=reason))

    # ------------------------------------------------------------------
    # Performing the rendezvous' actions
    # ------------------------------------------------------------------

    def _feed(self, live: LiveSession, input_: Input) -> list[Action]:
        return live.rendezvous.handle(Event(input_, self._clock()))

    def _dispatch(self, live: LiveSession, event: Event) -> None:
        """Feed ``event`` to the session's rendezvous and perform what it says now."""
        self._perform_now(live, live.rendezvous.handle(event))

    def _perform_now(self, live: LiveSession, actions: Sequence[Action]) -> None:
        """Perform ``actions``; their messages go out from tasks of their own."""
        for connection, text in self._perform(live, actions):
            self._spawn(send_quietly(connection, text))

    def _perform(
        self,
        live: LiveSession,
        actions: Sequence[Action],
        connection: RelayConnection | None = None,
        ip: str = "",
    ) -> list[_Message]:
        """Perform ``actions`` but the sends, which are returned in order.

        ``connection`` and ``ip``: the connection that claimed or resumed (Attach).
        """
        sends: list[_Message] = []
        for action in actions:
            if isinstance(action, Send):
                end = live.ends.get(action.role)
                if end is not None:
                    sends.append((end.connection, action.text))
            elif isinstance(action, Attach):
                assert connection is not None
                stale = live.ends.get(action.role) if action.replacing else None
                endpoint = live.ends[action.role] = Endpoint(connection, action.role, ip)
                if live.rendezvous.paired:
                    # A resumed connection's binary takes the direct path at once.
                    connection.forward_binary = self._direct_path(live, endpoint)
                if stale is not None:
                    stale.connection.forward_binary = None
                    self._farewell(stale.connection, None)
            elif isinstance(action, Detach):
                live.ends.pop(action.role, None)
            elif isinstance(action, Forget):
                self._live.pop(live.record.id, None)
                if not self._live:
                    self._idle.set()
            elif isinstance(action, Pair):
                sends += self._pair(live, action.at)
            elif isinstance(action, Suspended):
                logger.info(
                    "session suspended session=%s role=%s grace=%d",
                    live.record.id,
                    action.role,
                    action.grace_left,
                )
            elif isinstance(action, Refused):
                logger.info(
                    "end refused session=%s role=%s why=%s", live.record.id, action.role, action.why
                )
                end = live.ends.get(action.role)
                if end is not None:
                    self._farewell(end.connection, action.text)
            elif isinstance(action, Reissue):
                self._reissue(live, action.role)
            elif isinstance(action, Finish):
                self._finish(live, action.state, action.reason, action.notices, action.detail)
            else:  # RefuseClaim, RefuseResume, Forward: answered by their callers
                raise AssertionError(f"{action} is not performed here")
        return sends

    def _reissue(self, live: LiveSession, role: Role) -> None:
        """Someone else claimed this code: a new session for the same ticket, whose
        code goes to ``role``'s end as its last message (the old one is burnt next)."""
        end = live.ends.get(role)
        technician = end.connection.technician if end is not None else None
        if end is None or technician is None:
            return
        old = live.record
        now = self._clock()
        record = self.store.create_session(
            technician, old.ticket_id, old.ticket_url, now, self.config.nameplate_ttl
        )
        self.outbox.session_created(record)
        logger.info(
            "code reissued session=%s nameplate=%s new_session=%s new_nameplate=%s",
            old.id,
            old.nameplate,
            record.id,
            record.nameplate,
        )
        expires_in = max(0, int(record.expires_at - now))
        link = join_url(self.base_url, record.id)
        self._farewell(
            end.connection, envelope.reissued(record.nameplate, record.id, expires_in, link)
        )

    def _finish(
        self,
        live: LiveSession,
        state: SessionState | None,
        reason: str,
        notices: Mapping[Role, str],
        detail: str | None = None,
    ) -> None:
        """End a live session once: record it, send each end its notice, close every end.

        ``state`` None leaves the stored session as it is (a waiting session on shutdown).
        ``detail`` (an end's own words) is stored after the reason but never logged.
        """
        if live.finished:
            return
        live.finished = True
        for end in live.ends.values():
            end.connection.forward_binary = None
        self._live.pop(live.record.id, None)
        if not self._live:
            self._idle.set()
        record = live.record
        a2t, t2a = live.sent[Role.AGENT], live.sent[Role.TECHNICIAN]
        if state is SessionState.FAILED:
            self.metrics.pairings_failed.inc()
        if self._cluster is not None and live.rendezvous.paired:
            self._spawn(self._cluster.untrack(record.id))
        if state is not None:
            stored_reason = f"{reason}: {detail}" if detail else reason
            if self.store.finish_session(record.id, state, self._clock(), stored_reason, a2t, t2a):
                self.outbox.session_ended(record.id)
            elif a2t or t2a:
                # Already finished elsewhere (the API on another node): keep the counts.
                self.store.add_byte_counts(record.id, a2t, t2a)
        logger.info(
            "session finished session=%s nameplate=%s state=%s why=%s "
            "bytes_agent_to_tech=%d bytes_tech_to_agent=%d",
            record.id,
            record.nameplate,
            state or record.state,
            reason,
            a2t,
            t2a,
        )
        for role, end in live.ends.items():
            self._farewell(end.connection, notices.get(role))

    # ------------------------------------------------------------------
    # Timers and background tasks
    # ------------------------------------------------------------------

    async def _housekeeping_loop(self) -> None:
        """Every housekeeping_interval: expire waiting nameplates, end idle sessions."""
        while True:
            await asyncio.sleep(self.config.housekeeping_interval)
            try:
                self._housekeeping_tick(self._clock())
            except Exception:  # keep the timers alive whatever one tick met
                logger.exception("housekeeping failed")

    def _housekeeping_tick(self, now: float) -> None:
        for live in list(self._live.values()):
            self._dispatch(live, Event(Input.TIMER, now))
        if self.store.expire_sessions(now):
            # The store expires codes in bulk: record session.ended for those that just did.
            self.outbox.reconcile((EventType.SESSION_ENDED,))
        self._ip_limiter.prune(now)

    def _farewell(self, connection: RelayConnection, text: str | None) -> None:
        """Send ``text`` (if any) as the connection's last message and close it; once only."""
        if connection.farewell is None:
            connection.farewell = self._spawn(
                say_goodbye(connection, text, 2 * self.config.close_timeout)
            )

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _drain_tasks(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


#: A text message to send and the connection to send it on.
_Message = tuple[RelayConnection, str]

#: Text messages an end may send after its claim, by type (others: Kind.UNEXPECTED).
_TEXT_KINDS = {"resumable": Kind.RESUMABLE, "end": Kind.END, "burn": Kind.BURN}


def _client_reason(message: dict[str, Any]) -> str | None:
    """An end's own ``reason`` field, made inert and cut to 200 characters for the store."""
    reason = message.get("reason")
    if not isinstance(reason, str):
        return None
    return safe_text(reason, 200) or None
