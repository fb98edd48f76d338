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
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.help_http import HelpRequestError as HelpRequestError
from agent.help_http import call as _call
from agent.help_http import in_daemon_thread as _in_daemon_thread
from agent.i18n import current, t
from agent.settings import BakedSettings
from link.relay_address import http_url
from protocol.categories import CategoryList, verify_category_list
from protocol.errors import TrustError
from protocol.safe_text import safe_text

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


def choose_category(listing: CategoryList, wanted: str | None, ask: Callable[[str], str]) -> str:
    ids = listing.ids()
    if wanted:
        if wanted in ids:
            return wanted
        raise HelpRequestError(
            t("request.unknown_category", category=safe_text(wanted, 40), choices=", ".join(ids))
        )
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
        print(
            t("request.unknown_category", category=safe_text(answer, 40), choices=", ".join(ids)),
            flush=True,
        )


def offer_diagnostics(ask: Callable[[str], str]) -> str | None:
    """Collect diagnostics here, show the customer the summary that would go with the
    request (and nothing else leaves), and return it only if they say yes."""
    from agent.capabilities.diagnostics.collection import collect
    from agent.ui import YES
    from protocol.diagnostics_facts import summarize

    print(t("request.collecting"), flush=True)
    lines = [safe_text(line, 200) for line in summarize(collect())]
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
    return "\n".join(lines)[:MAX_DIGEST]


def _minutes(seconds: int | None) -> str:
    if not seconds:
        return t("request.soon")
    return t("request.minutes", minutes=max(1, round(seconds / 60)))


async def request_help(
    relay: str,
    description: str,
    category: str | None,
    log_dir: Path | None,
    ca_file: str | None,
    org_key: Path | BakedSettings | None,
    ask: Callable[[str], str] = input,
) -> int:
    """File the request, follow it, run each session it gets; the exit status."""
    from agent.app import CodeLessJoin, fail, load_trust, run_agent, ssl_context_for
    from agent.errors import TrustSetupError
    from agent.ui import ConsoleUI
    from link.errors import LinkError

    try:
        ssl_context = ssl_context_for(ca_file)
        trust = await load_trust(org_key, relay, ssl_context)
    except (LinkError, TrustSetupError) as exc:
        return fail(t("error.trust_setup", detail=str(exc)))
    if not trust.pinned:
        return fail(t("request.no_org_key"))
    base = http_url(relay)
    try:
        listing = await asyncio.to_thread(
            load_categories, relay, trust.organisation_key, trust.key_id, ssl_context
        )
        chosen = choose_category(listing, category, ask)
        digest = await asyncio.to_thread(offer_diagnostics, ask)
        status, filed = await asyncio.to_thread(
            _call,
            base,
            "POST",
            "/help/requests",
            {
                "organisation_key": trust.key_id,
                "description": description,
                "category": chosen,
                "language": current().language,
                **({"diagnostics_digest": digest} if digest else {}),
            },
            None,
            ssl_context,
        )
    except HelpRequestError as exc:
        return fail(str(exc))
    if status != 201:
        return fail(t("request.refused", detail=safe_text(str(filed.get("message", status)), 400)))
    request_id, token = filed["request_id"], filed["token"]
    print(t("request.filed", request=request_id[:8]), flush=True)
    follower = _Follower(base, request_id, token, ssl_context)
    loop = asyncio.get_running_loop()
    leaving = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, leaving.set)
    view = filed
    shown: tuple[Any, ...] | None = None
    ui: ConsoleUI | None = None
    try:
        # Self-help first (agent.self_help): the request keeps its place meanwhile, and
        # closing the agent now withdraws it as it does while waiting.
        from agent.self_help import ConsolePrompter, run_self_help

        helping = asyncio.ensure_future(
            run_self_help(
                base,
                request_id,
                token,
                trust,
                ConsolePrompter(ask),
                ssl_context=ssl_context,
                log_dir=log_dir,
            )
        )
        left = asyncio.ensure_future(leaving.wait())
        await asyncio.wait([helping, left], return_when=asyncio.FIRST_COMPLETED)
        left.cancel()
        if not helping.done():
            helping.cancel()
            with contextlib.suppress(BaseException):
                await helping
            await follower.withdraw()
            print(t("request.withdrawn"), flush=True)
            return 0
        try:
            solved = helping.result()
        except Exception as exc:  # a bug in self-help must not lose the request
            print(t("selfhelp.unavailable", detail=safe_text(str(exc), 300)), flush=True)
            solved = False
        if solved:
            return 0  # solved by self-help: the request is closed
        while True:
            if view.get("state") in ("withdrawn", "solved"):
                print(t("request.closed"), flush=True)
                return 0
            nameplate = view.get("nameplate")
            if view.get("state") == "accepted" and nameplate:
                print(
                    t("request.accepted", technician=safe_text(str(view.get("technician")), 100)),
                    flush=True,
                )
                for signum in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.remove_signal_handler(signum)
                # One console for every session of this request: its reader thread
                # owns standard input (a second one would lose the customer's answers).
                ui = ui or ConsoleUI()
                # run_agent leaves a console it was given to its caller: say what happens.
                ui.say(t("app.connecting_code_less"))
                result = await run_agent(
                    relay, CodeLessJoin(str(nameplate)), log_dir, ca_file, org_key, ui
                )
                view = await follower.status(None)
                if view.get("state") not in ("waiting", "offered"):
                    return result
                print(
                    t("request.transferred", note=safe_text(str(view.get("note") or ""), 300)),
                    flush=True,
                )
                for signum in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.add_signal_handler(signum, leaving.set)
                continue
            now_shown = (
                view.get("state"),
                view.get("position"),
                view.get("estimated_wait_seconds"),
            )
            if now_shown != shown and view.get("position"):
                shown = now_shown
                print(
                    t(
                        "request.position",
                        position=view["position"],
                        wait=_minutes(view.get("estimated_wait_seconds")),
                    ),
                    flush=True,
                )
            poll = asyncio.ensure_future(follower.status(view.get("version"), view.get("position")))
            left = asyncio.ensure_future(leaving.wait())
            done, _ = await asyncio.wait([poll, left], return_when=asyncio.FIRST_COMPLETED)
            if left in done:
                poll.cancel()
                await follower.withdraw()
                print(t("request.withdrawn"), flush=True)
                return 0
            left.cancel()
            try:
                view = poll.result()
            except HelpRequestError as exc:
                print(str(exc), file=sys.stderr, flush=True)
                await asyncio.sleep(RETRY_SECONDS)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)


class _Follower:
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
