"""The consent gate: the only code that can authorise a capability.

Rules:

1. Deny by default. Nothing runs until the customer said yes to that capability in
   this session; no answer (closed input, window shut) is a no.
2. :class:`Authorization` has no public constructor: only :meth:`ConsentGate.authorize`
   mints one, after the customer agreed. Handlers need one to run.
3. Revoking a capability marks every authorization for it revoked at once, runs the
   revocation callbacks (the session cancels running work and tells the technician),
   and the next request asks again.
4. A capability that needs another (control needs screen) is refused unless that
   one is granted first.
5. A customer who declines the same capability three times is not asked again in
   this session (no prompt spamming).
6. Some capabilities (fixes) are allowed one run at a time: :meth:`ConsentGate.authorize_run`
   always asks, and its authorization ends with the run (:meth:`ConsentGate.release`).
   While the run lasts it counts as granted, so ``stop NAME`` revokes it at once.
7. A capability with a follow-up :class:`agent.capabilities.base.Choice` (files: which
   folder) asks it right after the yes; the checked answer is stored in the
   authorization (``choice``). An answer that fails its check is asked again, up to
   three times; then, or if the customer cancels, it counts as a no.
8. The answer travels a trusted path (:class:`TrustedPath`): while any question or
   review is open, remote input is dropped (not queued, not replayed); only the
   customer's own mouse or keyboard can answer.
9. An unattended session (an enrolled device, :mod:`agent.unattended`) first asks
   whoever is signed in whether the technician may come in at all
   (:meth:`ConsentGate.ask_unattended`, on the same trusted path, for a limited time;
   silence is the owner's policy's answer: no, or yes after the countdown). Then the
   owner's signed policy answers instead of the customer (:meth:`ConsentGate.follow_policy`):
   the capabilities it lists one by one are allowed without a prompt, every other one
   is refused (deny by default), and one the signed-in user stopped stays stopped for
   the rest of the session.
10. On an enrolled device the policy its owner accepted at enrolment is consent given
    in advance, and only for what it names: :func:`authorize_failure_action` mints one
    ``fixes`` authorization for one automatic run when the verified policy sets
    ``failure_actions``, and raises ConsentDeclined otherwise.

This module is the bottom of the agent's stack: it imports no capability and no UI.
It names what it asks about (:class:`ConsentSubject`, which every
:class:`agent.capabilities.base.Capability` is) and whom it asks
(:class:`ConsentAsker`, the part of :class:`agent.ui.CustomerUI` it uses), so the
capabilities can name :class:`Authorization` without an import loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, Protocol

from agent.errors import ConsentDeclined, ConsentRevoked

if TYPE_CHECKING:
    from agent.audit import AgentLog

MAX_DECLINES = 3


class TrustedPath:
    """Whether the customer is being asked something: the one place that says so.

    The consent gate owns it and marks every question (:meth:`asking`); the session
    marks reviews the same way and hands it to the capabilities through their
    :class:`agent.capabilities.base.SessionState`. Remote control reads it before it
    injects each event, from its own thread: while :meth:`input_allowed` is False,
    remote input is dropped. The UIs add the ids of their own windows
    (:meth:`add_windows`), where remote input must never land at all.
    Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self._generation = 0
        self._windows: set[int] = set()

    @contextlib.contextmanager
    def asking(self) -> Iterator[None]:
        """Mark a question open for the ``with`` block: remote input is dropped."""
        with self._lock:
            self._open += 1
            self._generation += 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1
                self._generation += 1

    @property
    def question_open(self) -> bool:
        with self._lock:
            return self._open > 0

    @property
    def generation(self) -> int:
        """Changes whenever a question opens or closes (input from before is stale)."""
        with self._lock:
            return self._generation

    def input_allowed(self, since: int | None = None) -> bool:
        """True when remote input may be injected now.

        False while a question is open and (with ``since``, a :attr:`generation` read
        when the input arrived) when a question opened or closed since then: input
        that arrived while one was open is never injected after it closed. Remote
        control reads its channel all the time and drops what arrives while a
        question is open, so nothing queues up meanwhile.
        """
        with self._lock:
            return not self._open and (since is None or since == self._generation)

    def add_windows(self, ids: Iterable[int]) -> None:
        """The agent's own windows (X11 window ids): remote input never lands on them."""
        with self._lock:
            self._windows.update(ids)

    def remove_windows(self, ids: Iterable[int]) -> None:
        with self._lock:
            self._windows.difference_update(ids)

    @property
    def windows(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._windows)


