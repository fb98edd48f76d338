"""The REST API: sessions for tickets, health and the OpenAPI document.

Routing rules (deny by default):

* Paths are matched exactly against the canonical routes below; anything else,
  including a trailing slash, ``..``, ``//`` or percent-escapes, is 404.
* Every path under ``/api/`` needs a valid bearer token first (401 otherwise,
  even for unknown paths), then the route (404), then the method (405 + Allow).
* A technician only ever sees their own sessions; someone else's is 404.
* Query parameters are accepted only where documented; others are 400.
* Bodies are JSON objects with ``Content-Type: application/json``; unknown fields are 400.

======  ============================  ===========================================
method  path                          answer
======  ============================  ===========================================
GET     /healthz                      ``{"status": "ok"}`` (no auth)
GET     /openapi.json                 :data:`relay.openapi.OPENAPI` (no auth)
GET     /join/{session_id}            the customer's join page, HTML (no auth,
                                      rate-limited per IP; :mod:`relay.joinpage`)
POST    /api/sessions                 201 + session (body: ticket_id, ticket_url)
GET     /api/sessions[?ticket_id=T]   ``{"sessions": [...]}``, newest first
GET     /api/sessions/{id}            the session
DELETE  /api/sessions/{id}            ends the session, 200 + the session
PUT     /api/sessions/{id}/summary    201 + the summary the first time, 200 for
                                      the same summary again, 409 for another one
                                      (summaries never change) or a session that
                                      never paired; :mod:`protocol.summary`
GET     /api/sessions/{id}/summary    the summary, or 404
POST    /api/revocations              publish an organisation's signed revocation list
/api/queue..., /api/availability      the help queue, technicians' side (:mod:`relay.help_api`)
/help/...                             the help queue, customers' side (no account)
/api/outcomes...                      past cases: every fix run's outcome (:mod:`relay.self_help`)
/help/requests/{id}/self-help, /outcomes  self-help while a request waits (same module)
GET     /revocations/{key_id}         the newest list for that organisation key (no auth)
======  ============================  ===========================================

Sessions carry their summary (or null). Creating a session and storing a summary
record help-desk events (:mod:`relay.outbox`).

Revocation lists are signed by the organisation's key (:mod:`protocol.identity`).
The relay holds no trusted key: it checks only that a list is well formed and signed
by the key it names, keeps the highest-numbered list per key, and hands it to any
agent. It cannot forge or edit one; agents verify it against their pinned key.
"""

from __future__ import annotations

import http
import json
import logging
import re
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from protocol.errors import SummaryInvalid, TrustError
from protocol.identity import parse_revocation_list
from protocol.safe_text import safe_text
from protocol.summary import MAX_SUMMARY_BYTES, check_summary

from .downloads import DownloadShelf
from .errors import ApiRefusal, HeaderError
from .events import join_url
from .help_api import HelpApi
from .helpqueue import HelpQueue
from .http import bearer_token, error_response, json_response
from .joinpage import (
    JoinView,
    OfferedDownload,
    html_response,
    page_language,
    render_join_page,
    render_problem_page,
    visitor_os,
)
from .openapi import OPENAPI
from .outbox import Outbox
from .ratelimit import SlidingWindowLimiter
from .records import SessionRecord, SessionState, Technician
from .self_help import SelfHelpApi
from .store import RelayStore

logger = logging.getLogger("relay.api")

_SESSION_PATH = re.compile(r"/api/sessions/([0-9a-f]{32})")
_REVOCATIONS_PATH = re.compile(r"/revocations/([0-9a-f]{64})")
_SUMMARY_PATH = re.compile(r"/api/sessions/([0-9a-f]{32})/summary")
_JOIN_PATH = re.compile(r"/join/([0-9a-f]{32})")

#: Join page views per client IP per minute (the page names a technician and a ticket).
JOIN_PAGE_VIEWS_PER_MINUTE = 30

#: Longest ticket id and ticket URL accepted.
#: Deepest nesting of arrays and objects a JSON body may have (summaries need about 6).
MAX_JSON_DEPTH = 32

MAX_TICKET_ID = 200
MAX_TICKET_URL = 2000


class SessionControl(Protocol):
    """What the API needs from the running relay about live sessions."""

    def end_session(self, session_id: str, reason: str) -> None:
        """End a session, disconnecting its ends with error ``ended``."""

    def live_byte_counts(self, session_id: str) -> tuple[int, int] | None:
        """Bytes forwarded so far (agent→tech, tech→agent) if the session is live."""


