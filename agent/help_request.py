"""Asking for help without a code: the customer files a help request, is offered
self-help first (:mod:`agent.self_help`: the organisation's verified fixes for what
triage finds here), waits in the queue with a live position and estimate, then joins
the session the relay names when a technician accepts (``puente-agent --request TEXT
[--category C]``).

Only an agent that pins an organisation key may do this (the category list is
checked against that key). The wait is a long-poll: the relay holds each ``GET``
until the request changes (or 25 s), so nothing spins. Closing the agent while
waiting (Ctrl-C, SIGTERM) withdraws the request, and the ticket says so.

The session pairs without a code (:class:`agent.app.CodeLessJoin`): the relay only
names the rendezvous; the technician proves their organisation certificate in the key
exchange itself and the agent checks it against the pinned key, so the relay stays
blind and cannot stand in for the technician.

Two front ends share everything here but the drawing: the console
(:func:`request_help`) and the window's "Get help" (:mod:`agent.tk_help`). The steps
are UI-neutral functions: :func:`prepare_request` (pinned key, verified categories),
:func:`check_description`, :func:`summary_lines` (what the customer reviews before it
is attached), :func:`file_request`, and :func:`follow_request`, which runs self-help
with the front end's :class:`agent.self_help.SelfHelpPrompter`, then tells a
:class:`RequestWatcher` what to show while the request waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agent.help_http import HelpRequestError as HelpRequestError
from agent.help_http import call as _call
from agent.help_http import in_daemon_thread as _in_daemon_thread
from agent.i18n import current, t
from agent.settings import BakedSettings
from link.relay_address import http_url
from protocol.categories import MAX_DESCRIPTION, CategoryList, verify_category_list
from protocol.errors import TrustError
from protocol.safe_text import safe_text

if TYPE_CHECKING:
    from agent.self_help import SelfHelpPrompter
    from agent.trust import AgentTrust

#: Seconds a long-poll may take before the agent gives up on that one answer.
POLL_TIMEOUT = 40.0
#: Longest diagnostics summary sent with a request (the relay's limit).
MAX_DIGEST = 2000
#: The relay answers stopped coming: seconds between tries.
RETRY_SECONDS = 3.0


def load_categories(
    relay: str, key: Any, key_id: str, ssl_context: ssl.SSLContext | None
) -> CategoryList:
    status, raw = _call(
        http_url(relay), "GET", f"/help/categories/{key_id}", None, None, ssl_context
    )
    if status == 404:
        raise HelpRequestError(t("request.no_queue"))
    if status != 200:
        raise HelpRequestError(
            t("request.refused", detail=safe_text(str(raw.get("message", status))))
        )
    try:
        return verify_category_list(raw, key)
    except TrustError as exc:
        raise HelpRequestError(t("request.bad_categories", detail=str(exc))) from None


@dataclass(frozen=True)
class PreparedRequest:
    """What filing a request needs, checked: the relay, its TLS context, the pinned
    organisation key and the organisation's category list verified against it."""

    relay: str
    ssl_context: ssl.SSLContext | None
    trust: AgentTrust
    categories: CategoryList

    @property
    def base(self) -> str:
        return http_url(self.relay)


async def prepare_request(
    relay: str, ca_file: str | None, org_key: Path | BakedSettings | None
) -> PreparedRequest:
    """Load the pinned key and the verified categories; HelpRequestError (a sentence for
    the customer) when this agent cannot ask for help: no pinned key (use a code), no
    list at the relay, a list the pinned key did not sign, the relay out of reach."""
    from agent.app import load_trust, ssl_context_for
    from agent.errors import TrustSetupError
    from link.errors import LinkError

    try:
        ssl_context = ssl_context_for(ca_file)
        trust = await load_trust(org_key, relay, ssl_context)
    except (LinkError, TrustSetupError) as exc:
        raise HelpRequestError(t("error.trust_setup", detail=str(exc))) from None
    if not trust.pinned:
        raise HelpRequestError(t("request.no_org_key"))
    listing = await asyncio.to_thread(
        load_categories, relay, trust.organisation_key, trust.key_id, ssl_context
    )
    return PreparedRequest(relay, ssl_context, trust, listing)


def description_line(text: str) -> str:
    """The description as it is sent: one line, each run of spaces and line breaks made
    one space (what the form counts against :data:`MAX_DESCRIPTION`)."""
    return " ".join(text.split())


