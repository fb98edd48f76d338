"""The client half of the relay: the one asyncio adapter agents and technicians share.

It dials the relay, claims a nameplate through the envelope, then drives the pure
:class:`protocol.session.Session` over the paired link: it only feeds bytes in,
flushes bytes out and hands events to whoever waits for them.

Errors a caller can meet (each reads as a sentence that says what to do)::

    LinkError
     ├── RelayUnavailable     the relay could not be reached or dropped us
     ├── RelayRefused         the relay said no (wrong/expired code, token, rate limit)
     └── SessionLost          the session ended abnormally after pairing
          (protocol errors such as WrongCodeError / IntegrityError are the ``__cause__``)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections.abc import Mapping
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from protocol import envelope, messages
from protocol.code import SessionCode
from protocol.envelope import ErrorCode, Role
from protocol.errors import EnvelopeError, ProtocolError, WrongCodeError
from protocol.mux import Channel, MessageReceived
from protocol.pairing import SessionKeys
from protocol.session import Closed, Paired, Session

log = logging.getLogger("puente.link")

#: How long to wait for the relay to answer a claim.
CLAIM_TIMEOUT = 15.0


class LinkError(Exception):
    """Base class of errors of the link to the relay and the peer."""


class RelayUnavailable(LinkError):
    pass


class RelayRefused(LinkError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SessionLost(LinkError):
    pass


def check_relay_url(url: str) -> str:
    """Accept ``wss://`` anywhere and ``ws://`` only on loopback (no plaintext mode)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise LinkError(f"{url!r} is not a relay address; it looks like wss://relay.example.org")
    if parts.scheme == "ws" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise LinkError(
            f"{url} is not encrypted; use wss:// (plain ws:// is only for loopback tests)"
        )
    return url.rstrip("/")


def http_url(relay_url: str) -> str:
    """The REST base URL of a relay given by its WebSocket URL."""
    if relay_url.startswith("wss://"):
        return "https://" + relay_url[len("wss://") :]
    if relay_url.startswith("ws://"):
        return "http://" + relay_url[len("ws://") :]
    return relay_url


