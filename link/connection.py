"""The client half of the relay: the one asyncio adapter agents and technicians share.

It dials the relay, claims a nameplate through the envelope, then drives the pure
:class:`protocol.session.Session` over the paired link: it only feeds bytes in,
flushes bytes out and hands events to whoever waits for them.

If the connection to the relay drops after pairing, the link reconnects on its own
with jittered exponential backoff and resumes the same session (fresh keys from the
resume secret, unacknowledged frames resent; see :mod:`protocol.resume`), for as long
as the relay keeps the session (its *resume grace*, 60 s by default, announced in
``paired``). Callers see nothing but a pause, and :attr:`Link.on_link_state`
callbacks (``reconnecting``, ``peer_reconnecting``, ``resumed``) if they want to show
it. After the grace period the session ends with :class:`SessionLost` saying why.

Errors a caller can meet are drawn in :mod:`link.errors`; the relay's address and TLS
helpers are in :mod:`link.relay_address`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl as ssl_module
import time
from collections.abc import Callable, Mapping
from typing import Any

import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidState

from protocol import envelope, messages
from protocol.cert_pairing import (
    AgentHandshake,
    DeviceExpectation,
    Rendezvous,
    TechnicianHandshake,
    TechnicianPolicy,
    TechnicianProof,
)
from protocol.code import SessionCode
from protocol.envelope import Role
from protocol.errors import (
    ERROR_SENTENCES,
    DeviceRefused,
    EnvelopeError,
    ErrorCode,
    HandshakeAltered,
    ProtocolError,
    TechnicianRefused,
    WrongCodeError,
)
from protocol.identity import Certificate
from protocol.mux import Channel, MessageReceived
from protocol.pairing import SessionKeys
from protocol.resume import resume_verifier
from protocol.session import Closed, Paired, Resumed, Session

# The link raises these; named here too for callers that import them from this module.
from .errors import CodeReissued as CodeReissued
from .errors import LinkError as LinkError
from .errors import RelayRefused as RelayRefused
from .errors import RelayUnavailable as RelayUnavailable
from .errors import SessionLost as SessionLost

# The link checks the address with these; all four are named here too for callers that
# import them from this module (agent/cli.py, agent/trust.py, installers/build.py).
from .relay_address import check_relay_url as check_relay_url
from .relay_address import client_ssl_context as client_ssl_context
from .relay_address import http_url as http_url
from .relay_address import untrusted_certificate as untrusted_certificate

log = logging.getLogger("puente.link")

#: How long to wait for the relay to answer a claim.
CLAIM_TIMEOUT = 15.0

#: Keepalive: a ping every PING_INTERVAL seconds; no pong within PING_TIMEOUT means
#: the link is dead (a silently dropped network), which starts a resume.
PING_INTERVAL = 10.0
PING_TIMEOUT = 15.0

#: Reconnect backoff: the n-th wait is drawn from [d/2, d] with d = min(CAP, BASE * 2**n).
BACKOFF_BASE = 0.5
BACKOFF_CAP = 4.0

#: How long past the relay's grace period an end keeps trying before it gives up.
GIVE_UP_MARGIN = 5.0

LinkStateCallback = Callable[[str], None]


def backoff_delay(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0 = the first, at once).

    Jittered so that many agents cut off by one outage do not all return at once.
    """
    if attempt <= 0:
        return 0.0
    ceiling: float = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (attempt - 1))
    return ceiling / 2 + rng() * ceiling / 2