def check_description(text: str) -> str:
    """The description to send (:func:`description_line`); HelpRequestError saying what
    to do if it is empty, not plain text, or longer than :data:`MAX_DESCRIPTION`."""
    line = description_line(text)
    if not line:
        raise HelpRequestError(t("request.empty"))
    if not line.isprintable():
        raise HelpRequestError(t("request.not_plain"))
    if len(line) > MAX_DESCRIPTION:
        raise HelpRequestError(t("request.too_long", count=len(line), limit=MAX_DESCRIPTION))
    return line


def choose_category(listing: CategoryList, wanted: str | None, ask: Callable[[str], str]) -> str:
    ids = listing.ids()
    if wanted:
        if wanted in ids:
            return wanted
        raise HelpRequestError(unknown_category(listing, wanted))
    print(t("request.categories"), flush=True)
    for number, category in enumerate(listing.categories, 1):
        print(f"  {number}. {safe_text(category.title, 80)} ({category.id})", flush=True)
    while True:
        try:
            print(t("request.category_prompt"), flush=True)
            answer = ask("").strip()
        except EOFError:
            raise HelpRequestError(t("request.no_category")) from None
        if answer.isdigit() and 1 <= int(answer) <= len(ids):
            return ids[int(answer) - 1]
        if answer in ids:
            return answer
        print(unknown_category(listing, answer), flush=True)


def unknown_category(listing: CategoryList, wanted: str) -> str:
    """The sentence for a category that is not in the organisation's list."""
    return t(
        "request.unknown_category",
        category=safe_text(wanted, 40),
        choices=", ".join(listing.ids()),
    )


def summary_lines() -> list[str]:
    """Collect diagnostics here and return the summary that would go with a request, one
    inert line a fact. Nothing leaves the computer: the customer sees these lines and
    decides (the console asks, the window shows its review screen)."""
    from agent.capabilities.diagnostics.collection import collect
    from protocol.diagnostics_facts import summarize

    return [safe_text(line, 200) for line in summarize(collect())]


def summary_digest(lines: list[str]) -> str | None:
    """The diagnostics digest sent with the request (the lines the customer kept)."""
    return "\n".join(lines)[:MAX_DIGEST] or None


def offer_diagnostics(ask: Callable[[str], str]) -> str | None:
    """Show the customer the summary that would go with the request (and nothing else
    leaves), and return it only if they say yes."""
    from agent.ui import YES

    print(t("request.collecting"), flush=True)
    lines = summary_lines()
    if not lines:
        return None
    print(t("request.digest_intro"), flush=True)
    for line in lines:
        print("  " + line, flush=True)
    print(t("request.digest_prompt"), flush=True)
    try:
        answer = ask("")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in YES:
        print(t("request.digest_kept"), flush=True)
        return None
    return summary_digest(lines)


async def file_request(
    prepared: PreparedRequest, description: str, category: str, digest: str | None
) -> dict[str, Any]:
    """File the request at the relay (which opens the ticket); its first view, with the
    ``request_id`` and the customer's ``token``. HelpRequestError if refused."""
    status, filed = await asyncio.to_thread(
        _call,
        prepared.base,
        "POST",
        "/help/requests",
        {
            "organisation_key": prepared.trust.key_id,
            "description": description,
            "category": category,
            "language": current().language,
            **({"diagnostics_digest": digest} if digest else {}),
        },
        None,
        prepared.ssl_context,
    )
    if status != 201 or not isinstance(filed, dict) or "token" not in filed:
        detail = filed.get("message", status) if isinstance(filed, dict) else status
        raise HelpRequestError(t("request.refused", detail=safe_text(str(detail), 400)))
    return filed


def _minutes(seconds: int | None) -> str:
    if not seconds:
        return t("request.soon")
    return t("request.minutes", minutes=max(1, round(seconds / 60)))


def place_sentence(view: dict[str, Any]) -> str | None:
    """The customer's place in the queue and estimated wait in a request's ``view`` (as
    the relay sent it: numbers only are used), or None while it has no place."""
    position = _count(view.get("position"))
    if not position:
        return None
    wait = _minutes(_count(view.get("estimated_wait_seconds")))
    return t("request.position", position=position, wait=wait)


