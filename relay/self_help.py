"""Self-help and past cases at the relay: the fixes an organisation publishes for its
customers' self-help, and the outcome of every fix run, for both triage rankings.

Routes (for :class:`relay.api.RestApi`, which authenticates technicians)::

    GET   /help/requests/{id}/self-help   the customer's agent, with the request's token:
                                          {"fixes": [{fix, version, platforms, bundle
                                          (base64)}], "rules": signed rule book | null,
                                          "past_cases": {problems, categories},
                                          "category": C}
    POST  /help/requests/{id}/outcomes    a self-help run ended: {problem, fix, version,
                                          exit_status, fixed}; 201 + the request's status
                                          ("solved" when fixed: the ticket gets the
                                          outcome and is resolved; otherwise the customer
                                          keeps their place)
    GET   /api/outcomes                   technicians: {"problems": ..., "categories": ...}
    POST  /api/outcomes                   a technician's run in a session: {session_id,
                                          problems, fix, version, exit_status}; 201
    POST  /api/outcomes/recheck           a later triage in that session still finds
                                          {session_id, present}: those runs did not solve

Rules::

    publish    the operator keeps signed fix bundles and rule books
               (``puente-relay fixes publish``, :mod:`relay.self_help_cli`). The relay
               holds no trusted key: it refuses what is unsigned or malformed, checks a
               signature only against the key of the organisation's own category list
               (to catch a wrong file early), and never vouches for anything. Agents
               verify every bundle and the rule book against their pinned key.
    serve      only the request's own organisation's fixes, only while it waits.
    outcomes   a customer's: for a fix published for their organisation, while the
               request waits, at most MAX_CUSTOMER_RUNS per request; "fixed" closes
               it (relay.helpqueue.HelpQueue.solve). A technician's: for a session of
               theirs, at most MAX_SESSION_RUNS per session, solved when the run
               exited 0, unset by a later recheck that still finds the problem.
    figures    solved and runs per problem and fix (and per category too); an
               organisation's agents see its own outcomes and the technicians'.
"""

from __future__ import annotations

import base64
import http
import re
from collections.abc import Callable
from typing import Any

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from protocol.categories import parse_category_list
from protocol.errors import TrustError
from protocol.fixbundle import read_bundle, verify_bundle, version_key
from protocol.identity import public_key_from_raw
from protocol.past_cases import History, history_json, is_fix_id, is_problem_id
from protocol.rulebook import parse_rule_book

from .errors import ApiRefusal, ConfigError, HeaderError, QueueRefusal
from .help_api import JsonBody, QueryParams, refusal
from .help_records import HelpRequest
from .helpqueue import HelpQueue
from .http import bearer_token, json_response
from .records import Technician
from .self_help_sql import FigureRow, FixOutcome, PublishedFix
from .store import RelayStore

SELF_HELP_PATH = re.compile(r"/help/requests/([0-9a-f]{32})/self-help")
OUTCOMES_PATH = re.compile(r"/help/requests/([0-9a-f]{32})/outcomes")
_SESSION_ID = re.compile(r"[0-9a-f]{32}")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]{0,31}")

#: Most self-help runs one help request may report.
MAX_CUSTOMER_RUNS = 5
#: Most fix runs one technician session may report.
MAX_SESSION_RUNS = 200
#: Most problems one run may be reported for.
MAX_PROBLEMS = 20


# Publishing (the operator's command line) -------------------------------------------------


def publish_bundle(store: RelayStore, data: bytes, now: float) -> PublishedFix:
    """Keep a signed fix bundle for self-help; ConfigError says why not."""
    try:
        bundle = read_bundle(data)
    except TrustError as exc:
        raise ConfigError(
            f"{exc} Publish a bundle made by 'puente-tech fix sign', or a rule book made by "
            "'puente-tech org rules'."
        ) from None
    statement = bundle.statement
    if statement is None:
        raise ConfigError(
            f"The fix {bundle.manifest.id} is not signed, and agents run only fixes their "
            "organisation signed; sign it with 'puente-tech fix sign' and publish the bundle."
        )
    organisation_key = str(statement.get("organisation_key", ""))
    if not re.fullmatch(r"[0-9a-f]{64}", organisation_key):
        raise ConfigError("The fix bundle's signature names no organisation key; sign it again.")
    if (bundle.expires_at or 0) <= now:
        raise ConfigError(
            f"The fix {bundle.manifest.id} {bundle.manifest.version} has expired; sign it again "
            "with 'puente-tech fix sign --valid-days N'."
        )
    categories = store.get_categories(organisation_key)
    if categories is not None:  # the organisation's own key is known: check the signature now
        listing = parse_category_list(categories.encode())
        key = public_key_from_raw(listing.organisation_public_key)
        try:
            verify_bundle(data, key, int(now), bundle.manifest.platforms[0])
        except TrustError as exc:
            raise ConfigError(f"The organisation's agents would refuse this fix: {exc}") from None
    manifest = bundle.manifest
    platforms = tuple(sorted(manifest.platforms))
    for kept in store.published_fixes(organisation_key):
        if kept.fix_id == manifest.id and kept.platforms == platforms:
            if version_key(manifest.version) < version_key(kept.version):
                raise ConfigError(
                    f"The relay already offers {manifest.id} {kept.version}, newer than "
                    f"{manifest.version}; agents refuse older versions anyway. Publish the newest."
                )
    fix = PublishedFix(
        organisation_key,
        manifest.id,
        platforms,
        manifest.version,
        manifest.title,
        data.decode("utf-8"),
        now,
    )
    store.publish_fix(fix)
    return fix


