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
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import ConsentDeclined, ConsentRevoked

if TYPE_CHECKING:
    from .audit import AgentLog
    from .capabilities import Capability
    from .ui import CustomerUI

MAX_DECLINES = 3


class Authorization:
    """Proof that the customer allowed ``capability``; revoked the moment they withdraw.

    Thread-safe to check: handlers running in worker threads call :meth:`check`.
    """

    __slots__ = ("capability", "granted_at", "_revoked")

    capability: str
    granted_at: float
    _revoked: threading.Event

    def __init__(self) -> None:
        raise TypeError("only the consent gate can authorise a capability")

    @classmethod
    def _mint(cls, capability: str) -> Authorization:
        auth: Authorization = object.__new__(cls)
        auth.capability = capability
        auth.granted_at = time.time()
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


RevocationCallback = Callable[[str, str], None]


class ConsentGate:
    """Asks the customer, remembers the answer for this session, revokes on request."""

    def __init__(self, ui: CustomerUI, log: AgentLog) -> None:
        self._ui = ui
        self._log = log
        self._granted: dict[str, Authorization] = {}
        self._requires: dict[str, tuple[str, ...]] = {}
        self._declines: dict[str, int] = {}
        self._prompt_lock = asyncio.Lock()
        self._on_revoke: list[RevocationCallback] = []

    def on_revoke(self, callback: RevocationCallback) -> None:
        """Call ``callback(capability, reason)`` whenever a capability is revoked."""
        self._on_revoke.append(callback)

    def granted(self) -> list[str]:
        return sorted(self._granted)

    async def authorize(self, capability: Capability, detail: str = "") -> Authorization:
        """Return a live authorization, asking the customer if needed.

        Raises :class:`ConsentDeclined` if the customer says no (or cannot answer).
        """
        existing = self._granted.get(capability.name)
        if existing is not None and existing.active:
            return existing
        for needed in capability.requires:
            if needed not in self._granted:
                raise ConsentDeclined(
                    capability.name,
                    f"{capability.title} needs {needed} to be allowed first.",
                )
        if self._declines.get(capability.name, 0) >= MAX_DECLINES:
            raise ConsentDeclined(
                capability.name,
                f"The customer declined {capability.name} {MAX_DECLINES} times; "
                "they will not be asked again in this session.",
            )
        async with self._prompt_lock:  # one question on screen at a time
            existing = self._granted.get(capability.name)
            if existing is not None and existing.active:
                return existing
            try:
                allowed = await self._ui.ask_consent(capability, detail)
            except (EOFError, OSError):
                allowed = False
        if not allowed:
            self._declines[capability.name] = self._declines.get(capability.name, 0) + 1
            self._log.write(f"You declined: {capability.title}.")
            raise ConsentDeclined(capability.name)
        auth = Authorization._mint(capability.name)
        self._granted[capability.name] = auth
        self._requires[capability.name] = capability.requires
        self._log.write(f"You allowed: {capability.title}.")
        self._ui.show_active(self.granted())
        return auth

    async def authorize_run(self, capability: Capability, detail: str = "") -> Authorization:
        """Ask the customer for ONE run of ``capability``; the answer is never remembered.

        ``capability`` may be a per-run view (its title and description say exactly what
        will run). Raises :class:`ConsentDeclined` if the customer says no, cannot answer,
        has declined three times, or a run of the same capability is still going.
        """
        if capability.name in self._granted:
            raise ConsentDeclined(
                capability.name,
                f"Another {capability.name} run is still going; wait for it to finish.",
            )
        if self._declines.get(capability.name, 0) >= MAX_DECLINES:
            raise ConsentDeclined(
                capability.name,
                f"The customer declined {capability.name} {MAX_DECLINES} times; "
                "they will not be asked again in this session.",
            )
        async with self._prompt_lock:  # one question on screen at a time
            try:
                allowed = await self._ui.ask_consent(capability, detail)
            except (EOFError, OSError):
                allowed = False
        if not allowed:
            self._declines[capability.name] = self._declines.get(capability.name, 0) + 1
            self._log.write(f"You declined: {capability.title}.")
            raise ConsentDeclined(capability.name)
        if capability.name in self._granted:  # another run was allowed while we asked
            raise ConsentDeclined(
                capability.name,
                f"Another {capability.name} run is still going; wait for it to finish.",
            )
        auth = Authorization._mint(capability.name)
        self._granted[capability.name] = auth
        self._requires[capability.name] = capability.requires
        self._log.write(f"You allowed (this run only): {capability.title}.")
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