def _count(value: Any) -> int | None:
    """A count the relay sent (a place, seconds), or None if it is not one."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


class RequestWatcher(Protocol):
    """What a front end shows while a request is followed: the console prints each
    sentence, the window puts it in a label. Every sentence is the agent's own, in the
    customer's language, with what the relay sent made inert (safe_text) inside it."""

    def waiting(self, text: str) -> None:
        """The place in the queue and the estimated wait changed."""

    def accepted(self, text: str) -> None:
        """A technician took the request; the session starts next."""

    def transferred(self, text: str) -> None:
        """The session ended with a transfer: the customer waits again (with the note)."""

    def problem(self, text: str) -> None:
        """The relay could not be asked this time and the agent tries again; ``""``
        once it answers again."""

    def closed(self, text: str) -> None:
        """The request is over without a session (withdrawn by the customer, or solved)."""

    def solved(self) -> None:
        """Self-help solved the problem; the request is closed (self-help said so)."""


async def follow_request(
    prepared: PreparedRequest,
    filed: dict[str, Any],
    watcher: RequestWatcher,
    left: Callable[[], Awaitable[object]],
    run_session: Callable[[str], Awaitable[int]],
    prompter: SelfHelpPrompter | None = None,
    log_dir: Path | None = None,
) -> int:
    """Follow a filed request until it ends; the exit status.

    First self-help, with ``prompter`` (if given): "That fixed it" closes the request
    and ends here. Then, while it waits, ``watcher`` hears the place and estimate as
    they change (long-poll). Whenever ``left()`` completes (Ctrl-C, Cancel request, the
    window closed) the request is withdrawn and the ticket says so. When a technician
    accepts, ``run_session`` runs the code-less session for the relay's rendezvous;
    after a transfer the customer waits again for the next technician.
    """
    follower = RequestFollower(
        prepared.base, filed["request_id"], filed["token"], prepared.ssl_context
    )
    if prompter is not None:
        solved = await _self_help_first(prepared, filed, prompter, left, log_dir)
        if solved is None:
            await follower.withdraw()
            watcher.closed(t("request.withdrawn"))
            return 0
        if solved:
            watcher.solved()  # the request is closed
            return 0
    view = filed
    shown: tuple[Any, ...] | None = None
    troubled = False
    while True:
        if view.get("state") in ("withdrawn", "solved"):
            watcher.closed(t("request.closed"))
            return 0
        nameplate = view.get("nameplate")
        if view.get("state") == "accepted" and nameplate:
            technician = safe_text(str(view.get("technician")), 100)
            watcher.accepted(t("request.accepted", technician=technician))
            result = await run_session(str(nameplate))
            try:
                view = await follower.status(None)
            except HelpRequestError:
                return result
            if view.get("state") not in ("waiting", "offered"):
                return result
            shown = None
            watcher.transferred(
                t("request.transferred", note=safe_text(str(view.get("note") or ""), 300))
            )
            continue
        sentence = place_sentence(view)
        if sentence and (view.get("state"), sentence) != shown:
            shown = (view.get("state"), sentence)
            watcher.waiting(sentence)
        position = _count(view.get("position"))
        poll = asyncio.ensure_future(follower.status(view.get("version"), position))
        leaving = asyncio.ensure_future(left())
        done, _ = await asyncio.wait([poll, leaving], return_when=asyncio.FIRST_COMPLETED)
        if leaving in done:
            poll.cancel()
            await follower.withdraw()
            watcher.closed(t("request.withdrawn"))
            return 0
        leaving.cancel()
        try:
            view = poll.result()
        except HelpRequestError as exc:
            troubled = True
            watcher.problem(str(exc))
            await asyncio.sleep(RETRY_SECONDS)
        else:
            if troubled:
                troubled = False
                watcher.problem("")


