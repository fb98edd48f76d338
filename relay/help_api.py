"""The help queue's HTTP routes (the customer's and the technician's), for
:class:`relay.api.RestApi`, which authenticates technicians and hands these over.

Customers (no account; a request is reached with the token given when it was filed)::

    GET     /help/categories/{key_id}     the organisation's signed category list
    POST    /help/requests                201 + {request_id, token, state, position,
                                          estimated_wait_seconds, ...}
    GET     /help/requests/{id}[?after=V[&position=P]]
                                          the request's status; with ``after``, held
                                          (long-poll, up to 25 s) until its version is
                                          not V or its place in the queue is not P.
                                          Authorization: Bearer REQUEST_TOKEN
    DELETE  /help/requests/{id}           withdraw (the customer left)

Technicians (bearer API token, as every /api/ route)::

    GET     /api/queue                    {"technician": profile, "requests": [...]}
    POST    /api/queue/{id}/accept        200 + {"request": ..., "session": ...}
    POST    /api/queue/{id}/decline       200 + the request
    POST    /api/queue/{id}/transfer      body {"to": NAME|QUEUE, "note": TEXT}
    PUT     /api/availability             body {"availability": available|busy|away}

Refusals are ``{"error": code, "message": sentence}``: 400 for bad input (unknown
category, over-long description, ``no_pinned_key``), 404 not found, 409 for a
request someone else took, 429 with Retry-After for a flood of requests.
"""

from __future__ import annotations

import http
import re
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .errors import ApiRefusal, HeaderError, QueueRefusal
from .help_records import HelpRequest, TechnicianProfile
from .helpqueue import LONG_POLL_SECONDS, HelpQueue
from .http import bearer_token, error_response, json_response
from .records import Technician
from .routing import Availability

REQUEST_PATH = re.compile(r"/help/requests/([0-9a-f]{32})")
CATEGORIES_PATH = re.compile(r"/help/categories/([0-9a-f]{64})")
QUEUE_ACTION_PATH = re.compile(r"/api/queue/([0-9a-f]{32})/(accept|decline|transfer)")

_STATUS = {
    "not_found": http.HTTPStatus.NOT_FOUND,
    "taken": http.HTTPStatus.CONFLICT,
    "closed": http.HTTPStatus.CONFLICT,
    "offered_elsewhere": http.HTTPStatus.CONFLICT,
    "rate_limited": http.HTTPStatus.TOO_MANY_REQUESTS,
    "no_profile": http.HTTPStatus.FORBIDDEN,
    "unknown_organisation": http.HTTPStatus.NOT_FOUND,
}


def refusal(exc: QueueRefusal) -> ApiRefusal:
    """The API's answer to a queue refusal."""
    headers = (("Retry-After", str(exc.retry_after)),) if exc.retry_after else ()
    return ApiRefusal(
        _STATUS.get(exc.code, http.HTTPStatus.BAD_REQUEST), exc.code, exc.message, headers
    )


JsonBody = Callable[[Headers, bytes], dict[str, Any]]
QueryParams = Callable[[str, tuple[str, ...]], dict[str, str]]


