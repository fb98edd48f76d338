"""Self-help first: while a help request waits in the queue, the agent looks for a
known problem itself and offers the organisation's signed fixes for it.

The flow (``puente-agent --request TEXT``, and the window's Get help):

1. The request is filed; the customer keeps their place in the queue whatever
   happens here.
2. The agent fetches what the organisation published for self-help from the relay
   (``GET /help/requests/{id}/self-help``, with the request's token): signed fix
   bundles, an optional signed rule book, and the organisation's past cases (how
   often each fix solved each problem). A relay that cannot be reached skips
   self-help with one plain sentence; the request stays filed.
3. Nothing the relay hands over is trusted: every bundle is checked by the
   ``fixes`` capability's own :func:`agent.capabilities.fixes.prepare` against the
   pinned organisation key (unsigned, another organisation's, altered, expired, made
   for another system, older than a version already seen: never offered), and the
   rule book is used only if the pinned key signed it (the agent's built-in rules
   otherwise).
4. Diagnostics are collected here and triaged here (:mod:`protocol.triage`); nothing
   of them leaves the computer. Each verified fix a finding suggests becomes an
   :class:`Offer`, ranked by past cases (``(solved + 1) / (runs + 2)``).
5. The customer chooses one (or none). It runs exactly as a technician's fix does:
   the consent gate asks for that run (:meth:`agent.consent.ConsentGate.authorize_run`)
   showing what it does and the script; a fix with a preview asks again after it;
   the run and its output go to the customer's audit log; the capability's handler
   (:func:`agent.capabilities.fixes.handle`) runs the verified bytes.
6. "That fixed it": the relay records the outcome, closes the request as solved and
   writes it on the ticket, which it resolves; no technician is involved. "Still
   broken" (or a failed run, after which the fix's undo script is offered, again
   with consent): the outcome is recorded and the customer keeps their place.

The customer's side of this is a :class:`SelfHelpPrompter`: the console one is
:class:`ConsolePrompter`; a window implements the same protocol. Its methods are the
only questions asked, and every text in an :class:`Offer` that came from outside
(the organisation's fix titles and descriptions, evidence from diagnostics) is to be
shown through :func:`protocol.safe_text.safe_text`, as the console does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from agent.i18n import t

if TYPE_CHECKING:
    from agent.capabilities.base import ConsentPrompt
    from agent.capabilities.fixes import FixRequest


# The customer's side ----------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """One verified fix offered for one problem found on this computer.

    ``title`` and ``description`` are the organisation's own signed words (from the
    fix's manifest); ``problem_title`` says in the customer's language what was found;
    ``evidence`` is what diagnostics showed (text from this computer: show it through
    ``safe_text``). ``solved`` of ``runs`` is the organisation's record with this fix
    for this problem; :attr:`record` says it in words.
    """

    fix_id: str
    version: str
    title: str
    description: str
    problem: str
    problem_title: str
    evidence: tuple[str, ...]
    solved: int
    runs: int
    risk: str
    needs_admin: bool
    timeout: int
    #: The checked request the run uses (the fixes capability's own; not for display).
    request: FixRequest = field(repr=False, compare=False)

    @property
    def record(self) -> str:
        """ "solved 7 of 9 past cases", or that there are none yet, in the customer's
        language."""
        if not self.runs:
            return t("selfhelp.no_record")
        return t("selfhelp.record", solved=self.solved, runs=self.runs)


class SelfHelpPrompter(Protocol):
    """What self-help asks the customer, and where it tells them what happens.

    Implemented by :class:`ConsolePrompter` and by the agent's window. Rules for an
    implementation:

    * Every question is the customer's own: ask only on the agent's trusted path (its
      own console or window), never from anything the relay or a technician sends.
    * No answer (input closed, window shut) is a no: ``choose`` returns None,
      ``confirm_run`` and ``fixed`` return False.
    * Outside text (:class:`Offer` fields, ``ConsentPrompt`` texts, ``progress`` lines
      from a fix's output) is shown through ``protocol.safe_text.safe_text``.

    The methods are called one at a time, from the agent's event loop.
    """

    async def choose(self, offers: Sequence[Offer]) -> Offer | None:
        """Show the offers (best first: each one's title, what it does from
        ``description``, the problem found with its evidence, and :attr:`Offer.record`)
        and return the one the customer wants to run, or None to skip self-help and
        wait for a technician."""
        ...

    async def confirm_run(self, offer: Offer, prompt: ConsentPrompt) -> bool:
        """The per-run consent question for ``offer``, asked through the consent gate
        exactly as for a technician's fix: ``prompt`` has the title, description,
        detail (who signed it, the values, risk, time limit) and the documents the
        customer may read first (the script, the undo script). Also asked again
        after a preview, and before an undo after a failed run (the prompt says
        which). True only for a clear yes."""
        ...

    async def fixed(self, offer: Offer) -> bool:
        """After ``offer`` ran: True for "That fixed it" (the request is closed as
        solved), False for "Still broken" (the customer keeps their place)."""
        ...

    def progress(self, text: str) -> None:
        """Show one line of what is happening (a fix's output, its result, what
        self-help does next). Must not block."""
        ...
