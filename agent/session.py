"""The agent's side of a paired session: every request goes through the consent gate.

Flow: receive the technician's ``Hello`` and ``Identity``; with a pinned organisation
key, verify the certificate and the transcript signature or end the session; send our
``Hello``; show the customer who is connecting (verified or not), for which ticket,
and the check code (SAS); then serve requests. For each request: unknown capability
-> ``UNKNOWN``; not allowed -> ask the customer; declined -> ``DECLINED``; allowed ->
run the handler with the authorization; revoked while running -> the handler is
cancelled at once and the technician gets ``REVOKED``. Per-run capabilities (fixes)
are checked first (``REFUSED`` with the reason, before anything runs) and the
customer is asked for every run.

When the session ends (the technician's ``Bye``, or the customer's ``end``) the
customer is asked for a satisfaction rating once, and the answer travels to the
technician as a ``Rating`` message inside the encrypted channel (score 0 when
skipped). Ctrl-C and a lost link skip the question.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agent import __version__
from agent.audit import AgentLog
from agent.capabilities.base import (
    Capability,
    CapabilityCall,
    CapabilityRegistry,
    ConsentPrompt,
    RequestContext,
    RequestRefused,
    SessionState,
)
from agent.consent import Authorization, ConsentGate, TrustedPath
from agent.errors import ConsentDeclined, ConsentRevoked
from agent.i18n import t, translated
from agent.ports import LinkChannelPort, TunnelStreamPort
from agent.trust import AgentTrust, current_platform
from agent.ui import CustomerUI, SessionInfo, chat_line
from link.connection import Link, SessionLost
from protocol import messages
from protocol.errors import TrustError, VersionMismatch
from protocol.identity import Certificate
from protocol.messages import ConsentState, ReplyStatus
from protocol.mux import Channel
from protocol.pairing import PROTOCOL_VERSION
from protocol.safe_text import safe_text

log = logging.getLogger("puente.agent")

HELLO_TIMEOUT = 30.0

#: ``admit(session, certificate)``: None to go on, or why not ``(for the technician, in
#: English; for the customer, in their language)``.
Admission = Callable[["AgentSession", "Certificate | None"], Awaitable["tuple[str, str] | None"]]


class AgentSession:
    def __init__(
        self,
        link: Link,
        ui: CustomerUI,
        registry: CapabilityRegistry,
        audit: AgentLog,
        trust: AgentTrust | None = None,
        admit: Admission | None = None,
    ) -> None:
        self.link = link
        #: Decides, once the technician is verified and before anything is shown or
        #: sent, whether the session may go on (unattended sessions: the owner's policy).
        self.admit = admit
        self.trust = trust
        self.ui = ui
        self.registry = registry
        self.audit = audit
        self.gate = ConsentGate(ui, audit)
        self.gate.on_revoke(self._revoked)
        self.technician = ""
        self._running: dict[int, tuple[str, asyncio.Task[None]]] = {}
        self._revocations: dict[str, asyncio.Event] = {}
        self._end_reason: str | None = None
        #: Who ended the session: "customer", "technician", or None (cut off / not yet).
        self.ended_by: str | None = None
        link.on_link_state.append(self._link_state)
        self._surveyed = False
        self._ending = False
        self._background: set[asyncio.Task[None]] = set()
        #: What the capabilities keep for this session (the SSH service, the screen's
        #: running streams); it goes with the session.
        self.state = SessionState()
        # Remote control reads whether a question is open from here (the trusted path).
        self.state.get(TrustedPath, lambda: self.gate.trusted_path)
        self._stream_ports: dict[Channel, TunnelStreamPort] = {}

    async def run(self) -> str:
        """Serve the session until it ends; return why. Raises SessionLost if cut off.

        The technician speaks first (``Hello``, then ``Identity``). With a pinned
        organisation key the certificate and the transcript signature must verify, or
        the session ends here with the reason on both sides, before the customer is
        shown or asked anything. Only then does the agent send its own ``Hello``.
        """
        hello = await self._receive_first("introduced itself")
        if not isinstance(hello, messages.Hello):
            await self.link.close("the technician's program did not introduce itself")
            raise SessionLost("The technician's program did not introduce itself; session ended.")
        try:
            messages.check_hello(hello)
        except VersionMismatch as exc:
            await self.link.close(str(exc))
            raise SessionLost(str(exc)) from exc
        identity = await self._receive_first("presented its identity")
        if not isinstance(identity, messages.Identity):
            reason = "the technician's program did not present its identity"
            await self.link.close(reason)
            raise SessionLost(f"The session ended: {reason}.")
        claimed = _clean_name(hello.name) or "Unnamed technician"
        certificate = await self._verify_technician(identity, claimed)
        if self.admit is not None:
            refusal = await self.admit(self, certificate)
            if refusal is not None:
                for_technician, for_customer = refusal
                self.audit.write(f"Session refused: {for_technician}")
                await self.link.close(for_technician)  # the technician's side reads English
                raise SessionLost(for_customer)
        await self.link.send_control(
            messages.Hello(
                PROTOCOL_VERSION,
                "agent",
                f"puente-agent {__version__}",
                "",
                self.registry.names(),
                self.trust.platform if self.trust else current_platform(),
            )
        )
        self.technician = certificate.name if certificate else claimed
        info = SessionInfo(
            technician=self.technician,
            verified=certificate is not None,
            organisation=certificate.organisation if certificate else "",
            ticket_id=str(self.link.paired_info.get("ticket_id", "")),
            ticket_url=str(self.link.paired_info.get("ticket_url") or ""),
            sas=self.link.sas,
        )
        self.ui.session_started(info)
        who = (
            f"{self.technician} (verified: {certificate.organisation}, certificate "
            f"{certificate.serial[:8]})"
            if certificate
            else f"{self.technician} (not verified)"
        )
        self.audit.write(
            f"Technician {who} connected for ticket {info.ticket_id}; check code {info.sas}."
        )
        ui_task = asyncio.create_task(self.ui.run(self._customer_command))
        try:
            reason = await self._serve()
        finally:
            ui_task.cancel()
            for _, task in list(self._running.values()):
                task.cancel()
            self.gate.revoke_all("the session ended")
        return reason

    async def end(self, reason: str) -> None:
        """End the session from this side (the customer's Stop, Ctrl-C)."""
        if self._end_reason is None:
            self.ended_by = self.ended_by or ("customer" if "customer" in reason else None)
            self._end_reason = reason
            self.audit.write(f"Session ended: {reason}.")
            with contextlib.suppress(Exception):
                await self.link.send_control(messages.Bye(reason))
            await self.link.close(reason)

    # Private methods -----------------------------------------------------------------

    async def _receive_first(self, what: str) -> messages.Message:
        message = await asyncio.wait_for(self.link.receive_control(), HELLO_TIMEOUT)
        if message is None:
            await self.link.wait_closed()  # raises why the session was lost
            raise SessionLost(f"The session ended before the technician's program {what}.")
        return message

    async def _verify_technician(
        self, identity: messages.Identity, claimed: str
    ) -> Certificate | None:
        """The verified certificate, None when no key is pinned; ends the session if invalid."""
        if self.trust is None or not self.trust.pinned:
            return None
        try:
            verified = self.trust.verify_technician(
                identity.certificate, identity.signature, self.link.keys.transcript_hash
            )
            paired_with = self.link.technician_certificate
            if paired_with is not None and verified.serial != paired_with.serial:
                # Code-less pairing verified one certificate; the channel must not swap it.
                raise TrustError(
                    f"The technician paired as {paired_with.name} but introduced itself "
                    f"with another certificate ({verified.name})."
                )
            return verified
        except TrustError as exc:
            reason = (
                "This computer only accepts technicians certified by its organisation, and "
                f"{claimed} could not be verified: {exc} Nothing was shown or allowed."
            )
            self.audit.write(f"Refused a technician who could not be verified ({claimed}): {exc}")
            await self.link.close(reason)  # the technician's side reads English
            raise SessionLost(t("error.untrusted", name=claimed, detail=str(exc))) from exc

    async def _serve(self) -> str:
        while True:
            message = await self.link.receive_control()
            if message is None:
                reason = await self.link.wait_closed()
                if self._end_reason is None:
                    self.audit.write(f"Session ended: {reason}.")
                return self._end_reason or reason
            if isinstance(message, messages.Request):
                if message.request_id in self._running:
                    await self._reply(message.request_id, ReplyStatus.BUSY, message="duplicate id")
                    continue
                task = asyncio.create_task(self._handle(message))
                self._running[message.request_id] = (message.capability, task)
            elif isinstance(message, messages.Cancel):
                entry = self._running.get(message.request_id)
                if entry:
                    entry[1].cancel()
            elif isinstance(message, messages.Chat):
                show_chat = getattr(self.ui, "show_chat", None)
                if show_chat is not None:
                    show_chat(message.text)  # framed, inert, the pending question again
                else:
                    self.ui.notify(chat_line(message.text))
            elif isinstance(message, messages.Bye):
                self.ended_by = self.ended_by or "technician"
                if self._end_reason is None:
                    self._end_reason = f"the technician ended the session ({message.reason[:200]})"
                    self.audit.write(f"Session ended: {self._end_reason}.")
                # The technician waits briefly for the rating, then closes the link.
                await self._survey()
            # Anything else from the technician is ignored: it grants nothing.

    async def _handle(self, request: messages.Request) -> None:
        try:
            await self._handle_request(request)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self._reply(request.request_id, ReplyStatus.FAILED, message="cancelled")
        finally:
            self._running.pop(request.request_id, None)

    async def _handle_request(self, request: messages.Request) -> None:
        if self._ending:
            await self._reply(
                request.request_id,
                ReplyStatus.DECLINED,
                message="The customer stopped the session; nothing more can be asked.",
            )
            return
        capability = self.registry.get(request.capability)
        if capability is None or request.action not in capability.actions:
            await self._reply(
                request.request_id,
                ReplyStatus.UNKNOWN,
                message=f"This agent has no {request.capability}/{request.action}.",
            )
            return
        reason = capability.unavailable() if capability.unavailable is not None else None
        if reason:
            # Say it to both people instead of asking for something that cannot work.
            self.ui.notify(translated(reason))
            self.audit.write(f"Not available here: {capability.title} ({reason})")
            await self._reply(request.request_id, ReplyStatus.FAILED, message=reason)
            return
        if capability.prepare is not None:
            await self._handle_per_run(request, capability)
            return
        was_granted = capability.name in self.gate.granted()
        try:
            auth = await self.gate.authorize(capability)
        except ConsentDeclined as exc:
            await self._declined(request, capability, exc)
            return
        if not was_granted:
            await self.link.send_control(messages.Consent(capability.name, ConsentState.GRANTED))
        await self._run_handler(request, capability, auth)

    async def _handle_per_run(self, request: messages.Request, capability: Capability) -> None:
        """Check the request, ask the customer for this run, run it, end the grant."""
        assert capability.prepare is not None
        try:
            prepared = await capability.prepare(
                RequestContext(request.action, dict(request.args), self.trust)
            )
        except RequestRefused as exc:
            self.ui.notify(t("fix.refused", detail=safe_text(str(exc))))
            self.audit.write(f"Refused before anything ran ({capability.title}): {exc}")
            await self._reply(request.request_id, ReplyStatus.REFUSED, message=str(exc))
            return
        except Exception as exc:  # a bug in a check must still answer, and run nothing
            log.warning("checking a %s request failed: %s", capability.name, exc)
            self.audit.write(f"Could not check a request ({capability.title}): {exc}")
            await self._reply(
                request.request_id,
                ReplyStatus.FAILED,
                message=f"The agent could not check this request ({exc}); nothing ran.",
            )
            return
        try:
            auth = await self.gate.authorize_run(
                _view(capability, prepared.prompt), prepared.prompt.detail
            )
        except ConsentDeclined as exc:
            await self._declined(request, capability, exc)
            return
        await self.link.send_control(messages.Consent(capability.name, ConsentState.GRANTED))

        async def confirm(prompt: ConsentPrompt) -> Authorization:
            return await self.gate.authorize_run(_view(capability, prompt), prompt.detail)

        try:
            await self._run_handler(
                request,
                capability,
                auth,
                per_run=True,
                prepared=prepared.state,
                confirm=confirm,
            )
        finally:
            self.gate.release(auth)

    async def _declined(
        self, request: messages.Request, capability: Capability, exc: ConsentDeclined
    ) -> None:
        await self.link.send_control(
            messages.Consent(capability.name, ConsentState.DECLINED, str(exc))
        )
        await self._reply(request.request_id, ReplyStatus.DECLINED, message=str(exc))

    async def _run_handler(
        self,
        request: messages.Request,
        capability: Capability,
        auth: Authorization,
        *,
        per_run: bool = False,
        prepared: Any = None,
        confirm: Callable[[ConsentPrompt], Awaitable[Authorization]] | None = None,
    ) -> None:
        revoked = self._revocations.setdefault(capability.name, asyncio.Event())
        revoked.clear()

        async def progress(data: dict[str, Any]) -> None:
            await self.link.send_control(messages.Progress(request.request_id, data))

        call = CapabilityCall(
            request.action,
            dict(request.args),
            auth,
            progress,
            self.audit,
            channels={ch: LinkChannelPort(self.link, ch) for ch in capability.channels},
            streams=self._streams(capability),
            session=self.state,
            transcript_hash=self.link.keys.transcript_hash,
            prepared=prepared,
            confirm=confirm,
            release=self.gate.release,
            notify=self.ui.notify,
            review=self._review_callback(),
        )
        self.audit.write(f"The technician started: {capability.title} ({request.action}).")
        work = asyncio.create_task(capability.handler(call))
        stop = asyncio.create_task(revoked.wait())
        try:
            await asyncio.wait([work, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        # A per-run handler ends its own grants (release), so only the revocation event
        # says the customer stopped it; a session grant is simply no longer active.
        stopped = revoked.is_set() if per_run else not auth.active
        if not work.done() or stopped:
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            self.audit.write(f"Stopped before it finished: {capability.title}.")
            await self._reply(
                request.request_id,
                ReplyStatus.REVOKED,
                message=f"The customer stopped {capability.name}; nothing more was sent.",
            )
            return
        try:
            result = work.result()
        except ConsentRevoked as exc:
            await self._reply(request.request_id, ReplyStatus.REVOKED, message=str(exc))
            return
        except ConsentDeclined as exc:
            await self._declined(request, capability, exc)
            return
        except Exception as exc:  # a capability failure is reported, never fatal
            log.warning("capability %s failed: %s", capability.name, exc)
            self.audit.write(f"Failed: {capability.title} ({exc}).")
            await self._reply(request.request_id, ReplyStatus.FAILED, message=str(exc))
            return
        size = len(json.dumps(result, default=str))
        self.audit.write(f"Sent to the technician: {capability.title} result ({size} bytes).")
        await self._reply(request.request_id, ReplyStatus.OK, result=result)

    def _review_callback(self) -> Any:
        """The UI's review of a result, marked open on the trusted path while shown."""
        review = getattr(self.ui, "review_outgoing", None)
        if review is None or self.gate.follows_policy:
            # Unattended: the owner's policy allowed it, and nobody may be there to review.
            return None

        async def reviewed(what: str, result: dict[str, Any]) -> list[tuple[str | int, ...]]:
            with self.gate.trusted_path.asking():
                found: list[tuple[str | int, ...]] = await review(what, result)
                return found

        return reviewed

    def _streams(self, capability: Capability) -> TunnelStreamPort | None:
        """The session's port to ``capability``'s stream channel (one per channel)."""
        channel = capability.stream_channel
        if channel is None:
            return None
        port = self._stream_ports.get(channel)
        if port is None:
            port = self._stream_ports[channel] = TunnelStreamPort(self.link, channel)
        return port

    async def _reply(
        self,
        request_id: int,
        status: ReplyStatus,
        result: dict[str, Any] | None = None,
        message: str = "",
    ) -> None:
        with contextlib.suppress(SessionLost):
            await self.link.send_control(messages.Reply(request_id, status, result, message))

    async def _survey(self) -> None:
        """Ask the customer's rating (once) and send it; give up if the link closes first."""
        if self._surveyed:
            return
        self._surveyed = True
        if self.gate.follows_policy:
            # Unattended: nobody was helped in person; tell the technician at once.
            with contextlib.suppress(SessionLost):
                await self.link.send_control(messages.Rating(0, ""))
            return
        ask = asyncio.create_task(self.ui.ask_rating())
        waiters: list[asyncio.Future[Any]] = [ask, self.link.closed]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not ask.done():
            ask.cancel()
            with contextlib.suppress(BaseException):
                await ask
            return
        try:
            rating = ask.result()
        except Exception as exc:  # a broken UI must not stop the session from ending
            log.warning("asking the rating failed: %s", exc)
            rating = None
        score, comment = rating if rating else (0, "")
        if score:
            self.audit.write(f"You rated this help {score} out of 5.")
        with contextlib.suppress(SessionLost):
            await self.link.send_control(messages.Rating(score, comment))

    async def _end_by_customer(self) -> None:
        """The customer's Stop: everything stops at once, then the rating, then the end.

        Every permission is withdrawn and every running capability cancelled before the
        question is even shown, and requests that arrive meanwhile are declined: the
        rating only keeps the line open long enough to say how the help was.
        """
        self.ended_by = "customer"
        self._ending = True
        self.gate.revoke_all("the customer ended the session")
        for _, task in list(self._running.values()):
            task.cancel()
        await self._survey()
        await self.end("ended by the customer")

    def _revoked(self, capability: str, reason: str) -> None:
        # First drop whatever the capability still has queued for the technician
        # (screen frames), so nothing of it leaves after this moment.
        spec = self.registry.get(capability)
        for channel in spec.channels if spec is not None else ():
            self.link.discard(channel)
        event = self._revocations.get(capability)
        if event is not None:
            event.set()
        task = asyncio.ensure_future(
            self.link.send_control(messages.Consent(capability, ConsentState.REVOKED, reason))
        )
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _customer_command(self, command: str) -> None:
        words = command.split()
        verb = words[0].lower()
        if verb in ("end", "quit", "exit") or (verb == "stop" and len(words) == 1):
            # In a task of its own: the rating question needs this UI loop to read answers.
            task = asyncio.create_task(self._end_by_customer())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif verb in ("stop", "revoke") and len(words) == 2:
            if not self.gate.revoke(words[1].lower()):
                self.ui.notify(t("console.not_allowed", name=words[1]))
        elif verb == "chat":
            text = command.strip()[len(words[0]) :].strip()
            if not text:
                self.ui.notify(t("console.chat_usage"))
                return
            text = text[:2000]
            await self.link.send_control(messages.Chat(text))
            self.audit.write("You sent a chat message to the technician.")
            self.ui.notify(t("chat.from_you", text=safe_text(text)))
        else:
            self.ui.notify(t("console.unknown", command=command.strip()))

    def customer_reason(self, reason: str) -> str:
        """How the session ended, in the customer's language."""
        if self.ended_by == "customer":
            return t("ended.by_you")
        if self.ended_by == "technician" or reason:
            return t("ended.by_technician")
        return t("ended.lost")

    def _link_state(self, state: str) -> None:
        if state == "reconnecting":
            self.audit.write("The connection was lost; reconnecting.")
            self.ui.notify(t("link.reconnecting", grace=f"{self.link.resume_grace:g}"))
        elif state == "peer_reconnecting":
            self.ui.notify(t("link.peer_reconnecting"))
        elif state == "resumed":
            self.audit.write("The connection was restored; the session continues.")
            self.ui.notify(t("link.resumed"))


def _view(capability: Capability, prompt: ConsentPrompt) -> Capability:
    """The capability as the customer is asked about it for one run."""
    return dataclasses.replace(
        capability,
        title=prompt.title,
        description=prompt.description,
        documents=prompt.documents,
    )


def _clean_name(name: str) -> str:
    """A claimed name fit to show: made inert by safe_text, at most 100 characters."""
    return safe_text(name, 100).strip()