class HelpApi:
    """The help queue's routes; ``json_body`` and ``query_params`` are the REST API's
    own parsers, so bodies and queries are judged the same everywhere."""

    def __init__(self, queue: HelpQueue, json_body: JsonBody, query_params: QueryParams) -> None:
        self.queue = queue
        self._json_body = json_body
        self._query = query_params

    # customers

    def customer_routes(
        self, path: str, request: Request, body: bytes, query: str, client_ip: str
    ) -> dict[str, Callable[[], Response]] | None:
        """Handlers by method for a ``/help/`` path, or None if it is not one."""
        if path == "/help/requests":
            return {"POST": lambda: self._file(request.headers, body, query, client_ip)}
        if match := CATEGORIES_PATH.fullmatch(path):
            key = match.group(1)
            return {"GET": lambda: self._categories(key, query)}
        if match := REQUEST_PATH.fullmatch(path):
            request_id = match.group(1)
            return {
                "GET": lambda: self._status(request_id, request.headers, query),
                "DELETE": lambda: self._withdraw(request_id, request.headers, query),
            }
        return None

    def long_poll(self, request: Request) -> Awaitable[Response] | None:
        """The held answer to ``GET /help/requests/{id}?after=V``, or None if the request
        is not one (the caller then answers it at once)."""
        path, _, query = request.path.partition("?")
        match = REQUEST_PATH.fullmatch(path)
        if request.method != "GET" or match is None or "after=" not in query:
            return None
        return self._held_status(match.group(1), request.headers, query)

    async def _held_status(self, request_id: str, headers: Headers, query: str) -> Response:
        try:
            params = self._query(query, ("after", "position"))
            try:
                after = int(params["after"])
                position = int(params["position"]) if "position" in params else None
            except ValueError:
                raise ApiRefusal(
                    http.HTTPStatus.BAD_REQUEST,
                    "bad_request",
                    "after and position must be whole numbers.",
                ) from None
            help_request = self._customer(request_id, headers)
            if help_request.version == after:
                help_request = await self.queue.wait_for_change(
                    request_id, after, LONG_POLL_SECONDS, position
                )
            return json_response(http.HTTPStatus.OK, self.queue.status(help_request))
        except ApiRefusal as exc:
            return error_response(exc.status, exc.code, exc.message, exc.headers)

    def _file(self, headers: Headers, body: bytes, query: str, client_ip: str) -> Response:
        self._query(query, ())
        payload = self._json_body(headers, body)
        allowed = {"organisation_key", "description", "category", "language", "diagnostics_digest"}
        unknown = sorted(set(payload) - allowed)
        if unknown:
            raise ApiRefusal(
                http.HTTPStatus.BAD_REQUEST,
                "bad_request",
                f"Unknown field {unknown[0]!r}; send only {', '.join(sorted(allowed))}.",
            )
        texts = {}
        for name in ("organisation_key", "description", "category", "language"):
            value = payload.get(name, "" if name != "language" else "en")
            if not isinstance(value, str):
                raise ApiRefusal(
                    http.HTTPStatus.BAD_REQUEST, "bad_request", f"{name} must be text."
                )
            texts[name] = value
        digest = payload.get("diagnostics_digest")
        if digest is not None and (not isinstance(digest, str) or len(digest) > 2000):
            raise ApiRefusal(
                http.HTTPStatus.BAD_REQUEST,
                "bad_request",
                "diagnostics_digest must be text of at most 2000 characters.",
            )
        try:
            filed = self.queue.file(
                texts["organisation_key"] or None,
                texts["description"],
                texts["category"],
                texts["language"],
                digest,
                client_ip,
            )
        except QueueRefusal as exc:
            raise refusal(exc) from None
        view = {**self.queue.status(filed.request), "token": filed.token}
        return json_response(
            http.HTTPStatus.CREATED, view, (("Location", f"/help/requests/{filed.request.id}"),)
        )

    def _categories(self, key: str, query: str) -> Response:
        self._query(query, ())
        document = self.queue.categories(key)
        if document is None:
            raise ApiRefusal(
                http.HTTPStatus.NOT_FOUND,
                "not_found",
                "This relay has no category list for your organisation; ask your help desk "
                "for a session code instead.",
            )
        return Response(
            http.HTTPStatus.OK,
            "OK",
            Headers([("Content-Type", "application/json"), ("Cache-Control", "no-store")]),
            document.encode(),
        )

    def _customer(self, request_id: str, headers: Headers) -> HelpRequest:
        try:
            token = bearer_token(headers)
        except HeaderError as exc:
            raise ApiRefusal(http.HTTPStatus.BAD_REQUEST, "bad_request", str(exc)) from None
        try:
            return self.queue.customer_request(request_id, token or "")
        except QueueRefusal as exc:
            raise refusal(exc) from None

    def _status(self, request_id: str, headers: Headers, query: str) -> Response:
        self._query(query, ("after", "position"))
        self.queue.dispatch_if_due()
        help_request = self._customer(request_id, headers)
        return json_response(http.HTTPStatus.OK, self.queue.status(help_request))

    def _withdraw(self, request_id: str, headers: Headers, query: str) -> Response:
        self._query(query, ())
        help_request = self._customer(request_id, headers)
        changed = self.queue.withdraw(help_request, "the customer closed the agent while waiting")
        return json_response(http.HTTPStatus.OK, self.queue.status(changed))

    # technicians

    def technician_routes(
        self, path: str, technician: Technician, request: Request, body: bytes, query: str
    ) -> dict[str, Callable[[], Response]] | None:
        """Handlers by method for a technician's queue path, or None if it is not one."""
        headers = request.headers
        if path == "/api/queue":
            return {"GET": lambda: self._listing(technician, query)}
        if path == "/api/availability":
            return {"PUT": lambda: self._availability(technician, headers, body, query)}
        if match := QUEUE_ACTION_PATH.fullmatch(path):
            request_id, action = match.group(1), match.group(2)
            return {"POST": lambda: self._act(technician, request_id, action, headers, body, query)}
        return None

    def _listing(self, technician: Technician, query: str) -> Response:
        self._query(query, ())
        try:
            profile = self.queue.profile(technician)
            requests = self.queue.listing(technician)
            profile = self.queue.profile(technician)
        except QueueRefusal as exc:
            raise refusal(exc) from None
        names = {p.technician_id: p.name for p in self.queue.profiles()}
        return json_response(
            http.HTTPStatus.OK,
            {
                "technician": profile_json(profile),
                "requests": [
                    {**request_json(r, technician, names), **self._place(r)} for r in requests
                ],
            },
        )

    def _place(self, request: HelpRequest) -> dict[str, Any]:
        """The request's place in the queue and the estimated wait, as its customer sees
        them (None for requests no longer waiting)."""
        view = self.queue.status(request) if request.state.open else {}
        return {
            "position": view.get("position"),
            "estimated_wait_seconds": view.get("estimated_wait_seconds"),
        }

    def _availability(
        self, technician: Technician, headers: Headers, body: bytes, query: str
    ) -> Response:
        self._query(query, ())
        payload = self._json_body(headers, body)
        value = payload.get("availability")
        choices = [a.value for a in Availability]
        if set(payload) != {"availability"} or not isinstance(value, str) or value not in choices:
            raise ApiRefusal(
                http.HTTPStatus.BAD_REQUEST,
                "bad_request",
                'Send {"availability": "available"} (or "busy" or "away").',
            )
        try:
            self.queue.profile(technician)
            profile = self.queue.set_availability(technician, Availability(value))
        except QueueRefusal as exc:
            raise refusal(exc) from None
        return json_response(http.HTTPStatus.OK, profile_json(profile))

    def _act(
        self,
        technician: Technician,
        request_id: str,
        action: str,
        headers: Headers,
        body: bytes,
        query: str,
    ) -> Response:
        self._query(query, ())
        payload = self._json_body(headers, body) if body else {}
        names = {p.technician_id: p.name for p in self.queue.profiles()}
        try:
            if action == "accept":
                if payload:
                    raise QueueRefusal("bad_request", "Accepting takes no body fields; send {}.")
                accepted, session = self.queue.accept(technician, request_id)
                return json_response(
                    http.HTTPStatus.OK,
                    {
                        "request": request_json(accepted, technician, names),
                        "session_id": session.id,
                        "nameplate": session.nameplate,
                        "ticket_id": session.ticket_id,
                    },
                )
            if action == "decline":
                declined = self.queue.decline(technician, request_id)
                return json_response(http.HTTPStatus.OK, request_json(declined, technician, names))
            to, note = payload.get("to"), payload.get("note")
            if (
                set(payload) != {"to", "note"}
                or not isinstance(to, str)
                or not isinstance(note, str)
            ):
                raise QueueRefusal("bad_request", 'Send {"to": NAME or QUEUE, "note": TEXT}.')
            moved = self.queue.transfer(technician, request_id, to, note)
            return json_response(http.HTTPStatus.OK, request_json(moved, technician, names))
        except QueueRefusal as exc:
            raise refusal(exc) from None


def profile_json(profile: TechnicianProfile) -> dict[str, Any]:
    return {
        "name": profile.name,
        "skills": list(profile.skills),
        "capacity": profile.capacity,
        "availability": str(profile.availability),
        "holding": profile.holding,
        "effective_availability": "busy"
        if profile.availability is Availability.AVAILABLE and profile.holding >= profile.capacity
        else str(profile.availability),
    }


def request_json(
    request: HelpRequest, technician: Technician, names: dict[str, str]
) -> dict[str, Any]:
    """A request as technicians see it (the customer's token never leaves the store)."""
    return {
        "request_id": request.id,
        "state": str(request.state),
        "description": request.description,
        "category": request.category,
        "language": request.language,
        "diagnostics_digest": request.diagnostics_digest,
        "offered_to": names.get(request.offered_to or ""),
        "offered_to_you": request.offered_to == technician.id,
        "queue": request.queue,
        "note": request.note,
        "tier": request.tier,
        "created_at": request.created_at,
    }
