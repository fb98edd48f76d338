"""The agent's side of a paired session: every request goes through the consent gate.

Flow: exchange ``Hello``; show the customer who is connecting, for which ticket, and
the check code (SAS); then serve requests. For each request: unknown capability ->
``UNKNOWN``; not allowed -> ask the customer; declined -> ``DECLINED``; allowed -> run
the handler with the authorization; revoked while running -> the handler is cancelled
at once and the technician gets ``REVOKED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from protocol import messages
from protocol.errors import VersionMismatch
from protocol.messages import ConsentState, ReplyStatus
from protocol.pairing import PROTOCOL_VERSION
from relay.client import Link, SessionLost

from . import __version__
from .audit import AgentLog
from .capabilities import CapabilityCall, CapabilityRegistry
from .consent import ConsentGate
from .errors import ConsentDeclined, ConsentRevoked
from .i18n import t
from .ui import CustomerUI, SessionInfo

log = logging.getLogger("puente.agent")

HELLO_TIMEOUT = 30.0


class AgentSession:
    def __init__(
        self, link: Link, ui: CustomerUI, registry: CapabilityRegistry, audit: AgentLog
    ) -> None:
        self.link = link
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

    async def run(self) -> str:
        """Serve the session until it ends; return why. Raises SessionLost if cut off."""
        await self.link.send_control(
            messages.Hello(
                PROTOCOL_VERSION, "agent", f"puente-agent {__version__}", "", self.registry.names()
            )
        )
        hello = await asyncio.wait_for(self.link.receive_control(), HELLO_TIMEOUT)
        if hello is None:
            await self.link.wait_closed()  # raises why the session was lost
            raise SessionLost(
                "The session ended before the technician's program introduced itself."
            )
        if not isinstance(hello, messages.Hello):
            await self.link.close("the technician's program did not introduce itself")
            raise SessionLost("The technician's program did not introduce itself; session ended.")
        try:
            messages.check_hello(hello)
        except VersionMismatch as exc:
            await self.link.close(str(exc))
            raise SessionLost(str(exc)) from exc
        self.technician = hello.name[:100] or "Unnamed technician"
        info = SessionInfo(
            technician=self.technician,
            verified=False,
            organisation="",
            ticket_id=str(self.link.paired_info.get("ticket_id", "")),
            ticket_url=str(self.link.paired_info.get("ticket_url") or ""),
            sas=self.link.sas,
        )
        self.ui.session_started(info)
        self.audit.write(
            f"Technician {self.technician} (not verified) connected for ticket {info.ticket_id}; "
            f"check code {info.sas}."
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
                self.ui.notify(t("chat.from_technician", text=message.text[:2000]))
            elif isinstance(message, messages.Bye):
                self.ended_by = self.ended_by or "technician"
                self._end_reason = f"the technician ended the session ({message.reason[:200]})"
                self.audit.write(f"Session ended: {self._end_reason}.")
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
        capability = self.registry.get(request.capability)
        if capability is None or request.action not in capability.actions:
            await self._reply(
                request.request_id,
                ReplyStatus.UNKNOWN,
                message=f"This agent has no {request.capability}/{request.action}.",
            )
            return
        was_granted = capability.name in self.gate.granted()
        try:
            auth = await self.gate.authorize(capability)
        except ConsentDeclined as exc:
            await self.link.send_control(
                messages.Consent(capability.name, ConsentState.DECLINED, str(exc))
            )
            await self._reply(request.request_id, ReplyStatus.DECLINED, message=str(exc))
            return
        if not was_granted:
            await self.link.send_control(messages.Consent(capability.name, ConsentState.GRANTED))

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
            self.link,
            getattr(self.ui, "review_outgoing", None),
        )
        self.audit.write(f"The technician started: {capability.title} ({request.action}).")
        work = asyncio.create_task(capability.handler(call))
        stop = asyncio.create_task(revoked.wait())
        try:
            await asyncio.wait([work, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not work.done() or not auth.active:
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
        except Exception as exc:  # a capability failure is reported, never fatal
            log.warning("capability %s failed: %s", capability.name, exc)
            self.audit.write(f"Failed: {capability.title} ({exc}).")
            await self._reply(request.request_id, ReplyStatus.FAILED, message=str(exc))
            return
        size = len(json.dumps(result, default=str))
        self.audit.write(f"Sent to the technician: {capability.title} result ({size} bytes).")
        await self._reply(request.request_id, ReplyStatus.OK, result=result)

    async def _reply(
        self,
        request_id: int,
        status: ReplyStatus,
        result: dict[str, Any] | None = None,
        message: str = "",
    ) -> None:
        with contextlib.suppress(SessionLost):
            await self.link.send_control(messages.Reply(request_id, status, result, message))

    def _revoked(self, capability: str, reason: str) -> None:
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
            await self.end("ended by the customer")
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
            self.ui.notify(t("chat.from_you", text=text))
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