class FollowUpQuestion(Protocol):
    """A question asked right after the customer allowed something (files: which folder).

    :class:`agent.capabilities.base.Choice` is one.
    """

    @property
    def question(self) -> str: ...

    @property
    def default(self) -> Callable[[], str]: ...

    @property
    def check(self) -> Callable[[str], str]: ...


class ConsentSubject(Protocol):
    """What the customer is asked about: a capability, or its view for one run.

    :class:`agent.capabilities.base.Capability` is one.
    """

    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def requires(self) -> tuple[str, ...]: ...

    @property
    def choice(self) -> FollowUpQuestion | None: ...

    @property
    def documents(self) -> tuple[tuple[str, str], ...]: ...


class ConsentAsker(Protocol):
    """The part of the customer's UI the gate talks to (see :class:`agent.ui.CustomerUI`).

    Optional: ``async ask_choice(capability, question, default) -> str | None``.
    """

    async def ask_consent(self, capability: ConsentSubject, detail: str) -> bool:
        """Ask about ``capability``; True only for a clear yes."""
        ...

    def show_active(self, granted: list[str]) -> None: ...

    def notify(self, text: str) -> None: ...


@dataclass(frozen=True)
class UnattendedQuestion:
    """Whether a verified technician may start an unattended session (rule 9).

    ``seconds``: how long the signed-in user has to answer; ``allow_on_silence``: what
    no answer means (the owner's policy: False for ``ask-deny``, True for
    ``ask-allow``, a countdown). ``capabilities``: what the policy lets the technician
    use. Outside text (names, ticket) is made inert by the UI that shows it.
    """

    technician: str
    organisation: str
    ticket_id: str
    capabilities: tuple[str, ...]
    seconds: int
    allow_on_silence: bool


class Authorization:
    """Proof that the customer allowed ``capability``; revoked the moment they withdraw.

    Thread-safe to check: handlers running in worker threads call :meth:`check`.
    """

    __slots__ = ("capability", "granted_at", "choice", "_revoked")

    capability: str
    granted_at: float
    #: The customer's answer to the capability's follow-up question, if it has one.
    choice: str | None
    _revoked: threading.Event

    def __init__(self) -> None:
        raise TypeError("only the consent gate can authorise a capability")

    @classmethod
    def _mint(cls, capability: str, choice: str | None = None) -> Authorization:
        auth: Authorization = object.__new__(cls)
        auth.capability = capability
        auth.granted_at = time.time()
        auth.choice = choice
        auth._revoked = threading.Event()
        return auth

    @property
    def active(self) -> bool:
        return not self._revoked.is_set()

    def check(self) -> None:
        """Raise :class:`ConsentRevoked` if the customer withdrew consent."""
        if self._revoked.is_set():
            raise ConsentRevoked(self.capability)

    def _revoke(self) -> None:
        self._revoked.set()


#: Who answered, in the log: remote input is dropped while a question is open, so an
#: answer can only come from this computer's own mouse or keyboard (or console).
ANSWERED_HERE = "(Answered at this computer.)"

RevocationCallback = Callable[[str, str], None]