class Link:
    """A paired, end-to-end encrypted session with the other end.

    Make one with :meth:`Link.open`. Then ``send`` / ``receive`` messages per channel,
    and ``close`` when done. ``closed`` resolves to the reason once it is over. A
    dropped connection to the relay is resumed transparently (see the module doc).
    """

    # Public attributes ----------------------------------------------------------------

    role: Role
    sas: str
    #: The pairing's keys (``keys.transcript_hash`` is what technicians sign), once paired.
    keys: SessionKeys
    paired_info: dict[str, Any]
    #: Called with "reconnecting", "peer_reconnecting" or "resumed" (in the loop thread).
    on_link_state: list[LinkStateCallback]

    def __init__(
        self,
        ws: ClientConnection,
        session: Session,
        paired_info: dict[str, Any],
        dial: Callable[[], Any],
    ):
        self.role = session.role
        self.paired_info = paired_info
        self.on_link_state = []
        self._ws = ws
        self._dial = dial
        self._session = session
        self._wakeup = asyncio.Event()
        self._sent = asyncio.Event()  # set each time records leave (see wait_sent)
        self._queues: dict[Channel, asyncio.Queue[bytes | None]] = {
            ch: asyncio.Queue() for ch in Channel
        }
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[str] = loop.create_future()
        self._paired: asyncio.Future[Paired] = loop.create_future()
        self._tasks: list[asyncio.Task[None]] = []
        self._resume_grace = float(paired_info.get("resume_grace") or 0)
        self._announce_resumable = False
        self._resumes = 0

    # Public methods ----------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        relay_url: str,
        role: Role,
        code: SessionCode,
        *,
        ticket_id: str | None = None,
        token: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        wait_timeout: float | None = None,
        on_waiting: Any = None,
    ) -> Link:
        """Connect, claim ``code.nameplate``, wait for the peer, pair. Returns when paired.

        The technician passes its ``ticket_id``; the agent learns it from the relay and
        binds it into the PAKE, so a relay that lies about the ticket breaks pairing.
        ``wait_timeout`` bounds the wait for the other end (``TimeoutError``).
        """

        async def dial() -> ClientConnection:
            return await _connect(relay_url, token, ssl)

        def session(paired: dict[str, Any]) -> Session:
            ticket = ticket_id if ticket_id is not None else str(paired.get("ticket_id", ""))
            return Session(role, code, ticket)

        return await cls._open(dial, role, code.nameplate, session, wait_timeout, on_waiting)

    @classmethod
    async def open_certified(
        cls,
        relay_url: str,
        nameplate: str,
        *,
        technician_policy: TechnicianPolicy | None = None,
        device_key: Ed25519PrivateKey | None = None,
        proof: TechnicianProof | None = None,
        expect: DeviceExpectation | None = None,
        ticket_id: str | None = None,
        token: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        wait_timeout: float | None = None,
        on_waiting: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> Link:
        """Claim ``nameplate`` (no secret) and pair without a code (code-less pairing).

        The agent passes ``technician_policy`` (its pinned organisation key, revocations,
        a required role) and, on an enrolled device, ``device_key``; the technician
        passes ``proof`` (certificate and key), its ``token`` and ``ticket_id``, and
        ``expect`` to require a device. The pairing is SIGMA-I
        (:mod:`protocol.cert_pairing`); afterwards the link is the same as with a code.
        A refused pairing raises :class:`SessionLost` with the reason, on both ends.
        """
        if (technician_policy is None) == (proof is None):
            raise ValueError("pass technician_policy (agent) or proof (technician), not both")
        role = Role.AGENT if technician_policy is not None else Role.TECHNICIAN

        async def dial() -> ClientConnection:
            return await _connect(relay_url, token, ssl)

        def session(paired: dict[str, Any]) -> Session:
            ticket = ticket_id if ticket_id is not None else str(paired.get("ticket_id", ""))
            place = Rendezvous(nameplate, ticket)
            if technician_policy is not None:
                now = int(clock())
                return Session.certified(AgentHandshake(place, technician_policy, now, device_key))
            assert proof is not None
            return Session.certified(TechnicianHandshake(place, proof, expect))

        return await cls._open(dial, role, nameplate, session, wait_timeout, on_waiting)

    @classmethod
    async def _open(
        cls,
        dial: Callable[[], Any],
        role: Role,
        nameplate: str,
        make_session: Callable[[dict[str, Any]], Session],
        wait_timeout: float | None,
        on_waiting: Any,
    ) -> Link:
        ws = await dial()
        link: Link | None = None
        try:
            paired = await cls._claim(ws, role, nameplate, wait_timeout, on_waiting)
            link = cls(ws, make_session(paired), paired, dial)
            link._start()
            await link._wait_paired()
            return link
        except BaseException:
            if link is not None:
                await link._shutdown()
            await ws.close()
            raise

    @property
    def technician_certificate(self) -> Certificate | None:
        """The technician's certificate verified by a code-less pairing (agent side)."""
        handshake = self._session.handshake
        return handshake.technician if isinstance(handshake, AgentHandshake) else None

    @property
    def device_key(self) -> bytes | None:
        """The agent's device key proven in a code-less pairing (technician side)."""
        handshake = self._session.handshake
        return handshake.device_key if isinstance(handshake, TechnicianHandshake) else None

    @property
    def code_less(self) -> bool:
        """True if this session paired without a code (certificate, SIGMA-I)."""
        return self._session.handshake is not None

    @property
    def session_id(self) -> str:
        return str(self.paired_info.get("session_id", ""))

    @property
    def resume_grace(self) -> float:
        """Seconds the relay keeps the session for a dropped end (0: no resume)."""
        return self._resume_grace

    @property
    def resumes(self) -> int:
        """How many times the link was resumed after a drop."""
        return self._resumes

    async def send(self, channel: Channel, payload: bytes) -> None:
        """Queue a message for the peer; it leaves in priority order (after a resume)."""
        if self.closed.done():
            error = self.closed.exception()
            if isinstance(error, SessionLost):
                raise error  # why it was lost, with its cause
            raise SessionLost(f"The session is over: {self.closed.result()}")
        self._session.send(channel, payload)
        self._wakeup.set()

    def pending(self, channel: Channel) -> int:
        """Fragments queued on ``channel`` that have not left yet (no credit or slow socket)."""
        return self._session.pending(channel)

    async def wait_sent(self, channel: Channel, at_most: int) -> None:
        """Wait until at most ``at_most`` fragments of ``channel`` are still queued.

        Streaming writers (the SSH tunnel) use this for backpressure, so a fast local
        producer cannot queue more than the peer's credit lets through. Returns at once
        when the session is over.
        """
        while self._session.pending(channel) > at_most and not self.closed.done():
            self._sent.clear()
            await self._sent.wait()

    def discard(self, channel: Channel) -> int:
        """Drop every message queued on ``channel`` and not yet sent; return how many.

        Used when consent is withdrawn: frames already queued must not leave. A message
        caught half-sent is cut off, and the peer is told to drop its first part.
        """
        return self._session.discard(channel)

    async def send_control(self, message: messages.Message) -> None:
        await self.send(Channel.CONTROL, message.serialize())

    async def receive(self, channel: Channel) -> bytes | None:
        """The next message on ``channel``, or None once the session is over."""
        payload = await self._queues[channel].get()
        if payload is not None:
            self._session.consumed(channel, len(payload))
            # Credit leaves now, not when the writer task next runs: a reader with more
            # messages queued keeps the loop busy, and the peer would stall meanwhile.
            with contextlib.suppress(websockets.ConnectionClosed):
                if self._send_ready(self._ws):
                    self._wakeup.set()  # the socket is full: the writer waits for it
        return payload

    async def receive_control(self) -> messages.Message | None:
        payload = await self.receive(Channel.CONTROL)
        if payload is None:
            return None
        try:
            return messages.parse(payload)
        except ProtocolError as exc:
            await self._fail(exc)
            return None

    async def close(self, reason: str = "finished", *, end_session: bool = True) -> None:
        """End the session: an authenticated CLOSE to the peer, then tell the relay."""
        if not self.closed.done():
            self._session.close(reason)
            with contextlib.suppress(websockets.ConnectionClosed):
                await self._flush(self._ws)
                if end_session:
                    await self._ws.send(envelope.encode({"type": "end", "reason": reason[:200]}))
            self._finish(reason)
        await self._shutdown()

    async def wait_closed(self) -> str:
        """Wait until the session is over; return why (raises SessionLost if abnormal)."""
        return await asyncio.shield(self.closed)

    # Private methods ---------------------------------------------------------------

    @staticmethod
    async def _claim(
        ws: ClientConnection,
        role: Role,
        nameplate: str,
        wait_timeout: float | None,
        on_waiting: Any,
    ) -> dict[str, Any]:
        await ws.send(envelope.claim(role, nameplate))
        async with asyncio.timeout(wait_timeout):
            while True:
                message = await _next_envelope(
                    ws, "The relay closed the connection before the session started; try again."
                )
                kind = message["type"]
                if kind == "waiting":
                    if on_waiting is not None:
                        on_waiting(message)
                elif kind == "paired":
                    return message
                elif kind == "reissued":  # someone else claimed the code (technicians only)
                    raise _reissued(message)
                elif kind == "error":
                    raise _refusal(message)
                else:
                    raise RelayUnavailable(f"The relay sent an unexpected {kind!r} message.")

    def _start(self) -> None:
        self._session.start()
        self._tasks = [asyncio.create_task(self._supervise(), name="puente-link")]
        self._wakeup.set()

    async def _wait_paired(self) -> None:
        waiters: list[asyncio.Future[Any]] = [self._paired, self.closed]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if self._paired.done():
            self.keys = self._paired.result().keys
            self.sas = self.keys.sas
            return
        self.closed.result()  # raises the reason pairing failed
        raise SessionLost("The other side left before the session could start.")

    async def _supervise(self) -> None:
        """Serve the current connection; when it drops, resume on a new one if allowed."""
        try:
            while not self.closed.done():
                lost = await self._serve(self._ws)
                if self.closed.done():
                    return
                if lost.kind == "bug" or not (self._session.resumable and self._resume_grace > 0):
                    self._lost(lost, lost.__cause__)
                    return
                log.info("link to the relay lost (%s); resuming", lost)
                self._session.suspend()
                self._notify("reconnecting")
                if not await self._reconnect():
                    return
        finally:
            await self._ws.close()

    async def _serve(self, ws: ClientConnection) -> SessionLost:
        """Run reader and writer on ``ws`` until it fails or the session is over."""
        reader = asyncio.create_task(self._reader(ws))
        writer = asyncio.create_task(self._writer(ws))
        try:
            done, _ = await asyncio.wait([reader, writer], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
        for task in done:
            error = None if task.cancelled() else task.exception()
            if isinstance(error, SessionLost):
                return error
            if error is not None:
                # A bug here must not pass for a network problem (and loop on resumes).
                log.error("the link failed", exc_info=error)
                failed = SessionLost(f"The link failed ({type(error).__name__}: {error}).", "bug")
                failed.__cause__ = error
                return failed
        return SessionLost("The connection to the relay was lost; the session has ended.")

    async def _reader(self, ws: ClientConnection) -> None:
        """Feed what arrives to the session; raise SessionLost when the connection drops."""
        try:
            async for raw in ws:
                if isinstance(raw, str):
                    await self._relay_message(raw)
                else:
                    self._session.receive_data(raw)
                    for event in self._session.events_received():
                        self._dispatch(event)
                    if self._announce_resumable:
                        # Let the relay hold the session for us if the link drops.
                        self._announce_resumable = False
                        verifier = resume_verifier(self._session.resume_id)
                        await ws.send(envelope.encode({"type": "resumable", "verifier": verifier}))
                self._wakeup.set()
                if self.closed.done():
                    return
            raise SessionLost("The relay closed the connection; the session has ended.")
        except (WrongCodeError, HandshakeAltered, TechnicianRefused, DeviceRefused) as exc:
            with contextlib.suppress(websockets.ConnectionClosed):
                # Our own confirmation tag may still be queued: send it before the burn,
                # so the other side learns the code was wrong rather than that we left.
                await self._flush(ws)
                reason = (
                    "key confirmation failed"
                    if isinstance(exc, WrongCodeError)
                    else "code-less pairing refused"
                )
                await ws.send(envelope.encode({"type": "burn", "reason": reason}))
            self._lost(SessionLost(str(exc)), exc)
        except ProtocolError as exc:
            self._lost(SessionLost(str(exc)), exc)
        except websockets.ConnectionClosed as exc:
            raise SessionLost(
                "The connection to the relay was lost; the session has ended."
            ) from exc

    async def _writer(self, ws: ClientConnection) -> None:
        try:
            while not self.closed.done():
                await self._wakeup.wait()
                self._wakeup.clear()
                await self._flush(ws)
        except websockets.ConnectionClosed as exc:
            raise SessionLost(
                "The connection to the relay was lost; the session has ended."
            ) from exc

    async def _flush(self, ws: ClientConnection) -> None:
        """Send every record the session has ready, waiting whenever the socket is full."""
        while self._send_ready(ws):
            await ws.drain()

    def _send_ready(self, ws: ClientConnection) -> bool:
        """Hand ``ws`` the records the session has ready, without waiting for anything.

        Returns True if some remain because the socket's send buffer is full. Records go
        to the connection's protocol as the relay forwards them (``relay.http.send_now``):
        ``ws.send`` would add a coroutine and a context manager per record.
        """
        while not ws.paused:
            data = self._session.data_to_send()
            if data is None:
                return False
            try:
                ws.protocol.send_binary(data)
            except InvalidState as exc:  # closing: say so as ws.send would
                raise websockets.ConnectionClosed(
                    ws.protocol.close_rcvd, ws.protocol.close_sent
                ) from exc
            ws.send_data()
            self._sent.set()
        return True

    async def _relay_message(self, raw: str) -> None:
        try:
            message = envelope.decode(raw)
        except EnvelopeError:
            return
        kind = message.get("type")
        if kind == "peer_gone":
            reason = str(message.get("reason", ""))
            if self._session.handshake is not None and not self._paired.done():
                self._lost(SessionLost(_CODE_LESS_REFUSED, "peer_gone"))
                return
            self._lost(
                SessionLost(
                    f"The other side disconnected{': ' + reason if reason else ''}.",
                    "peer_timeout" if "reconnect" in reason else "peer_gone",
                )
            )
        elif kind == "peer_suspended":
            # The other end lost its connection; hold everything until it is back.
            if self._session.resumable:
                self._session.suspend()
                self._notify("peer_reconnecting")
        elif kind == "resumed":
            if self._session.resumable:
                self._session.start_resume()
        elif kind == "error":
            refusal = _refusal(message)
            self._lost(SessionLost(str(refusal), "relay", refusal.code))

    def _dispatch(self, event: Paired | Resumed | MessageReceived | Closed) -> None:
        if isinstance(event, Paired):
            if not self._paired.done():
                self._paired.set_result(event)
            self._announce_resumable = self._resume_grace > 0
        elif isinstance(event, Resumed):
            self._resumes += 1
            log.info("session resumed; %d frames sent again", event.resent)
            self._notify("resumed")
        elif isinstance(event, MessageReceived):
            self._queues[event.channel].put_nowait(event.payload)
        elif isinstance(event, Closed):
            self._finish(event.reason or "the other side ended the session")

    async def _reconnect(self) -> bool:
        """Dial the relay again until it lets us back into the session, or time runs out.

        Returns True with ``self._ws`` replaced and our RESUME queued; False once the
        session is over (``closed`` then says why).
        """
        loop = asyncio.get_running_loop()
        grace = self._resume_grace
        deadline = loop.time() + grace + GIVE_UP_MARGIN
        claim = envelope.encode(
            {
                "type": "resume",
                "version": envelope.ENVELOPE_VERSION,
                "role": str(self.role),
                "session_id": self.session_id,
                "resume_id": self._session.resume_id.hex(),
            }
        )
        attempt = 0
        while not self.closed.done():
            wait = min(backoff_delay(attempt), max(0.0, deadline - loop.time()))
            attempt += 1
            await asyncio.sleep(wait)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    ws = await self._dial()
                    try:
                        await ws.send(claim)
                        while True:
                            message = await _next_envelope(ws, "")
                            if message["type"] == "resumed":
                                break
                            if message["type"] == "error":
                                raise _refusal(message)
                    except BaseException:
                        await ws.close()
                        raise
            except RelayRefused as exc:
                log.info("the relay refused to resume the session: %s", exc)
                self._lost(
                    SessionLost(
                        "The connection was lost for too long and the relay closed the session "
                        f"({exc}). Start a new session if you still need help.",
                        "resume_timeout",
                    )
                )
                return False
            except (LinkError, TimeoutError, OSError, websockets.WebSocketException) as exc:
                log.info("reconnect attempt %d failed: %s", attempt, exc)
                continue
            self._ws = ws
            self._session.start_resume()
            self._wakeup.set()
            return True
        self._lost(
            SessionLost(
                f"The connection to the relay was lost for more than {grace:g} seconds; the "
                "session has ended. Start a new session if you still need help.",
                "resume_timeout",
            )
        )
        return False

    def _notify(self, state: str) -> None:
        for callback in list(self.on_link_state):
            try:
                callback(state)
            except Exception:  # a display hook must never break the link
                log.exception("link state callback failed")

    async def _fail(self, exc: ProtocolError) -> None:
        self._lost(SessionLost(str(exc)), exc)
        await self._shutdown()

    def _finish(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        self._end_queues()
        self._wakeup.set()
        self._sent.set()

    def _lost(self, error: SessionLost, cause: BaseException | None = None) -> None:
        if cause is not None:
            error.__cause__ = cause
        if not self.closed.done():
            self.closed.set_exception(error)
            # Mark retrieved so an unobserved failure does not warn at shutdown.
            self.closed.exception()
        self._end_queues()
        self._wakeup.set()
        self._sent.set()

    def _end_queues(self) -> None:
        for queue in self._queues.values():
            queue.put_nowait(None)

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current and not task.done():
                task.cancel()
        for task in self._tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._ws.close()


async def _connect(
    relay_url: str, token: str | None, ssl: ssl_module.SSLContext | None
) -> ClientConnection:
    """Open a WebSocket to the relay, turning every failure into a sentence."""
    url = check_relay_url(relay_url) + envelope.WS_PATH
    headers: Mapping[str, str] = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return await connect(
            url,
            additional_headers=headers,
            # wss:// without a context trusts the system's certificate authorities.
            ssl=(ssl or ssl_module.create_default_context()) if url.startswith("wss://") else None,
            compression=None,
            max_size=envelope.MAX_RECORD_SIZE + 4096,
            open_timeout=CLAIM_TIMEOUT,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
        )
    except ssl_module.SSLCertVerificationError as exc:
        raise RelayUnavailable(untrusted_certificate(relay_url, exc)) from exc
    except websockets.InvalidStatus as exc:
        status = exc.response.status_code
        if status == 401:
            raise RelayRefused(
                str(ErrorCode.UNAUTHORIZED), ERROR_SENTENCES[ErrorCode.UNAUTHORIZED]
            ) from exc
        raise RelayUnavailable(
            f"The relay at {relay_url} refused the connection (HTTP {status}); "
            "check the address and try again."
        ) from exc
    except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
        raise RelayUnavailable(
            f"Could not reach the relay at {relay_url} ({exc.__class__.__name__}: {exc}); "
            "check the address and your network connection, then try again."
        ) from exc


async def _next_envelope(ws: ClientConnection, closed_sentence: str) -> dict[str, Any]:
    """The next text message from the relay, decoded (binary is not expected here)."""
    try:
        raw = await ws.recv()
    except websockets.ConnectionClosed as exc:
        raise RelayUnavailable(
            closed_sentence or "The relay closed the connection; try again."
        ) from exc
    try:
        return envelope.decode(raw)
    except EnvelopeError as exc:
        raise RelayUnavailable(f"The relay sent something unexpected ({exc}).") from exc


#: What an end is told when the other end left during a code-less pairing.
_CODE_LESS_REFUSED = (
    "The other side ended the pairing before it completed: it refused this side's "
    "certificate or device proof, or someone between the two altered the key exchange. "
    "The session was not opened; check the other side's message and start again."
)


def _reissued(message: dict[str, Any]) -> LinkError:
    """The relay's new code for the same ticket, or why its message is unusable."""
    try:
        return CodeReissued(*envelope.parse_reissued(message))
    except EnvelopeError as exc:
        return RelayUnavailable(f"The relay sent something unexpected ({exc}).")


def _refusal(message: dict[str, Any]) -> RelayRefused:
    code_ = str(message.get("code", ""))
    try:
        sentence = ERROR_SENTENCES[ErrorCode(code_)]
    except ValueError:
        sentence = str(message.get("message", "The relay refused the session."))
    return RelayRefused(code_, sentence)