class Link:
    """A paired, end-to-end encrypted session with the other end.

    Make one with :meth:`Link.open`. Then ``send`` / ``receive`` messages per channel,
    and ``close`` when done. ``closed`` resolves to the reason once it is over.
    """

    # Public attributes ----------------------------------------------------------------

    role: Role
    sas: str
    #: The pairing's keys (``keys.transcript_hash`` is what technicians sign), once paired.
    keys: SessionKeys
    paired_info: dict[str, Any]

    def __init__(self, ws: ClientConnection, session: Session, paired_info: dict[str, Any]):
        self.role = session.role
        self.paired_info = paired_info
        self._ws = ws
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
        url = check_relay_url(relay_url) + envelope.WS_PATH
        headers: Mapping[str, str] = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            ws = await connect(
                url,
                additional_headers=headers,
                ssl=ssl if url.startswith("wss://") else None,
                compression=None,
                max_size=envelope.MAX_RECORD_SIZE + 4096,
                open_timeout=CLAIM_TIMEOUT,
            )
        except ssl_module.SSLCertVerificationError as exc:
            raise RelayUnavailable(
                f"The relay at {relay_url} presented a certificate this computer does not "
                f"trust ({exc.verify_message}); check the address or install its CA."
            ) from exc
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                raise RelayRefused(
                    str(ErrorCode.UNAUTHORIZED), envelope.ERROR_SENTENCES[ErrorCode.UNAUTHORIZED]
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
        link: Link | None = None
        try:
            paired = await cls._claim(ws, role, code, wait_timeout, on_waiting)
            ticket = ticket_id if ticket_id is not None else str(paired.get("ticket_id", ""))
            link = cls(ws, Session(role, code, ticket), paired)
            link._start()
            await link._wait_paired()
            return link
        except BaseException:
            if link is not None:
                await link._shutdown()
            await ws.close()
            raise

    @property
    def session_id(self) -> str:
        return str(self.paired_info.get("session_id", ""))

    async def send(self, channel: Channel, payload: bytes) -> None:
        """Queue a message for the peer; it leaves in priority order."""
        if self.closed.done():
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
            self._wakeup.set()
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
            await self._flush()
            if end_session:
                with contextlib.suppress(websockets.ConnectionClosed):
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
        code: SessionCode,
        wait_timeout: float | None,
        on_waiting: Any,
    ) -> dict[str, Any]:
        await ws.send(envelope.claim(role, code.nameplate))
        async with asyncio.timeout(wait_timeout):
            while True:
                try:
                    raw = await ws.recv()
                except websockets.ConnectionClosed as exc:
                    raise RelayUnavailable(
                        "The relay closed the connection before the session started; try again."
                    ) from exc
                try:
                    message = envelope.decode(raw)
                except EnvelopeError as exc:
                    raise RelayUnavailable(f"The relay sent something unexpected ({exc}).") from exc
                kind = message["type"]
                if kind == "waiting":
                    if on_waiting is not None:
                        on_waiting(message)
                elif kind == "paired":
                    return message
                elif kind == "error":
                    code_ = str(message.get("code", ""))
                    try:
                        sentence = envelope.ERROR_SENTENCES[ErrorCode(code_)]
                    except ValueError:
                        sentence = str(message.get("message", "The relay refused the session."))
                    raise RelayRefused(code_, sentence)
                else:
                    raise RelayUnavailable(f"The relay sent an unexpected {kind!r} message.")

    def _start(self) -> None:
        self._session.start()
        self._tasks = [
            asyncio.create_task(self._reader(), name="puente-link-reader"),
            asyncio.create_task(self._writer(), name="puente-link-writer"),
        ]
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

    async def _reader(self) -> None:
        try:
            async for raw in self._ws:
                if isinstance(raw, str):
                    await self._relay_message(raw)
                    if self.closed.done():
                        return
                    continue
                self._session.receive_data(raw)
                for event in self._session.events_received():
                    self._dispatch(event)
                self._wakeup.set()
                if self.closed.done():
                    return
            self._lost(SessionLost("The relay closed the connection; the session has ended."))
        except WrongCodeError as exc:
            with contextlib.suppress(websockets.ConnectionClosed):
                # Our own confirmation tag may still be queued: send it before the burn,
                # so the other side learns the code was wrong rather than that we left.
                await self._flush()
                await self._ws.send(
                    envelope.encode({"type": "burn", "reason": "key confirmation failed"})
                )
            self._lost(SessionLost(str(exc)), exc)
        except ProtocolError as exc:
            self._lost(SessionLost(str(exc)), exc)
        except websockets.ConnectionClosed:
            self._lost(SessionLost("The connection to the relay was lost; the session has ended."))
        finally:
            await self._ws.close()

    async def _relay_message(self, raw: str) -> None:
        try:
            message = envelope.decode(raw)
        except EnvelopeError:
            return
        kind = message.get("type")
        if kind == "peer_gone":
            reason = str(message.get("reason", ""))
            self._lost(
                SessionLost(f"The other side disconnected{': ' + reason if reason else ''}.")
            )
        elif kind == "error":
            code_ = str(message.get("code", ""))
            try:
                sentence = envelope.ERROR_SENTENCES[ErrorCode(code_)]
            except ValueError:
                sentence = str(message.get("message", "The relay ended the session."))
            self._lost(SessionLost(sentence))

    def _dispatch(self, event: Paired | MessageReceived | Closed) -> None:
        if isinstance(event, Paired):
            if not self._paired.done():
                self._paired.set_result(event)
        elif isinstance(event, MessageReceived):
            self._queues[event.channel].put_nowait(event.payload)
        elif isinstance(event, Closed):
            self._finish(event.reason or "the other side ended the session")

    async def _writer(self) -> None:
        try:
            while not self.closed.done():
                await self._wakeup.wait()
                self._wakeup.clear()
                await self._flush()
        except websockets.ConnectionClosed:
            self._lost(SessionLost("The connection to the relay was lost; the session has ended."))

    async def _flush(self) -> None:
        while (data := self._session.data_to_send()) is not None:
            await self._ws.send(data)
            self._sent.set()

    async def _fail(self, exc: ProtocolError) -> None:
        self._lost(SessionLost(str(exc)), exc)
        await self._shutdown()

    def _finish(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        self._end_queues()
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