class ConsentGate:
    """Asks the customer, remembers the answer for this session, revokes on request."""

    def __init__(self, ui: ConsentAsker, log: AgentLog) -> None:
        self._ui = ui
        self._log = log
        self._granted: dict[str, Authorization] = {}
        self._requires: dict[str, tuple[str, ...]] = {}
        self._declines: dict[str, int] = {}
        self._prompt_lock = asyncio.Lock()
        self._on_revoke: list[RevocationCallback] = []
        #: In an unattended session, what the owner's policy allows (rule 9); else None.
        self._policy: frozenset[str] | None = None
        self._stopped_in_unattended: set[str] = set()
        #: Whether a question is open; remote control reads it (see :class:`TrustedPath`).
        self.trusted_path = TrustedPath()
        attach = getattr(ui, "attach_trusted_path", None)
        if attach is not None:
            attach(self.trusted_path)

    def on_revoke(self, callback: RevocationCallback) -> None:
        """Call ``callback(capability, reason)`` whenever a capability is revoked."""
        self._on_revoke.append(callback)

    def granted(self) -> list[str]:
        return sorted(self._granted)

    async def ask_unattended(self, question: UnattendedQuestion) -> tuple[bool, bool]:
        """Ask whoever is signed in (rule 9): ``(allowed, answered)``.

        The UI's optional ``ask_unattended(question)`` returns True, False, or None when
        nobody can be asked (then, for a countdown, the time still runs out before the
        policy's answer applies). No answer within ``question.seconds`` is the policy's
        answer (``question.allow_on_silence``). The question is on the trusted path.
        """
        ask = getattr(self._ui, "ask_unattended", None)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + question.seconds
        answer: bool | None = None
        async with self._prompt_lock:
            with self.trusted_path.asking():
                try:
                    async with asyncio.timeout_at(deadline):
                        if ask is not None:
                            answer = await ask(question)
                        if answer is None and question.allow_on_silence:
                            await asyncio.sleep(question.seconds)  # the countdown runs out
                except (TimeoutError, EOFError, OSError):
                    answer = None
        if answer is None:
            return question.allow_on_silence, False
        return bool(answer), True

    @property
    def follows_policy(self) -> bool:
        """Whether the owner's policy answers instead of the customer (rule 9)."""
        return self._policy is not None

    def follow_policy(self, allowed: Iterable[str]) -> None:
        """From now on the owner's policy answers instead of the customer (rule 9)."""
        self._policy = frozenset(allowed)

    def _by_policy(self, capability: ConsentSubject, remember: bool) -> Authorization:
        """Allow ``capability`` if the owner's policy lists it (rule 9); else refuse."""
        assert self._policy is not None
        if capability.name in self._stopped_in_unattended:
            raise ConsentDeclined(
                capability.name,
                f"The person at this computer stopped {capability.name}; it stays stopped "
                "for the rest of this unattended session.",
            )
        if capability.name not in self._policy:
            self._log.write(f"Refused by the owner's unattended policy: {capability.title}.")
            raise ConsentDeclined(
                capability.name,
                f"This computer's policy does not allow {capability.name} in unattended "
                "sessions; ask its owner, or the organisation to change the policy.",
            )
        for needed in capability.requires:
            if needed not in self._granted:
                raise ConsentDeclined(
                    capability.name, f"{capability.title} needs {needed} to be allowed first."
                )
        if not remember:
            self._refuse_if_running(capability)
        return self._grant(
            Authorization._mint(capability.name),
            capability,
            f"Allowed by the owner's unattended policy: {capability.title}.",
        )

    async def authorize(self, capability: ConsentSubject, detail: str = "") -> Authorization:
        """Return a live authorization, asking the customer if needed.

        Raises :class:`ConsentDeclined` if the customer says no (or cannot answer).
        """
        existing = self._granted.get(capability.name)
        if existing is not None and existing.active:
            return existing
        if self._policy is not None:
            return self._by_policy(capability, remember=True)
        for needed in capability.requires:
            if needed not in self._granted:
                raise ConsentDeclined(
                    capability.name,
                    f"{capability.title} needs {needed} to be allowed first.",
                )
        self._refuse_if_declined_too_often(capability)
        async with self._prompt_lock:  # one question on screen at a time
            existing = self._granted.get(capability.name)
            if existing is not None and existing.active:
                return existing
            choice: str | None = None
            try:
                with self.trusted_path.asking():
                    allowed = await self._ui.ask_consent(capability, detail)
                    if allowed and capability.choice is not None:
                        choice = await self._ask_choice(capability)
                        allowed = choice is not None
            except (EOFError, OSError):
                allowed = False
        if not allowed:
            self._declined(capability)
        suffix = f" ({choice})." if choice is not None else "."
        return self._grant(
            Authorization._mint(capability.name, choice),
            capability,
            f"You allowed: {capability.title}{suffix} {ANSWERED_HERE}",
        )

    async def _ask_choice(self, capability: ConsentSubject) -> str | None:
        """The customer's checked answer to the follow-up question; None means no.

        A UI without ``ask_choice`` (see :class:`agent.ui.CustomerUI`) gets the default.
        """
        choice = capability.choice
        assert choice is not None
        default = choice.default()
        ask = getattr(self._ui, "ask_choice", None)
        for _ in range(MAX_DECLINES):
            answer = default if ask is None else await ask(capability, choice.question, default)
            if answer is None:
                return None
            try:
                return choice.check(answer or default)
            except ValueError as exc:
                self._ui.notify(str(exc))
                if ask is None:
                    return None
        return None

    async def authorize_run(self, capability: ConsentSubject, detail: str = "") -> Authorization:
        """Ask the customer for ONE run of ``capability``; the answer is never remembered.

        ``capability`` may be a per-run view (its title and description say exactly what
        will run). Raises :class:`ConsentDeclined` if the customer says no, cannot answer,
        has declined three times, or a run of the same capability is still going.
        """
        if self._policy is not None:
            return self._by_policy(capability, remember=False)
        self._refuse_if_running(capability)
        self._refuse_if_declined_too_often(capability)
        async with self._prompt_lock:  # one question on screen at a time
            try:
                with self.trusted_path.asking():
                    allowed = await self._ui.ask_consent(capability, detail)
            except (EOFError, OSError):
                allowed = False
        if not allowed:
            self._declined(capability)
        self._refuse_if_running(capability)  # another run was allowed while we asked
        return self._grant(
            Authorization._mint(capability.name),
            capability,
            f"You allowed (this run only): {capability.title}. {ANSWERED_HERE}",
        )

    def _refuse_if_running(self, capability: ConsentSubject) -> None:
        if capability.name in self._granted:
            raise ConsentDeclined(
                capability.name,
                f"Another {capability.name} run is still going; wait for it to finish.",
            )

    def _refuse_if_declined_too_often(self, capability: ConsentSubject) -> None:
        if self._declines.get(capability.name, 0) >= MAX_DECLINES:
            raise ConsentDeclined(
                capability.name,
                f"The customer declined {capability.name} {MAX_DECLINES} times; "
                "they will not be asked again in this session.",
            )

    def _declined(self, capability: ConsentSubject) -> NoReturn:
        self._declines[capability.name] = self._declines.get(capability.name, 0) + 1
        self._log.write(f"You declined: {capability.title}.")
        raise ConsentDeclined(capability.name)

    def _grant(
        self, auth: Authorization, capability: ConsentSubject, log_line: str
    ) -> Authorization:
        self._granted[capability.name] = auth
        self._requires[capability.name] = capability.requires
        self._log.write(log_line)
        self._ui.show_active(self.granted())
        return auth

    def release(self, auth: Authorization) -> None:
        """A one-run authorization's run is over: it stops counting as granted."""
        if self._granted.get(auth.capability) is auth:
            del self._granted[auth.capability]
            self._requires.pop(auth.capability, None)
            auth._revoke()
            self._ui.show_active(self.granted())

    def revoke(self, name: str, reason: str = "stopped by the customer") -> bool:
        """Withdraw consent for ``name`` (and anything that requires it) at once."""
        auth = self._granted.pop(name, None)
        if auth is None:
            return False
        auth._revoke()
        if self._policy is not None:
            self._stopped_in_unattended.add(name)
        self._log.write(f"You stopped: {name} ({reason}).")
        for callback in list(self._on_revoke):
            callback(name, reason)
        # Whatever needed this capability stops with it (control cannot outlive view).
        for other, needs in list(self._requires.items()):
            if name in needs:
                self.revoke(other, f"{name} was stopped")
        self._ui.show_active(self.granted())
        return True

    def revoke_all(self, reason: str) -> None:
        for name in list(self._granted):
            self.revoke(name, reason)


def authorize_failure_action(policy_allows: bool, fix_id: str) -> Authorization:
    """Rule 10: one run of the check's fix, because the accepted policy allows it.
    The caller passes the flag of a policy it verified against the pinned key."""
    if not policy_allows:
        raise ConsentDeclined(
            "fixes",
            f"The policy this computer's owner accepted does not let the fix {fix_id} run "
            "by itself; it was not run.",
        )
    return Authorization._mint("fixes")