def publish_rules(store: RelayStore, data: bytes, now: float) -> tuple[str, int]:
    """Keep a signed rule book; ``(organisation key, number)``. ConfigError says why not."""
    try:
        book = parse_rule_book(data)
    except TrustError as exc:
        raise ConfigError(
            f"This is not a signed rule book ({exc}); make one with 'puente-tech org rules'."
        ) from None
    kept = store.rule_book(book.organisation_key)
    if kept is not None and kept[0] > book.number:
        raise ConfigError(
            f"The relay keeps rule book number {kept[0]} for this organisation, newer than "
            f"number {book.number}; sign the rules again with a higher --number."
        )
    store.publish_rule_book(book.organisation_key, book.number, data.decode("utf-8"), now)
    return book.organisation_key, book.number


# Figures -------------------------------------------------------------------------------------


def figures(rows: list[FigureRow]) -> tuple[History, dict[str, History]]:
    """Overall ``{problem: {fix: (solved, runs)}}`` and the same per category."""
    overall: History = {}
    by_category: dict[str, History] = {}
    for problem, category, fix, solved, runs in rows:
        before = overall.setdefault(problem, {}).get(fix, (0, 0))
        overall[problem][fix] = (before[0] + solved, before[1] + runs)
        if category:
            by_category.setdefault(category, {}).setdefault(problem, {})[fix] = (solved, runs)
    return overall, by_category


def figures_json(rows: list[FigureRow]) -> dict[str, Any]:
    overall, by_category = figures(rows)
    return {
        "problems": history_json(overall),
        "categories": {c: history_json(h) for c, h in by_category.items()},
    }


# The routes ----------------------------------------------------------------------------------


def _bad(message: str) -> ApiRefusal:
    return ApiRefusal(http.HTTPStatus.BAD_REQUEST, "bad_request", message)


def _exit_status(payload: dict[str, Any]) -> int | None:
    value = payload.get("exit_status")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not -(2**31) <= value < 2**31:
        raise _bad("exit_status must be a whole number, or null for a run stopped at its limit.")
    return value


def _fix_and_version(payload: dict[str, Any]) -> tuple[str, str]:
    fix, version = payload.get("fix"), payload.get("version")
    if not is_fix_id(fix) or not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise _bad("fix and version must be the fix's id and version, as its manifest names them.")
    assert isinstance(fix, str)
    return fix, version


