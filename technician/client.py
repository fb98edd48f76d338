"""The technician's client library: the relay's REST API and a paired session.

``RelayAPI`` creates and ends sessions for tickets over REST. ``TechnicianSession``
is the paired, end-to-end encrypted session: ``request()`` asks the agent for a
capability and returns the agent's reply, whose status says whether the customer
declined, revoked, or the work was done.

Ending: ``end()`` says ``Bye``, waits up to ``rating_wait`` seconds for the customer's
``Rating`` (the agent asks them), then closes. The session keeps a journal
(:mod:`technician.journal`) from which the summary is built and uploaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl as ssl_module
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from link.connection import Link
from link.errors import LinkError, RelayRefused, RelayUnavailable, SessionLost
from link.relay_address import http_url, untrusted_certificate
from protocol import messages
from protocol.cert_pairing import DeviceExpectation, TechnicianProof
from protocol.code import SessionCode
from protocol.envelope import Role
from protocol.errors import VersionMismatch
from protocol.messages import ConsentState, ReplyStatus
from protocol.pairing import PROTOCOL_VERSION

from . import __version__
from .credentials import TechnicianCredentials
from .errors import RelayApiError
from .journal import SessionJournal

#: Seconds ``end()`` waits for the customer's rating by default.
RATING_WAIT = 60.0
#: Seconds the agent has to introduce itself once paired.
HELLO_WAIT = 30.0


class RelayAPI:
    """Blocking REST client (call it from a thread inside asyncio code)."""

    def __init__(
        self, relay_url: str, token: str, ssl: ssl_module.SSLContext | None = None
    ) -> None:
        self.relay_url = relay_url.rstrip("/")
        self.base = http_url(self.relay_url)
        self._token = token
        self._ssl = ssl

    @property
    def token(self) -> str:
        """The API token (the WebSocket claim of a session carries it too)."""
        return self._token

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=20, context=self._ssl) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read())
            except ValueError:
                detail = {}
            code = str(detail.get("error", exc.code))
            message = str(detail.get("message", exc.reason))
            if exc.code == 401:
                message = "The relay did not accept your API token; check --token or PUENTE_TOKEN."
            raise RelayApiError(exc.code, code, message) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl_module.SSLCertVerificationError):
                raise RelayUnavailable(untrusted_certificate(self.relay_url, reason)) from None
            raise RelayUnavailable(
                f"Could not reach the relay at {self.relay_url} ({reason}); "
                "check the address and that the relay is running."
            ) from None

    def create_session(self, ticket_id: str, ticket_url: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"ticket_id": ticket_id}
        if ticket_url:
            body["ticket_url"] = ticket_url
        result: dict[str, Any] = self._call("POST", "/api/sessions", body)
        return result

    def list_devices(self) -> list[dict[str, Any]]:
        """Enrolled devices: online or not, open alerts."""
        result = self._call("GET", "/api/devices")
        return list(result.get("devices", [])) if isinstance(result, dict) else []

    def device(self, device_id: str) -> dict[str, Any]:
        """One enrolled device with its checks' sealed details."""
        result = self._call("GET", "/api/devices/" + urllib.parse.quote(device_id, safe=""))
        return dict(result) if isinstance(result, dict) else {}

    def ask_device(self, device_id: str, session_id: str) -> dict[str, Any]:
        """Ask an enrolled device to join ``session_id`` unattended (relay.unattended)."""
        result: dict[str, Any] = self._call(
            "POST", f"/api/devices/{device_id}/connect", {"session_id": session_id}
        )
        return result

    def list_sessions(self, ticket_id: str | None = None) -> list[dict[str, Any]]:
        query = "?" + urllib.parse.urlencode({"ticket_id": ticket_id}) if ticket_id else ""
        result = self._call("GET", "/api/sessions" + query)
        return list(result.get("sessions", result) if isinstance(result, dict) else result)

    def get_session(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "GET", f"/api/sessions/{urllib.parse.quote(session_id)}"
        )
        return result

    def publish_revocations(self, document: bytes) -> dict[str, Any]:
        """Upload an organisation's signed revocation list (``org revoke`` wrote it)."""
        try:
            body = json.loads(document)
        except ValueError:
            raise RelayApiError(
                400, "bad_request", "The revocation list file is not JSON."
            ) from None
        result: dict[str, Any] = self._call("POST", "/api/revocations", body)
        return result

    # the help queue (relay.help_api)

    def queue(self) -> dict[str, Any]:
        """Your routing profile and the requests waiting in the queue."""
        result: dict[str, Any] = self._call("GET", "/api/queue")
        return result

    def set_availability(self, availability: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "PUT", "/api/availability", {"availability": availability}
        )
        return result

    def queue_action(
        self, request_id: str, action: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """``accept``, ``decline`` or ``transfer`` a help request."""
        path = f"/api/queue/{urllib.parse.quote(request_id)}/{action}"
        result: dict[str, Any] = self._call("POST", path, body or {})
        return result

    # past cases (relay.self_help)

    def outcomes(self) -> dict[str, Any]:
        """The organisation's past cases: ``{"problems": ..., "categories": ...}``."""
        result: dict[str, Any] = self._call("GET", "/api/outcomes")
        return result

    def report_outcome(
        self,
        session_id: str,
        problems: list[str],
        fix_id: str,
        version: str,
        exit_status: int | None,
    ) -> dict[str, Any]:
        """Record a fix run of one of your sessions, for the problems it was run for."""
        body = {
            "session_id": session_id,
            "problems": problems,
            "fix": fix_id,
            "version": version,
            "exit_status": exit_status,
        }
        result: dict[str, Any] = self._call("POST", "/api/outcomes", body)
        return result

    def recheck_outcomes(self, session_id: str, present: list[str]) -> dict[str, Any]:
        """A later triage in the session still finds ``present``: its runs did not solve."""
        body = {"session_id": session_id, "present": present}
        result: dict[str, Any] = self._call("POST", "/api/outcomes/recheck", body)
        return result

    def end_session(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "DELETE", f"/api/sessions/{urllib.parse.quote(session_id)}"
        )
        return result

    def put_summary(self, session_id: str, summary: dict[str, Any]) -> dict[str, Any]:
        """Upload a session's summary (safe to repeat with the same summary)."""
        result: dict[str, Any] = self._call(
            "PUT", f"/api/sessions/{urllib.parse.quote(session_id)}/summary", summary
        )
        return result


async def send_summary(api: RelayAPI, session_id: str, summary: dict[str, Any]) -> str | None:
    """Upload a session's summary, retrying briefly; None once stored, else the problem.

    A refusal (4xx) is not retried: the same summary would be refused again.
    """
    problem = ""
    for attempt in range(3):
        try:
            await asyncio.to_thread(api.put_summary, session_id, summary)
            return None
        except RelayApiError as exc:
            problem = str(exc)
            if exc.status < 500:
                break
        except LinkError as exc:
            problem = str(exc)
        if attempt < 2:
            await asyncio.sleep(2**attempt)
    return problem


@dataclass
class ConsentEvent:
    capability: str
    state: str
    message: str
    at: float = 0.0  # wall-clock seconds when the technician's client heard of it


class TechnicianSession:
    """A paired session seen from the technician's side."""

    def __init__(
        self,
        link: Link,
        agent_hello: messages.Hello,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.link = link
        self.agent_hello = agent_hello
        self.clock = clock
        self.started_at = clock()
        self.ended_at: float | None = None
        #: "technician", "customer" or "connection" once the session is over.
        self.ended_by: str | None = None
        self.end_reason: str | None = None
        #: The customer's ``(score, comment)``, once they rated (None if skipped).
        self.rating: tuple[int, str] | None = None
        self.rating_wait = RATING_WAIT
        self.journal = SessionJournal()
        self._rating_heard: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.consent: dict[str, str] = {}
        self.consent_log: list[ConsentEvent] = []
        self.on_consent: Callable[[ConsentEvent], None] | None = None
        self.on_chat: Callable[[str], None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[messages.Reply]] = {}
        self._progress: dict[int, Callable[[dict[str, Any]], None]] = {}
        self._reader = asyncio.create_task(self._read())

    @property
    def sas(self) -> str:
        return self.link.sas

    @classmethod
    async def connect(
        cls,
        relay_url: str,
        code: SessionCode,
        ticket_id: str,
        *,
        token: str,
        technician_name: str,
        ssl: ssl_module.SSLContext | None = None,
        wait_timeout: float | None = None,
        credentials: TechnicianCredentials | None = None,
    ) -> TechnicianSession:
        """Claim the nameplate, wait (up to ``wait_timeout``) for the customer, pair.

        Right after ``Hello`` the technician presents its ``Identity``: the certificate
        and a signature over this session's transcript (empty without ``credentials``).
        An agent that pins an organisation key and does not accept it closes the
        session; that reason is raised here as :class:`SessionLost`.
        """
        link = await Link.open(
            relay_url,
            Role.TECHNICIAN,
            code,
            ticket_id=ticket_id,
            token=token,
            ssl=ssl,
            wait_timeout=wait_timeout,
        )
        name = credentials.certificate.name if credentials else technician_name
        return cls(link, await _introduce(link, name, credentials))

    @classmethod
    async def connect_code_less(
        cls,
        relay_url: str,
        nameplate: str,
        ticket_id: str,
        *,
        token: str,
        credentials: TechnicianCredentials,
        expect: DeviceExpectation | None = None,
        ssl: ssl_module.SSLContext | None = None,
        wait_timeout: float | None = None,
        hello_wait: float = HELLO_WAIT,
    ) -> TechnicianSession:
        """Claim ``nameplate`` and pair without a code: the agent verifies ``credentials``
        (certificate and key) in the key exchange itself (SIGMA-I,
        :mod:`protocol.cert_pairing`). For help requests and enrolled devices; ``expect``
        requires the agent to prove a device key. Then the same ``Hello`` and
        ``Identity`` as with a code. Both ends show the check code (:attr:`sas`).
        A refused pairing raises :class:`SessionLost` saying why. ``hello_wait``: how
        long the agent may take to introduce itself (an unattended device first asks
        whoever is signed in).
        """
        link = await Link.open_certified(
            relay_url,
            nameplate,
            proof=TechnicianProof(credentials.certificate_bytes, credentials.private_key),
            expect=expect,
            ticket_id=ticket_id,
            token=token,
            ssl=ssl,
            wait_timeout=wait_timeout,
        )
        return cls(
            link, await _introduce(link, credentials.certificate.name, credentials, hello_wait)
        )

    async def request(
        self,
        capability: str,
        action: str,
        args: dict[str, Any] | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> messages.Reply:
        """Ask the agent for ``capability``/``action``; wait for its reply.

        The customer may be asked first; the reply's status says what happened.
        Raises :class:`SessionLost` if the session ends meanwhile.
        """
        request_id, future = await self.start(capability, action, args, on_progress)
        try:
            reply = await future
        finally:
            self._pending.pop(request_id, None)
            self._progress.pop(request_id, None)
        if (
            capability == "diagnostics"
            and reply.status == ReplyStatus.OK
            and isinstance(reply.result, dict)
        ):
            self.journal.diagnostics_collected(self.clock(), reply.result)
        return reply

    async def start(
        self,
        capability: str,
        action: str,
        args: dict[str, Any] | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[int, asyncio.Future[messages.Reply]]:
        """Send a request without waiting: return its id and the future of its reply.

        For streaming capabilities (screen, control) whose reply comes when they end.
        The future fails with :class:`SessionLost` if the session ends first.
        """
        request_id = next(self._ids)
        future: asyncio.Future[messages.Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        if on_progress:
            self._progress[request_id] = on_progress
        try:
            await self.link.send_control(
                messages.Request(request_id, capability, action, args or {})
            )
        except BaseException:
            self._pending.pop(request_id, None)
            self._progress.pop(request_id, None)
            raise
        future.add_done_callback(lambda _: self._pending.pop(request_id, None))
        return request_id, future

    async def cancel(self, request_id: int) -> None:
        """Ask the agent to stop a running request (its reply still comes)."""
        await self.link.send_control(messages.Cancel(request_id))

    async def chat(self, text: str) -> None:
        await self.link.send_control(messages.Chat(text))

    async def end(self, reason: str = "finished", rating_wait: float | None = None) -> None:
        """Say goodbye, wait up to ``rating_wait`` s for the customer's rating, then close."""
        self._ended("technician", reason)
        with contextlib.suppress(LinkError):
            await self.link.send_control(messages.Bye(reason))
        wait = self.rating_wait if rating_wait is None else rating_wait
        if wait > 0 and not self.link.closed.done():
            waiters: list[asyncio.Future[Any]] = [self._rating_heard, self.link.closed]
            await asyncio.wait(
                waiters,
                timeout=wait,
                return_when=asyncio.FIRST_COMPLETED,
            )
        await self.link.close(reason)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def drained(self) -> None:
        """Wait until every message the agent sent before the session closed was handled."""
        await asyncio.wait([self._reader])

    def end_through_relay(self, reason: str) -> Callable[[], None]:
        """Record that this technician ends the session through the relay (a transfer:
        the relay closes both ends), before the relay's close arrives; return the undo
        for when the relay refused."""
        if self.ended_by is not None:
            return lambda: None
        self._ended("technician", reason)

        def undo() -> None:
            self.ended_by = None
            self.end_reason = None
            self.ended_at = None

        return undo

    def _ended(self, by: str, reason: str) -> None:
        if self.ended_by is None:
            self.ended_by = by
            self.end_reason = reason
            self.ended_at = self.clock()

    async def _read(self) -> None:
        while True:
            message = await self.link.receive_control()
            if message is None:
                break
            if isinstance(message, messages.Reply):
                future = self._pending.get(message.request_id)
                if future is not None and not future.done():
                    future.set_result(message)
            elif isinstance(message, messages.Progress):
                callback = self._progress.get(message.request_id)
                if callback:
                    callback(message.data)
            elif isinstance(message, messages.Consent):
                event = ConsentEvent(
                    message.capability, message.state, message.message, self.clock()
                )
                self.consent[message.capability] = message.state
                self.consent_log.append(event)
                if self.on_consent:
                    self.on_consent(event)
            elif isinstance(message, messages.Chat):
                if self.on_chat:
                    self.on_chat(message.text)
            elif isinstance(message, messages.Rating):
                if not self._rating_heard.done():  # the first rating counts; no second vote
                    if message.score:
                        self.rating = (message.score, message.comment)
                    self._rating_heard.set_result(None)
            elif isinstance(message, messages.Bye):
                # The customer ended it; the CLOSE record that follows ends the link.
                self._ended("customer", message.reason[:500])
        try:
            reason = await self.link.wait_closed()
            error: LinkError = SessionLost(f"The session ended: {reason}.")
            self._ended("customer", reason)
        except LinkError as exc:
            error = exc
            self._ended("connection", str(exc))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
                future.exception()


@dataclass
class OpenedSession:
    """A session opened without a code (a help request taken, an enrolled device asked):
    ``created`` is what the relay said of it (``session_id``, ``nameplate``,
    ``ticket_id``, ``technician``), ``session`` the paired session; ``request`` the help
    request taken, ``terms`` the device's unattended terms (``mode``, its seconds)."""

    created: dict[str, Any]
    session: TechnicianSession
    request: dict[str, Any] | None = None
    terms: dict[str, Any] | None = None


#: What :func:`take_help_request` says while it waits (the request, the session's id).
Accepted = Callable[[dict[str, Any], str], None]
#: What :func:`connect_device` says once the device was asked (its unattended terms).
Asked = Callable[[dict[str, Any], str], None]


async def take_help_request(
    api: RelayAPI,
    request_id: str,
    credentials: TechnicianCredentials,
    *,
    ssl: ssl_module.SSLContext | None = None,
    wait_timeout: float = 120.0,
    on_accepted: Accepted | None = None,
) -> OpenedSession:
    """Accept help request ``request_id`` and pair with the customer's agent, which joins
    by itself, without a code (SIGMA-I with ``credentials``, :mod:`protocol.cert_pairing`).

    ``puente-tech queue accept`` and the viewer's Queue both open sessions this way.
    Raises :class:`RelayApiError` when the relay refuses (another technician took it:
    ``conflict``), :class:`TimeoutError` when the agent does not join in time.
    """
    accepted = await asyncio.to_thread(api.queue_action, request_id, "accept")
    request = dict(accepted["request"])
    if on_accepted is not None:
        on_accepted(request, str(accepted["session_id"]))
    created = {
        "session_id": accepted["session_id"],
        "nameplate": accepted["nameplate"],
        "ticket_id": accepted["ticket_id"],
        "technician": credentials.certificate.name,
    }
    # Code-less: the relay only names the rendezvous.
    session = await TechnicianSession.connect_code_less(
        api.relay_url,
        str(accepted["nameplate"]),
        str(accepted["ticket_id"]),
        token=api.token,
        credentials=credentials,
        ssl=ssl,
        wait_timeout=wait_timeout,
    )
    return OpenedSession(created, session, request=request)


async def transfer_request(
    api: RelayAPI, session: TechnicianSession, request_id: str, to: str, note: str
) -> dict[str, Any]:
    """Hand help request ``request_id``, whose ``session`` this is, on to technician or
    queue ``to`` with ``note``; the relay ends the session as it accepts (the customer
    waits for the next technician). Raises :class:`RelayApiError` when it refuses (the
    session then goes on). The console's ``transfer`` and the viewer's Transfer."""
    # The relay closes the session as it accepts the transfer: say first that it is ours.
    undo = session.end_through_relay(f"transferred to {to}")
    try:
        moved: dict[str, Any] = await asyncio.to_thread(
            api.queue_action, request_id, "transfer", {"to": to, "note": note}
        )
    except RelayApiError:
        undo()
        raise
    return moved


async def connect_device(
    api: RelayAPI,
    device_id: str,
    ticket_id: str,
    credentials: TechnicianCredentials,
    *,
    ticket_url: str | None = None,
    ssl: ssl_module.SSLContext | None = None,
    wait_timeout: float = 60.0,
    on_asked: Asked | None = None,
) -> OpenedSession:
    """Ask enrolled device ``device_id`` for an unattended session for ``ticket_id`` and
    pair with it without a code; the device proves its registered key and checks
    ``credentials`` (the ``unattended`` role) against its owner's policy.

    ``puente-tech connect`` and the viewer's Devices both open sessions this way. The
    relay's session is ended again when the device does not pair: :class:`TimeoutError`
    (it did not pair in time) or :class:`SessionLost` (it refused, saying why).
    """
    import base64

    from protocol.cert_pairing import DeviceExpectation

    created = await asyncio.to_thread(api.create_session, ticket_id, ticket_url)
    try:
        asked = await asyncio.to_thread(api.ask_device, device_id, created["session_id"])
        terms = dict(asked.get("unattended") or {})
        answer_wait = max(
            int(terms.get("answer_seconds", 60)), int(terms.get("countdown_seconds", 30))
        )
        if on_asked is not None:
            on_asked(terms, str(created["session_id"]))
        session = await TechnicianSession.connect_code_less(
            api.relay_url,
            str(asked["nameplate"]),
            ticket_id,
            token=api.token,
            credentials=credentials,
            expect=DeviceExpectation(
                anonymous_ok=False, device_key=base64.b64decode(str(asked["device_key"]))
            ),
            ssl=ssl,
            wait_timeout=wait_timeout,
            hello_wait=answer_wait + 30.0,
        )
    except (LinkError, TimeoutError):
        with contextlib.suppress(LinkError):
            await asyncio.to_thread(api.end_session, created["session_id"])
        raise
    return OpenedSession(created, session, terms=terms)


__all__ = [
    "ConsentState",
    "OpenedSession",
    "RelayAPI",
    "RelayApiError",
    "RelayRefused",
    "RelayUnavailable",
    "ReplyStatus",
    "SessionLost",
    "TechnicianSession",
    "connect_device",
    "take_help_request",
    "transfer_request",
]


async def _introduce(
    link: Link,
    name: str,
    credentials: TechnicianCredentials | None,
    hello_wait: float = HELLO_WAIT,
) -> messages.Hello:
    """Send our ``Hello`` and ``Identity``; return the agent's ``Hello`` (or close the link)."""
    try:
        await link.send_control(
            messages.Hello(PROTOCOL_VERSION, "technician", f"puente-tech {__version__}", name)
        )
        await link.send_control(
            credentials.identity(link.keys.transcript_hash) if credentials else messages.Identity()
        )
        hello = await asyncio.wait_for(link.receive_control(), hello_wait)
        if hello is None:
            reason = await link.wait_closed()  # raises why the session was lost
            raise SessionLost(f"The customer's agent ended the session: {reason}")
        if not isinstance(hello, messages.Hello):
            raise SessionLost("The customer's agent did not introduce itself.")
        messages.check_hello(hello)
    except (VersionMismatch, TimeoutError) as exc:
        await link.close(str(exc))
        raise SessionLost(str(exc) or "The customer's agent did not answer.") from exc
    except BaseException:
        await link.close("technician client error")
        raise
    return hello
