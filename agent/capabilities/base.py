"""Capabilities: what a technician may ask this agent to do, each behind consent.

A capability is a plugin with a ``name``, a customer-facing ``title`` and
``description``, and a ``handler``. A handler cannot run without an
:class:`agent.consent.Authorization`, which only the consent gate can mint.
Later capabilities (screen, control, shell, files, fixes) register the same way.

Most capabilities are allowed once per session. A capability with a ``prepare``
hook is allowed one run at a time (fixes): the session first calls ``prepare``,
which checks the request without running anything (a fix's signature, platform,
parameters) and either refuses it with :class:`RequestRefused` (the reason is shown
to the customer and sent to the technician) or returns the :class:`ConsentPrompt`
that tells the customer exactly what will run. Then the customer is asked, every
time, and the handler gets the authorization for that run only.

Capabilities never touch the transport. A capability that streams declares its
multiplexer channels (``channels``: messages; ``stream_channel``: byte streams) and
its handler gets a port for each (:class:`ChannelPort`, :class:`StreamPort`), built
by the session; credits, priorities and the discard on revocation stay the link's.
What a capability keeps for the length of a session lives in the call's
:class:`SessionState`, never in module globals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from agent.errors import RequestRefused
from protocol.mux import Channel

if TYPE_CHECKING:
    from agent.audit import AgentLog
    from agent.consent import Authorization
    from agent.trust import AgentTrust

ProgressCallback = Callable[[dict[str, Any]], Awaitable[None]]

#: Shows the customer a result about to leave the machine; returns the paths
#: (see :mod:`agent.review`) they struck out. Given by a UI that can show it.
ReviewCallback = Callable[[str, dict[str, Any]], Awaitable[list[tuple[str | int, ...]]]]


@dataclass(frozen=True)
class ConsentPrompt:
    """What the customer is asked before one run of a per-run capability.

    ``documents`` are texts the customer may read before answering (a fix's script),
    as ``(name, text)`` pairs; the console shows one when the customer types its name.
    """

    title: str
    description: str
    detail: str = ""
    documents: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PreparedRequest:
    """What ``prepare`` hands on: the question for the customer and the checked request."""

    prompt: ConsentPrompt
    state: Any


@dataclass(frozen=True)
class RequestContext:
    """What ``prepare`` may look at: the request and what this agent trusts."""

    action: str
    args: dict[str, Any]
    trust: AgentTrust | None


Preparer = Callable[[RequestContext], Awaitable[PreparedRequest]]


class ChannelPort(Protocol):
    """One multiplexer channel a capability owns (screen, input), as messages.

    The session builds it from the link; the channel keeps its credits and priority,
    and what is queued on it is discarded the moment consent is withdrawn.
    """

    async def send(self, payload: bytes) -> None:
        """Queue one message for the technician; raises if the session is over."""
        ...

    async def receive(self) -> bytes | None:
        """The technician's next message on this channel, or None once the session is over."""
        ...


class ByteStream(Protocol):
    """One byte stream the technician opened on a stream channel: an asyncio
    transport that delivers to the protocol attached to it."""

    def attach(self, protocol: asyncio.BaseProtocol) -> None: ...

    def abort(self) -> None: ...


class StreamPort(Protocol):
    """The byte streams of a capability's stream channel (the ``ssh`` channel).

    ``accept(on_open)`` starts taking streams, once per session: ``on_open`` gets each
    new stream (attach a protocol to it, or ``abort()`` it).
    """

    def accept(self, on_open: Callable[[ByteStream], None]) -> None: ...

    def close_all(self, reason: str) -> None:
        """Close every stream now (consent withdrawn)."""
        ...

    async def aclose(self, reason: str) -> None:
        """Close every stream and stop taking new ones."""
        ...


_State = TypeVar("_State")


class SessionState:
    """What capabilities keep for the length of one session, one object of each kind.

    Owned by the session and handed to every call, so two sessions in one process
    never share state (and nothing of a session outlives it in a module global).
    """

    def __init__(self) -> None:
        self._objects: dict[type[Any], Any] = {}

    def get(self, kind: type[_State], make: Callable[[], _State]) -> _State:
        """This session's ``kind`` object, made by ``make()`` the first time."""
        found = self._objects.get(kind)
        if found is None:
            found = self._objects[kind] = make()
        assert isinstance(found, kind)
        return found


#: Raised by ``prepare`` (defined in :mod:`agent.errors`, offered here for capabilities).
__all__ = ["RequestRefused"]


@dataclass
class CapabilityCall:
    """Everything a handler gets for one request.

    ``channels`` are ports to the capability's own multiplexer channels and ``streams``
    to its stream channel (see :class:`Capability`); the handler must stop when it is cancelled (the customer revoked) and
    should call ``authorization.check()`` before each unit of work. ``notify`` shows
    a line to the customer (what a long-running capability is doing right now);
    write the same to ``log`` so the record keeps it. ``review``, when the customer's
    UI offers it, lets them strike items out of a result before it is sent
    (:mod:`agent.review`); the handler applies what they struck.
    """

    action: str
    args: dict[str, Any]
    authorization: Authorization
    progress: ProgressCallback
    log: AgentLog
    #: Ports to the channels the capability declared (``Capability.channels``).
    channels: Mapping[Channel, ChannelPort] = field(default_factory=dict)
    #: The byte streams of ``Capability.stream_channel``, if it declared one.
    streams: StreamPort | None = None
    #: This session's state, shared by its capabilities (see :class:`SessionState`).
    session: SessionState = field(default_factory=SessionState)
    #: The pairing transcript hash: a capability proves its own keys by signing it
    #: (the shell's SSH host key), so a recording from another session cannot pass.
    transcript_hash: bytes = b""
    #: What ``prepare`` returned (per-run capabilities only).
    prepared: Any = None
    #: Ask the customer for one more run within this request (a fix's second step);
    #: returns that run's authorization, raises ConsentDeclined.
    confirm: Callable[[ConsentPrompt], Awaitable[Authorization]] | None = None
    #: End a run's authorization that ``confirm`` returned.
    release: Callable[[Authorization], None] | None = None
    #: Show the customer a line of text.
    notify: Callable[[str], None] | None = None
    #: The customer's review of a result before it is sent (see ``ReviewCallback``).
    review: ReviewCallback | None = None


@dataclass(frozen=True)
class Choice:
    """A follow-up question the customer answers right after allowing a capability.

    Example: which folder file transfer may use. ``default()`` gives the answer used
    when the customer just presses Enter (or the UI cannot ask); ``check(answer)``
    returns the canonical answer or raises ``ValueError`` with a sentence for the
    customer. The consent gate stores the answer in the authorization
    (``Authorization.choice``), so it comes from the customer and never from the
    technician.
    """

    question: str
    default: Callable[[], str]
    check: Callable[[str], str]


Handler = Callable[[CapabilityCall], Coroutine[Any, Any, dict[str, Any]]]


@dataclass(frozen=True)
class Capability:
    name: str
    title: str
    description: str
    handler: Handler
    actions: tuple[str, ...]
    #: Capabilities that must already be granted (control needs screen view).
    requires: tuple[str, ...] = field(default=())
    #: A question asked after the customer says yes (files: which folder).
    choice: Choice | None = None
    #: Says why this capability cannot work on this machine (no display...), or None.
    #: Checked before the customer is asked, so nobody consents to the impossible.
    unavailable: Callable[[], str | None] | None = None
    #: Multiplexer channels the capability streams on; what is still queued on them
    #: is discarded the moment consent is withdrawn, so nothing leaves afterwards.
    channels: tuple[Channel, ...] = field(default=())
    #: The channel whose byte streams the capability serves (shell, files: ssh), handed
    #: to the handler as ``CapabilityCall.streams``. Not discarded on revocation: the
    #: capability closes its streams itself.
    stream_channel: Channel | None = None
    #: Per-run capabilities: check a request before the customer is asked (see above).
    prepare: Preparer | None = None
    #: Texts the customer may read before answering (set on per-run views).
    documents: tuple[tuple[str, str], ...] = ()


class CapabilityRegistry:
    """The capabilities this agent offers; anything not registered is refused."""

    def __init__(self) -> None:
        self._capabilities: dict[str, Capability] = {}

    def register(self, capability: Capability) -> None:
        if capability.name in self._capabilities:
            raise ValueError(f"capability {capability.name!r} registered twice")
        self._capabilities[capability.name] = capability

    def get(self, name: str) -> Capability | None:
        return self._capabilities.get(name)

    def names(self) -> list[str]:
        return sorted(self._capabilities)