class SelfHelpApi:
    """The routes of the module docstring; ``json_body`` and ``query_params`` are the
    REST API's own parsers."""

    def __init__(
        self,
        store: RelayStore,
        queue: HelpQueue,
        clock: Callable[[], float],
        json_body: JsonBody,
        query_params: QueryParams,
    ) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock
        self._json_body = json_body
        self._query = query_params

    # customers

    def customer_routes(
        self, path: str, request: Request, body: bytes, query: str
    ) -> dict[str, Callable[[], Response]] | None:
        if match := SELF_HELP_PATH.fullmatch(path):
            request_id = match.group(1)
            return {"GET": lambda: self._offer(request_id, request.headers, query)}
        if match := OUTCOMES_PATH.fullmatch(path):
            request_id = match.group(1)
            return {
                "POST": lambda: self._customer_outcome(request_id, request.headers, body, query)
            }
        return None

    def _waiting(self, request_id: str, headers: Headers) -> HelpRequest:
        try:
            token = bearer_token(headers)
        except HeaderError as exc:
            raise _bad(str(exc)) from None
        try:
            help_request = self._queue.customer_request(request_id, token or "")
        except QueueRefusal as exc:
            raise refusal(exc) from None
        if not help_request.state.open:
            raise ApiRefusal(
                http.HTTPStatus.CONFLICT,
                "closed",
                f"This request is {help_request.state}; self-help is for requests still "
                "waiting in the queue.",
            )
        return help_request

    def _offer(self, request_id: str, headers: Headers, query: str) -> Response:
        self._query(query, ())
        help_request = self._waiting(request_id, headers)
        organisation = help_request.organisation_key
        book = self._store.rule_book(organisation)
        return json_response(
            http.HTTPStatus.OK,
            {
                "fixes": [
                    {
                        "fix": f.fix_id,
                        "version": f.version,
                        "platforms": list(f.platforms),
                        "bundle": base64.b64encode(f.bundle.encode()).decode(),
                    }
                    for f in self._store.published_fixes(organisation)
                ],
                "rules": book[1] if book else None,
                "past_cases": figures_json(self._store.outcome_figures(organisation)),
                "category": help_request.category,
            },
        )

    def _customer_outcome(
        self, request_id: str, headers: Headers, body: bytes, query: str
    ) -> Response:
        self._query(query, ())
        help_request = self._waiting(request_id, headers)
        payload = self._json_body(headers, body)
        fields = {"problem", "fix", "version", "exit_status", "fixed"}
        if set(payload) != fields:
            raise _bad(f"Send exactly these fields: {', '.join(sorted(fields))}.")
        problem, fixed = payload["problem"], payload["fixed"]
        if not is_problem_id(problem) or not isinstance(fixed, bool):
            raise _bad("problem must be a rule's problem id and fixed true or false.")
        fix, version = _fix_and_version(payload)
        exit_status = _exit_status(payload)
        published = self._store.published_fixes(help_request.organisation_key)
        title = next((f.title for f in published if f.fix_id == fix), None)
        if title is None:
            raise _bad(f"{fix!r} is not a fix your organisation published for self-help.")
        if self._store.count_outcomes(request_id, "customer") >= MAX_CUSTOMER_RUNS:
            raise ApiRefusal(
                http.HTTPStatus.TOO_MANY_REQUESTS,
                "rate_limited",
                f"This request reported {MAX_CUSTOMER_RUNS} self-help runs already; wait for "
                "a technician.",
            )
        self._store.record_outcomes(
            [
                FixOutcome(
                    help_request.organisation_key,
                    "customer",
                    request_id,
                    request_id,
                    request_id,
                    help_request.category,
                    problem,
                    fix,
                    version,
                    exit_status,
                    fixed,
                )
            ],
            self._clock(),
        )
        if fixed:
            outcome = {
                "problem": problem,
                "fix": fix,
                "version": version,
                "title": title,
                "exit_status": exit_status,
            }
            help_request = self._queue.solve(help_request, outcome)
        return json_response(http.HTTPStatus.CREATED, self._queue.status(help_request))

    # technicians

    def technician_routes(
        self, path: str, technician: Technician, request: Request, body: bytes, query: str
    ) -> dict[str, Callable[[], Response]] | None:
        headers = request.headers
        if path == "/api/outcomes":
            return {
                "GET": lambda: self._figures(query),
                "POST": lambda: self._technician_outcome(technician, headers, body, query),
            }
        if path == "/api/outcomes/recheck":
            return {"POST": lambda: self._recheck(technician, headers, body, query)}
        return None

    def _figures(self, query: str) -> Response:
        self._query(query, ())
        return json_response(http.HTTPStatus.OK, figures_json(self._store.outcome_figures()))

    def _own_session(self, technician: Technician, payload: dict[str, Any]) -> str:
        session_id = payload.get("session_id")
        if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
            raise _bad("session_id must be the session's id (32 hex digits).")
        record = self._store.get_session(session_id)
        if record is None or record.technician_id != technician.id:
            raise ApiRefusal(
                http.HTTPStatus.NOT_FOUND, "not_found", "You have no session with this id."
            )
        return session_id

    @staticmethod
    def _problems(payload: dict[str, Any], name: str) -> list[str]:
        problems = payload.get(name)
        if (
            not isinstance(problems, list)
            or len(problems) > MAX_PROBLEMS
            or not all(is_problem_id(p) for p in problems)
        ):
            raise _bad(f"{name} must be a list of at most {MAX_PROBLEMS} problem ids.")
        return list(dict.fromkeys(problems))

    def _technician_outcome(
        self, technician: Technician, headers: Headers, body: bytes, query: str
    ) -> Response:
        self._query(query, ())
        payload = self._json_body(headers, body)
        fields = {"session_id", "problems", "fix", "version", "exit_status"}
        if set(payload) != fields:
            raise _bad(f"Send exactly these fields: {', '.join(sorted(fields))}.")
        session_id = self._own_session(technician, payload)
        problems = self._problems(payload, "problems") or [""]
        fix, version = _fix_and_version(payload)
        exit_status = _exit_status(payload)
        if self._store.count_outcomes(session_id, "technician") >= MAX_SESSION_RUNS:
            raise ApiRefusal(
                http.HTTPStatus.TOO_MANY_REQUESTS,
                "rate_limited",
                f"This session reported {MAX_SESSION_RUNS} fix runs already.",
            )
        record = self._store.get_session(session_id)
        assert record is not None
        category = self._store.request_category(session_id)
        outcomes = [
            FixOutcome(
                "",
                "technician",
                technician.id,
                session_id,
                record.ticket_id,
                category,
                problem,
                fix,
                version,
                exit_status,
                exit_status == 0,
            )
            for problem in problems
        ]
        self._store.record_outcomes(outcomes, self._clock())
        return json_response(http.HTTPStatus.CREATED, {"recorded": len(outcomes)})

    def _recheck(
        self, technician: Technician, headers: Headers, body: bytes, query: str
    ) -> Response:
        self._query(query, ())
        payload = self._json_body(headers, body)
        if set(payload) != {"session_id", "present"}:
            raise _bad("Send exactly these fields: present, session_id.")
        session_id = self._own_session(technician, payload)
        present = self._problems(payload, "present")
        changed = self._store.unsolve_outcomes(session_id, technician.id, present)
        return json_response(http.HTTPStatus.OK, {"changed": changed})