async def _self_help_first(
    prepared: PreparedRequest,
    filed: dict[str, Any],
    prompter: SelfHelpPrompter,
    left: Callable[[], Awaitable[object]],
    log_dir: Path | None,
) -> bool | None:
    """Self-help for the filed request: True if it solved it (the request is closed),
    False to wait for a technician, None if the customer left meanwhile. The request
    keeps its place in the queue throughout."""
    from agent.self_help import run_self_help

    helping = asyncio.ensure_future(
        run_self_help(
            prepared.base,
            filed["request_id"],
            filed["token"],
            prepared.trust,
            prompter,
            ssl_context=prepared.ssl_context,
            log_dir=log_dir,
        )
    )
    leaving = asyncio.ensure_future(left())
    await asyncio.wait([helping, leaving], return_when=asyncio.FIRST_COMPLETED)
    leaving.cancel()
    if not helping.done():
        helping.cancel()
        with contextlib.suppress(BaseException):
            await helping
        return None
    try:
        return bool(helping.result())
    except Exception as exc:  # a bug in self-help must not lose the request
        prompter.progress(t("selfhelp.unavailable", detail=safe_text(str(exc), 300)))
        return False


class _ConsoleWatcher:
    """The console's side of :class:`RequestWatcher`: one printed line each."""

    def waiting(self, text: str) -> None:
        print(text, flush=True)

    accepted = transferred = closed = waiting

    def solved(self) -> None:
        pass  # self-help's console prompter said it

    def problem(self, text: str) -> None:
        if text:
            print(text, file=sys.stderr, flush=True)


async def request_help(
    relay: str,
    description: str,
    category: str | None,
    log_dir: Path | None,
    ca_file: str | None,
    org_key: Path | BakedSettings | None,
    ask: Callable[[str], str] = input,
) -> int:
    """The console's help request: file it, follow it, run each session it gets; the
    exit status. Ctrl-C or SIGTERM while waiting withdraws the request."""
    from agent.app import CodeLessJoin, fail, run_agent
    from agent.ui import ConsoleUI

    try:
        description = check_description(description)
        prepared = await prepare_request(relay, ca_file, org_key)
        chosen = choose_category(prepared.categories, category, ask)
        digest = await asyncio.to_thread(offer_diagnostics, ask)
        filed = await file_request(prepared, description, chosen, digest)
    except HelpRequestError as exc:
        return fail(str(exc))
    print(t("request.filed", request=str(filed["request_id"])[:8]), flush=True)
    loop = asyncio.get_running_loop()
    leaving = asyncio.Event()

    def listen(on: bool) -> None:
        """Ctrl-C and SIGTERM leave the queue while waiting; in a session they are the
        session's (run_agent ends it)."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                if on:
                    loop.add_signal_handler(signum, leaving.set)
                else:
                    loop.remove_signal_handler(signum)

    # One console for every session of this request: its reader thread owns standard
    # input (a second one would lose the customer's answers).
    consoles: list[ConsoleUI] = []

    async def run_session(nameplate: str) -> int:
        listen(False)
        ui = consoles[0] if consoles else ConsoleUI()
        consoles[:] = [ui]
        # run_agent leaves a console it was given to its caller: say what happens.
        ui.say(t("app.connecting_code_less"))
        try:
            return await run_agent(relay, CodeLessJoin(nameplate), log_dir, ca_file, org_key, ui)
        finally:
            listen(True)

    from agent.self_help import ConsolePrompter

    listen(True)
    try:
        return await follow_request(
            prepared,
            filed,
            _ConsoleWatcher(),
            leaving.wait,
            run_session,
            ConsolePrompter(ask),
            log_dir,
        )
    finally:
        listen(False)


class RequestFollower:
    """The customer's side of ``/help/requests/{id}`` (status, long-poll, withdraw)."""

    def __init__(
        self, base: str, request_id: str, token: str, ssl_context: ssl.SSLContext | None
    ) -> None:
        self._base = base
        self._path = f"/help/requests/{request_id}"
        self._token = token
        self._ssl = ssl_context

    async def status(self, after: int | None, position: int | None = None) -> dict[str, Any]:
        """The request's status; with ``after`` (and the ``position`` shown), held by the
        relay until it changes."""
        query = f"?after={after}" if after is not None else ""
        if after is not None and position is not None:
            query += f"&position={position}"
        path = self._path + query
        status, view = await _in_daemon_thread(
            lambda: _call(self._base, "GET", path, None, self._token, self._ssl, POLL_TIMEOUT)
        )
        if status != 200:
            raise HelpRequestError(
                t("request.refused", detail=safe_text(str(view.get("message", status)), 400))
            )
        return dict(view)

    async def withdraw(self) -> None:
        with contextlib.suppress(HelpRequestError):
            await asyncio.to_thread(
                _call, self._base, "DELETE", self._path, None, self._token, self._ssl
            )
