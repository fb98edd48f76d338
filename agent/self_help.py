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
:class:`ConsolePrompter`; a window implements the same protocol and, once the request
is filed, awaits ``run_self_help(base, request_id, token, trust, prompter,
ssl_context=..., log_dir=...)`` (True: solved and closed; False: keep waiting). Its methods are the
only questions asked, and every text in an :class:`Offer` that came from outside
(the organisation's fix titles and descriptions, evidence from diagnostics) is to be
shown through :func:`protocol.safe_text.safe_text`, as the console does.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent.audit import AgentLog
from agent.capabilities import fixes
from agent.capabilities.base import (
    CapabilityCall,
    ConsentPrompt,
    PreparedRequest,
    RequestContext,
)
from agent.capabilities.fixes import FixRequest
from agent.consent import ConsentGate, ConsentSubject, TrustedPath
from agent.errors import AgentError, ConsentDeclined, RequestRefused
from agent.help_http import HelpRequestError, call, in_daemon_thread
from agent.i18n import CATALOG, t
from agent.trust import AgentTrust
from protocol.errors import TrustError
from protocol.fixbundle import read_bundle, verify_bundle, version_key
from protocol.past_cases import parse_history
from protocol.rulebook import verify_rule_book
from protocol.safe_text import safe_text
from protocol.triage import Finding, Rule, load_rules, rank, triage

log = logging.getLogger("agent.self_help")

#: Most bundles read from one answer of the relay (an organisation publishes a few).
MAX_BUNDLES = 200


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

    The methods are called one at a time, from the agent's event loop. Optional, as
    for :class:`agent.ui.CustomerUI`: ``attach_trusted_path(path)`` gets the consent
    gate's :class:`agent.consent.TrustedPath` (a window names itself in it).
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


# Finding offers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """What the relay handed over for self-help, not yet trusted."""

    bundles: tuple[bytes, ...]
    rule_book: bytes | None
    history: dict[str, dict[str, tuple[int, int]]]


def parse_published(answer: Any) -> Published:
    """The relay's answer to ``GET /help/requests/{id}/self-help``, read defensively:
    what is not well formed is left out (and would not verify anyway)."""
    bundles: list[bytes] = []
    entries = answer.get("fixes") if isinstance(answer, dict) else None
    for entry in entries[:MAX_BUNDLES] if isinstance(entries, list) else []:
        encoded = entry.get("bundle") if isinstance(entry, dict) else None
        if isinstance(encoded, str) and len(encoded) <= 2 * fixes.MAX_BUNDLE_SIZE:
            try:
                bundles.append(base64.b64decode(encoded, validate=True))
            except (binascii.Error, ValueError):
                continue
    rules = answer.get("rules") if isinstance(answer, dict) else None
    past = answer.get("past_cases") if isinstance(answer, dict) else None
    return Published(
        tuple(bundles),
        rules.encode() if isinstance(rules, str) else None,
        parse_history(past.get("problems") if isinstance(past, dict) else None),
    )


def problem_title(finding: Finding) -> str:
    """What was found, in the customer's words: the catalogue's sentence for a known
    problem, else the rule's own title (the organisation's words)."""
    key = f"selfhelp.problem.{finding.problem}"
    return t(key) if key in CATALOG else finding.title


async def find_offers(
    published: Published,
    diagnostics: dict[str, Any],
    trust: AgentTrust,
    audit: AgentLog,
    notify: Callable[[str], None],
) -> list[Offer]:
    """The offers for this computer: verified fixes for what triage finds, best first.

    Every bundle goes through :func:`agent.capabilities.fixes.prepare` (the same checks
    as a technician's fix); one that fails is never offered, and the customer's log
    says why. The rule book is used only if the pinned key signed it.
    """
    rules: list[Rule] = load_rules()
    if published.rule_book is not None:
        try:
            assert trust.organisation_key is not None
            rules = rules + verify_rule_book(published.rule_book, trust.organisation_key).rules()
        except TrustError as exc:
            audit.write(f"Self-help: the organisation's rule book was not used: {exc}")
            notify(t("selfhelp.rules_refused"))
    findings = rank(triage(diagnostics, rules), published.history)
    assert trust.organisation_key is not None
    verified: dict[str, bytes] = {}
    for data in published.bundles:
        # Which fix each bundle is, by its signed manifest (never the relay's label);
        # prepare() below checks everything again, with the values, before an offer.
        try:
            fix = verify_bundle(data, trust.organisation_key, trust.now(), trust.platform)
        except TrustError as exc:
            audit.write(f"Self-help: a fix from the relay was not offered: {exc}")
            continue
        kept = verified.get(fix.manifest.id)
        if kept is None or _newer(fix.manifest.version, kept):
            verified[fix.manifest.id] = data
    offers: list[Offer] = []
    for finding in findings:
        for suggestion in finding.suggestions:
            bundle = verified.get(suggestion.fix_id)
            if bundle is None or any(o.fix_id == suggestion.fix_id for o in offers):
                continue
            args = {"bundle": bundle, "parameters": dict(suggestion.params)}
            try:
                prepared = await fixes.prepare(RequestContext("run", args, trust))
            except RequestRefused as exc:
                audit.write(f"Self-help: {suggestion.fix_id} was not offered: {exc}")
                continue
            offers.append(_offer(finding, suggestion.solved, suggestion.runs, prepared))
    # Best record first; among equals the more severe problem (findings come that way).
    offers.sort(key=lambda o: -(o.solved + 1) / (o.runs + 2))
    return offers


def _newer(version: str, kept: bytes) -> bool:
    return version_key(version) > version_key(read_bundle(kept).manifest.version)


def _offer(finding: Finding, solved: int, runs: int, prepared: PreparedRequest) -> Offer:
    request: FixRequest = dataclasses.replace(prepared.state, self_help=True)
    manifest = request.fix.manifest
    return Offer(
        fix_id=manifest.id,
        version=manifest.version,
        title=manifest.title,
        description=manifest.description,
        problem=finding.problem,
        problem_title=problem_title(finding),
        evidence=tuple(finding.evidence[:5]),
        solved=solved,
        runs=runs,
        risk=manifest.risk,
        needs_admin=manifest.needs_admin,
        timeout=manifest.timeout,
        request=request,
    )


# Running one -------------------------------------------------------------------------------


class _AskThroughPrompter:
    """The consent gate's asker for self-help: the gate's per-run question goes to the
    prompter's ``confirm_run`` for the offer being run."""

    def __init__(self, prompter: SelfHelpPrompter, offer: Offer) -> None:
        self._prompter = prompter
        self._offer = offer

    def attach_trusted_path(self, path: TrustedPath) -> None:
        attach = getattr(self._prompter, "attach_trusted_path", None)
        if attach is not None:
            attach(path)

    async def ask_consent(self, capability: ConsentSubject, detail: str) -> bool:
        prompt = ConsentPrompt(
            capability.title, capability.description, detail, capability.documents
        )
        return await self._prompter.confirm_run(self._offer, prompt)

    def show_active(self, granted: list[str]) -> None:
        pass  # nothing runs in the background: the prompter hears of each step itself

    def notify(self, text: str) -> None:
        self._prompter.progress(text)


@dataclass(frozen=True)
class RunResult:
    """How a self-help run ended: ``ran`` (it ran to the end), its exit status, and
    whether it succeeded (exit 0, within its time limit)."""

    ran: bool
    exit_status: int | None
    succeeded: bool


async def run_offer(
    offer: Offer, trust: AgentTrust, prompter: SelfHelpPrompter, audit: AgentLog
) -> RunResult:
    """Run ``offer`` as the ``fixes`` capability runs a technician's fix: asked for this
    run through the consent gate, the handler's preview, output and log; after a run
    that failed, its undo script (if it has one) is offered the same way."""
    gate = ConsentGate(_AskThroughPrompter(prompter, offer), audit)
    capability = fixes.fixes_capability()
    request = offer.request
    args = {"bundle": b"", "parameters": dict(request.values)}

    async def once(action: str, prepared: FixRequest, prompt: ConsentPrompt) -> dict[str, Any]:
        async def confirm(again: ConsentPrompt) -> Any:
            return await gate.authorize_run(_view(capability, again), again.detail)

        auth = await gate.authorize_run(_view(capability, prompt), prompt.detail)
        audit.write(f"Self-help: you started {offer.fix_id} {offer.version} ({action}).")
        call = CapabilityCall(
            action,
            args,
            auth,
            _no_progress,
            audit,
            prepared=prepared,
            confirm=confirm,
            release=gate.release,
            notify=prompter.progress,
        )
        try:
            return await fixes.handle(call)
        finally:
            gate.release(auth)

    try:
        result = await once("run", request, fixes.consent_prompt(request, "run"))
    except ConsentDeclined:
        prompter.progress(t("selfhelp.not_run", title=safe_text(offer.title, 200)))
        return RunResult(False, None, False)
    except AgentError as exc:
        audit.write(f"Self-help: {offer.fix_id} could not run: {exc}")
        prompter.progress(t("selfhelp.could_not_run", detail=safe_text(str(exc), 400)))
        return RunResult(False, None, False)
    if result.get("stopped_after_preview"):
        return RunResult(False, None, False)
    exit_status = result.get("exit_status")
    if exit_status == 0 and not result.get("timed_out"):
        return RunResult(True, 0, True)
    prompter.progress(t("selfhelp.failed", title=safe_text(offer.title, 200)))
    if request.fix.undo is not None:
        await _undo(offer, trust, prompter, audit, once)
    return RunResult(True, exit_status if isinstance(exit_status, int) else None, False)


async def _undo(
    offer: Offer,
    trust: AgentTrust,
    prompter: SelfHelpPrompter,
    audit: AgentLog,
    once: Callable[[str, FixRequest, ConsentPrompt], Any],
) -> None:
    """Offer the failed fix's undo script, with the same per-run consent."""
    request = offer.request
    undo = dataclasses.replace(request, action="undo")
    try:
        await once("undo", undo, fixes.consent_prompt(undo, "undo"))
    except ConsentDeclined:
        prompter.progress(t("selfhelp.undo_skipped"))
    except AgentError as exc:
        audit.write(f"Self-help: the undo of {offer.fix_id} could not run: {exc}")
        prompter.progress(t("selfhelp.could_not_run", detail=safe_text(str(exc), 400)))


def _view(capability: fixes.Capability, prompt: ConsentPrompt) -> fixes.Capability:
    """The capability as the customer is asked about it for one run."""
    return dataclasses.replace(
        capability, title=prompt.title, description=prompt.description, documents=prompt.documents
    )


async def _no_progress(data: dict[str, Any]) -> None:
    """No technician follows a self-help run: its output goes to the prompter only."""


# The whole of self-help --------------------------------------------------------------------


async def run_self_help(
    base: str,
    request_id: str,
    token: str,
    trust: AgentTrust,
    prompter: SelfHelpPrompter,
    *,
    ssl_context: ssl.SSLContext | None = None,
    log_dir: Path | None = None,
    collect: Callable[[], dict[str, Any]] | None = None,
) -> bool:
    """Self-help for a filed request (the module's steps 2 to 6); True once the
    request is closed as solved, False when the customer keeps waiting.

    ``base`` is the relay's HTTP address, ``token`` the request's. Never raises for
    what the relay or the network does: each problem is one sentence to the prompter.
    """
    path = f"/help/requests/{request_id}"
    try:
        status, answer = await in_daemon_thread(
            lambda: call(base, "GET", path + "/self-help", None, token, ssl_context)
        )
    except HelpRequestError:
        prompter.progress(t("selfhelp.unreachable"))
        return False
    if status != 200:
        message = answer.get("message", status) if isinstance(answer, dict) else status
        prompter.progress(t("selfhelp.unavailable", detail=safe_text(str(message), 300)))
        return False
    published = parse_published(answer)
    if not published.bundles:
        return False  # the organisation offers no self-help
    audit = AgentLog.for_session(log_dir, f"self-help-{request_id[:8]}")
    try:
        prompter.progress(t("selfhelp.looking"))
        if collect is None:
            from agent.capabilities.diagnostics.collection import collect as collect_here

            collect = collect_here
        diagnostics = await in_daemon_thread(collect)
        offers = await find_offers(published, diagnostics, trust, audit, prompter.progress)
        audit.write(
            "Self-help found: "
            + (", ".join(f"{o.fix_id} for {o.problem}" for o in offers) or "nothing to offer")
            + "."
        )
        if not offers:
            prompter.progress(t("selfhelp.nothing"))
            return False
        while offers:
            chosen = await prompter.choose(offers)
            if chosen is None:
                audit.write("Self-help: you chose to wait for a technician.")
                prompter.progress(t("selfhelp.waiting"))
                return False
            offers = [o for o in offers if o is not chosen]
            done = await run_offer(chosen, trust, prompter, audit)
            if not done.ran:
                continue
            fixed = done.succeeded and await prompter.fixed(chosen)
            audit.write(
                f"Self-help: after {chosen.fix_id} you said "
                + ("it fixed the problem." if fixed else "it is still broken.")
            )
            closed = await _report(base, path, token, ssl_context, chosen, done, fixed, prompter)
            if closed is None:
                return False  # the relay did not hear it, or a technician took the request
            if closed:
                prompter.progress(t("selfhelp.solved"))
                return True
            prompter.progress(t("selfhelp.place_kept"))
        return False
    finally:
        audit.close()


async def _report(
    base: str,
    path: str,
    token: str,
    ssl_context: ssl.SSLContext | None,
    offer: Offer,
    done: RunResult,
    fixed: bool,
    prompter: SelfHelpPrompter,
) -> bool | None:
    """Tell the relay how the run ended: True if the request is now solved, False if
    it still waits, None if the relay did not take it (the customer is told)."""
    body = {
        "problem": offer.problem,
        "fix": offer.fix_id,
        "version": offer.version,
        "exit_status": done.exit_status,
        "fixed": fixed,
    }
    try:
        status, answer = await in_daemon_thread(
            lambda: call(base, "POST", path + "/outcomes", body, token, ssl_context)
        )
    except HelpRequestError:
        prompter.progress(t("selfhelp.not_reported"))
        return None
    if status == 409:
        prompter.progress(t("selfhelp.taken"))
        return None
    if status != 201 or not isinstance(answer, dict):
        log.warning("the relay refused a self-help outcome: %s %s", status, answer)
        prompter.progress(t("selfhelp.not_reported"))
        return None
    return answer.get("state") == "solved"


# The console -------------------------------------------------------------------------------


class ConsolePrompter:
    """Self-help's questions on the agent's own console, as ``--request`` asks the
    rest (``ask`` reads one line the customer types; end of input is a no)."""

    def __init__(self, ask: Callable[[str], str] = input, say: Callable[[str], None] = print):
        self._ask = ask
        self._say = say

    def _line(self, text: str = "") -> None:
        self._say(text)

    async def _answer(self) -> str | None:
        try:
            return await in_daemon_thread(lambda: self._ask(""))
        except EOFError:
            return None

    async def choose(self, offers: Sequence[Offer]) -> Offer | None:
        self._line("")
        self._line(t("selfhelp.offers_intro"))
        for number, offer in enumerate(offers, start=1):
            self._line(
                t(
                    "selfhelp.offer",
                    number=number,
                    title=safe_text(offer.title, 200),
                    problem=safe_text(offer.problem_title, 200),
                )
            )
            for evidence in offer.evidence[:3]:
                self._line("       " + safe_text(evidence, 300))
            for line in offer.description.splitlines()[:6]:
                self._line("       " + safe_text(line, 300))
            self._line("       " + offer.record)
        while True:
            self._line(t("selfhelp.choose_prompt", last=len(offers)))
            answer = await self._answer()
            word = (answer or "").strip()
            if not word:
                return None
            if word.isdigit() and 1 <= int(word) <= len(offers):
                return offers[int(word) - 1]
            self._line(t("selfhelp.choose_again", last=len(offers)))

    async def confirm_run(self, offer: Offer, prompt: ConsentPrompt) -> bool:
        from agent.ui import YES, consent_lines, document_lines

        view = _view(fixes.fixes_capability(), prompt)
        heading = t("selfhelp.you_chose", title=safe_text(prompt.title, 200))
        for line in consent_lines(view, prompt.detail, heading):
            self._line(line)
        documents = dict(prompt.documents)
        title = safe_text(prompt.title, 200)
        while True:
            self._line(t("consent.question", title=title))
            answer = await self._answer()
            word = (answer or "").strip().lower().removeprefix("show ").strip()
            if answer is not None and word in documents:
                for line in document_lines(word, documents[word]):
                    self._line(line)
                continue
            allowed = answer is not None and answer.strip().lower() in YES
            self._line(t("consent.allowed" if allowed else "consent.declined", title=title))
            return allowed

    async def fixed(self, offer: Offer) -> bool:
        self._line(t("selfhelp.fixed_question", title=safe_text(offer.title, 200)))
        answer = await self._answer()
        from agent.ui import YES

        return answer is not None and answer.strip().lower() in YES

    def progress(self, text: str) -> None:
        self._line(safe_text(text, 4000, multiline=True))