def refusal_response(refusal: ApiRefusal) -> Response:
    """The HTTP answer to a refusal."""
    return error_response(refusal.status, refusal.code, refusal.message, refusal.headers)


def unauthorized(message: str = "") -> ApiRefusal:
    return ApiRefusal(
        http.HTTPStatus.UNAUTHORIZED,
        "unauthorized",
        message
        or "This route needs 'Authorization: Bearer TOKEN' with a valid technician API token.",
        (("WWW-Authenticate", 'Bearer realm="puente-relay"'),),
    )


def iso_time(seconds: float | None) -> str | None:
    """Wall-clock seconds as an ISO 8601 UTC timestamp (``2026-01-02T03:04:05Z``)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class RestApi:
    """Answers every HTTP request that is not a WebSocket upgrade.

    ``clock`` gives wall-clock seconds; ``base_url`` gives the public base of join links.
    """

    def __init__(
        self,
        store: RelayStore,
        control: SessionControl,
        clock: Callable[[], float],
        base_url: Callable[[], str],
        nameplate_ttl: float,
        *,
        outbox: Outbox,
        agent_download_url: str | None = None,
        sessions_per_minute: int = 30,
    ) -> None:
        self._store = store
        self._control = control
        self._clock = clock
        self._base_url = base_url
        self._nameplate_ttl = nameplate_ttl
        self._outbox = outbox
        self._agent_download_url = agent_download_url
        #: The agents the join page offers (set by the front door, which serves them).
        self.downloads: DownloadShelf | None = None
        self._join_limiter = SlidingWindowLimiter(JOIN_PAGE_VIEWS_PER_MINUTE, 60.0)
        self._creation_limiter = SlidingWindowLimiter(sessions_per_minute, 60.0)
        queue = HelpQueue(
            store, clock, outbox.request_event, self._request_session, control.end_session
        )
        #: The help queue's routes (:mod:`relay.help_api`).
        self.help = HelpApi(queue, _json_body, _query_params)
        #: Self-help and past cases (:mod:`relay.self_help`).
        self.self_help = SelfHelpApi(store, queue, clock, _json_body, _query_params)

    def handle(self, request: Request, body: bytes, client_ip: str = "unknown") -> Response:
        """Route one request and always return a response (errors included)."""
        try:
            return self._route(request, body, client_ip)
        except ApiRefusal as exc:
            return refusal_response(exc)

    # routing

    def _route(self, request: Request, body: bytes, client_ip: str) -> Response:
        path, _, query = request.path.partition("?")
        if path == "/api" or path.startswith("/api/"):
            technician = self._authenticate(request.headers)
            if path == "/api/sessions":
                handlers: dict[str, Callable[[], Response]] = {
                    "GET": lambda: self._list_sessions(technician, query),
                    "POST": lambda: self._create_session(technician, request.headers, body, query),
                }
            elif match := _SESSION_PATH.fullmatch(path):
                session_id = match.group(1)
                handlers = {
                    "GET": lambda: self._get_session(technician, session_id, query),
                    "DELETE": lambda: self._delete_session(technician, session_id, query),
                }
            elif match := _SUMMARY_PATH.fullmatch(path):
                session_id = match.group(1)
                handlers = {
                    "GET": lambda: self._get_summary(technician, session_id, query),
                    "PUT": lambda: self._put_summary(
                        technician, session_id, request.headers, body, query
                    ),
                }
            elif queue_handlers := self.help.technician_routes(
                path, technician, request, body, query
            ):
                handlers = queue_handlers
            elif outcome_handlers := self.self_help.technician_routes(
                path, technician, request, body, query
            ):
                handlers = outcome_handlers
            elif path == "/api/revocations":
                handlers = {
                    "POST": lambda: self._publish_revocations(
                        technician, request.headers, body, query
                    )
                }
            else:
                raise _not_found()
        elif help_handlers := self.help.customer_routes(path, request, body, query, client_ip):
            handlers = help_handlers
        elif self_help_handlers := self.self_help.customer_routes(path, request, body, query):
            handlers = self_help_handlers
        elif match := _REVOCATIONS_PATH.fullmatch(path):
            organisation_key = match.group(1)
            handlers = {"GET": lambda: self._get_revocations(organisation_key, query)}
        elif match := _JOIN_PATH.fullmatch(path):
            join_id = match.group(1)
            handlers = {"GET": lambda: self._join_page(join_id, request.headers, query, client_ip)}
        elif path == "/healthz":
            handlers = {"GET": lambda: _document(query, {"status": "ok"})}
        elif path == "/openapi.json":
            handlers = {"GET": lambda: _document(query, OPENAPI)}
        else:
            raise _not_found()
        handler = handlers.get(request.method)
        if handler is None:
            allowed = ", ".join(sorted(handlers))
            raise ApiRefusal(
                http.HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                f"This route does not accept {request.method}; use {allowed}.",
                (("Allow", allowed),),
            )
        return handler()

    def _authenticate(self, headers: Headers) -> Technician:
        try:
            token = bearer_token(headers)
        except HeaderError as exc:
            raise unauthorized(
                f"Send exactly one 'Authorization: Bearer TOKEN' header ({exc})."
            ) from None
        technician = self._store.authenticate(token) if token else None
        if technician is None:
            raise unauthorized()
        return technician

    # routes

    def _create_session(
        self, technician: Technician, headers: Headers, body: bytes, query: str
    ) -> Response:
        _query_params(query, allowed=())
        payload = _json_body(headers, body)
        unknown = sorted(set(payload) - {"ticket_id", "ticket_url"})
        if unknown:
            raise _bad_request(f"Unknown field {unknown[0]!r}; send only ticket_id and ticket_url.")
        ticket_id = payload.get("ticket_id")
        if (
            not isinstance(ticket_id, str)
            or not ticket_id.strip()
            or len(ticket_id) > MAX_TICKET_ID
        ):
            raise _bad_request(f"ticket_id must be a string of 1 to {MAX_TICKET_ID} characters.")
        if not ticket_id.isprintable():
            raise _bad_request("ticket_id must not contain control characters.")
        ticket_url = payload.get("ticket_url")
        if ticket_url is not None:
            if not isinstance(ticket_url, str) or len(ticket_url) > MAX_TICKET_URL:
                raise _bad_request(
                    f"ticket_url must be a string of at most {MAX_TICKET_URL} characters."
                )
            parts = urllib.parse.urlsplit(ticket_url)
            # Technician UIs show this as a link: only web links, never javascript: or file:.
            if (
                parts.scheme not in ("http", "https")
                or not parts.netloc
                or not ticket_url.isprintable()
            ):
                raise _bad_request("ticket_url must be an http or https link.")
        now = self._clock()
        # Counted per technician (one token each), after the body was found valid.
        if not self._creation_limiter.allow(technician.id, now):
            wait = self._creation_limiter.retry_after(technician.id, now)
            self._creation_limiter.prune(now)
            raise ApiRefusal(
                http.HTTPStatus.TOO_MANY_REQUESTS,
                "rate_limited",
                f"This token created {self._creation_limiter.limit} sessions in the last "
                f"minute; wait {wait} seconds and try again.",
                (("Retry-After", str(wait)),),
            )
        record = self._store.create_session(
            technician, ticket_id, ticket_url, now, self._nameplate_ttl
        )
        logger.info(
            "session created session=%s nameplate=%s technician=%s",
            record.id,
            record.nameplate,
            technician.id,
        )
        self._outbox.session_created(record)
        return json_response(
            http.HTTPStatus.CREATED,
            self._session_json(record),
            (("Location", f"/api/sessions/{record.id}"),),
        )

    def _request_session(self, technician: Technician, ticket_id: str, now: float) -> SessionRecord:
        """The session a technician gets by accepting a help request."""
        record = self._store.create_session(technician, ticket_id, None, now, self._nameplate_ttl)
        self._outbox.session_created(record)
        return record

    def _list_sessions(self, technician: Technician, query: str) -> Response:
        params = _query_params(query, allowed=("ticket_id",))
        records = self._store.list_sessions(technician.id, params.get("ticket_id"))
        return json_response(
            http.HTTPStatus.OK, {"sessions": [self._session_json(r) for r in records]}
        )

    def _get_session(self, technician: Technician, session_id: str, query: str) -> Response:
        _query_params(query, allowed=())
        return json_response(
            http.HTTPStatus.OK, self._session_json(self._owned(technician, session_id))
        )

    def _delete_session(self, technician: Technician, session_id: str, query: str) -> Response:
        _query_params(query, allowed=())
        record = self._owned(technician, session_id)
        if record.state_at(self._clock()) in (SessionState.WAITING, SessionState.PAIRED):
            self._control.end_session(record.id, "ended through the API")
            record = self._owned(technician, session_id)
        return json_response(http.HTTPStatus.OK, self._session_json(record))

    def _put_summary(
        self, technician: Technician, session_id: str, headers: Headers, body: bytes, query: str
    ) -> Response:
        _query_params(query, allowed=())
        record = self._owned(technician, session_id)
        if len(body) > MAX_SUMMARY_BYTES:
            raise ApiRefusal(
                http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "too_large",
                f"A summary is at most {MAX_SUMMARY_BYTES // 1024} KiB; shorten its lists.",
            )
        payload = _json_body(headers, body)
        try:
            check_summary(payload)
        except SummaryInvalid as exc:
            raise _bad_request(str(exc)) from None
        if record.paired_at is None:
            raise ApiRefusal(
                http.HTTPStatus.CONFLICT,
                "conflict",
                "Nobody joined this session, so there is nothing to summarise.",
            )
        summary_json = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        stored, created = self._outbox.store_summary(record, summary_json)
        if not created and stored.summary != summary_json:
            raise ApiRefusal(
                http.HTTPStatus.CONFLICT,
                "conflict",
                "This session already has a different summary; summaries cannot be changed.",
            )
        return json_response(
            http.HTTPStatus.CREATED if created else http.HTTPStatus.OK,
            json.loads(stored.summary),
            (("Location", f"/api/sessions/{record.id}/summary"),),
        )

    def _get_summary(self, technician: Technician, session_id: str, query: str) -> Response:
        _query_params(query, allowed=())
        record = self._owned(technician, session_id)
        stored = self._store.get_summary(record.id)
        if stored is None:
            raise _not_found("This session has no summary yet.")
        return json_response(http.HTTPStatus.OK, json.loads(stored.summary))

    def _join_page(self, session_id: str, headers: Headers, query: str, client_ip: str) -> Response:
        chosen = _query_params(query, allowed=("lang",)).get("lang")
        language = page_language(", ".join(headers.get_all("Accept-Language")), chosen)
        now = self._clock()
        if not self._join_limiter.allow(client_ip, now):
            page = render_problem_page("too_many", language)
            return html_response(http.HTTPStatus.TOO_MANY_REQUESTS, page, (("Retry-After", "60"),))
        record = self._store.get_session(session_id)
        if record is None:
            return html_response(
                http.HTTPStatus.NOT_FOUND, render_problem_page("unknown", language)
            )
        if record.state_at(now) is not SessionState.WAITING:
            return html_response(http.HTTPStatus.GONE, render_problem_page("gone", language))
        base = self._base_url().rstrip("/")
        relay_url = "wss://" + base[8:] if base.startswith("https://") else "ws://" + base[7:]
        agents = headers.get_all("User-Agent")
        user_agent = agents[0] if len(agents) == 1 else None
        offered = tuple(
            OfferedDownload(
                d.system,
                f"/join/{record.id}/agent/{d.system}",
                d.served_name(record.nameplate),
                d.size,
                d.sha256,
                safe_text(d.signed_by) if d.signed_by else None,
            )
            for d in (self.downloads.all() if self.downloads is not None else ())
        )
        view = JoinView(
            technician=safe_text(record.technician_name),
            ticket_id=safe_text(record.ticket_id),
            nameplate=record.nameplate,
            expires_at=iso_time(record.expires_at) or "",
            relay_url=relay_url,
            download_url=self._agent_download_url,
            visitor_os=visitor_os(user_agent),
            downloads=offered,
            language=language,
        )
        return html_response(http.HTTPStatus.OK, render_join_page(view))

    def _publish_revocations(
        self, technician: Technician, headers: Headers, body: bytes, query: str
    ) -> Response:
        _query_params(query, allowed=())
        _json_body(headers, body)  # JSON with the right content type, or 400/415
        try:
            revocations = parse_revocation_list(body)
        except TrustError as exc:
            raise _bad_request(f"This is not a valid signed revocation list: {exc}") from None
        try:
            stored = self._store.publish_revocation_list(
                revocations.organisation_key,
                revocations.number,
                body.decode("utf-8"),
                technician.id,
                self._clock(),
            )
        except NotImplementedError:
            raise _not_implemented() from None
        if not stored:
            raise ApiRefusal(
                http.HTTPStatus.CONFLICT,
                "conflict",
                f"A revocation list numbered {revocations.number} or higher is already "
                "published for this organisation; make a newer one with "
                "'puente-tech org revoke' and publish that.",
            )
        logger.info(
            "revocation list published key=%s number=%d technician=%s",
            revocations.organisation_key[:16],
            revocations.number,
            technician.id,
        )
        return json_response(
            http.HTTPStatus.OK,
            {
                "organisation_key": revocations.organisation_key,
                "number": revocations.number,
                "revoked": len(revocations.certificates),
            },
        )

    def _get_revocations(self, organisation_key: str, query: str) -> Response:
        _query_params(query, allowed=())
        try:
            document = self._store.get_revocation_list(organisation_key)
        except NotImplementedError:
            raise _not_implemented() from None
        if document is None:
            raise _not_found("No revocation list has been published for this organisation key.")
        return json_response(http.HTTPStatus.OK, json.loads(document))

    # helpers

    def _owned(self, technician: Technician, session_id: str) -> SessionRecord:
        record = self._store.get_session(session_id)
        # Someone else's session is "not found": its existence is not ours to reveal.
        if record is None or record.technician_id != technician.id:
            raise _not_found("No session with this id belongs to you.")
        return record

    def _session_json(self, record: SessionRecord) -> dict[str, Any]:
        """The public view of a session: metadata only, never a secret."""
        bytes_a2t, bytes_t2a = record.bytes_agent_to_tech, record.bytes_tech_to_agent
        live = self._control.live_byte_counts(record.id)
        if live is not None:
            bytes_a2t, bytes_t2a = bytes_a2t + live[0], bytes_t2a + live[1]
        return {
            "session_id": record.id,
            "nameplate": record.nameplate,
            "ticket_id": record.ticket_id,
            "ticket_url": record.ticket_url,
            "technician": record.technician_name,
            "state": str(record.state_at(self._clock())),
            "created_at": iso_time(record.created_at),
            "expires_at": iso_time(record.expires_at),
            "paired_at": iso_time(record.paired_at),
            "ended_at": iso_time(record.ended_at),
            "end_reason": record.end_reason,
            "bytes_agent_to_tech": bytes_a2t,
            "bytes_tech_to_agent": bytes_t2a,
            "join_url": join_url(self._base_url(), record.id),
            **self._summary_fields(record.id),
        }

    def _summary_fields(self, session_id: str) -> dict[str, Any]:
        stored = self._store.get_summary(session_id)
        if stored is None:
            return {"summary": None, "summary_uploaded_at": None}
        return {
            "summary": json.loads(stored.summary),
            "summary_uploaded_at": iso_time(stored.uploaded_at),
        }


def _document(query: str, payload: dict[str, Any]) -> Response:
    _query_params(query, allowed=())
    return json_response(http.HTTPStatus.OK, payload)


def _not_found(
    message: str = "There is no such route; check the path against /openapi.json.",
) -> ApiRefusal:
    return ApiRefusal(http.HTTPStatus.NOT_FOUND, "not_found", message)


def _not_implemented() -> ApiRefusal:
    return ApiRefusal(
        http.HTTPStatus.NOT_IMPLEMENTED,
        "not_implemented",
        "This relay's store does not keep revocation lists; ask the operator to use the "
        "SQLite store or a newer one.",
    )


def _bad_request(message: str) -> ApiRefusal:
    return ApiRefusal(http.HTTPStatus.BAD_REQUEST, "bad_request", message)


def _query_params(query: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """Parse a query string, refusing unknown, repeated or malformed parameters."""
    if not query:
        return {}
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise _bad_request("The query string is malformed.") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            raise _bad_request(f"Unknown query parameter {name!r}.")
        if name in params:
            raise _bad_request(f"The query parameter {name!r} appears more than once.")
        params[name] = value
    return params


def _json_body(headers: Headers, body: bytes) -> dict[str, Any]:
    """The request body as a JSON object; 415 unless sent as application/json."""
    content_type = (
        headers.get("Content-Type", "") if len(headers.get_all("Content-Type")) <= 1 else ""
    )
    if content_type.partition(";")[0].strip().lower() != "application/json":
        raise ApiRefusal(
            http.HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as JSON with 'Content-Type: application/json'.",
        )
    if _nesting_depth(body) > MAX_JSON_DEPTH:
        raise _bad_request(
            f"The body's JSON is nested more than {MAX_JSON_DEPTH} levels deep; send a "
            "flatter document."
        )
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise _bad_request("The body is not valid JSON; send a JSON object.") from None
    if not isinstance(payload, dict):
        raise _bad_request("The body must be a JSON object.")
    return payload


def _nesting_depth(body: bytes) -> int:
    """How deep arrays and objects nest in ``body`` (brackets inside strings skipped),
    found without parsing, so that no decoder recursion is ever reached."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest
