"""Help-desk connectors: where the outbox delivers events, over plain blocking HTTP.

A connector turns an event document (:mod:`relay.events`) into one HTTP request and
says whether the help desk acknowledged it. Only a 2xx answer counts; anything else,
a redirect included (a signed event is never sent on to another address), is a
failure the outbox retries. Calls block (stdlib ``urllib``); the outbox runs them in
a worker thread. Connector URLs are ``https://``, or ``http://`` on loopback only.

* :class:`WebhookConnector`: ``POST`` the document as JSON, signed with HMAC-SHA256
  (see :mod:`relay.events` for the headers), every event type.
* :class:`RequestTrackerConnector`: a comment on the RT ticket through REST 2.0
  (``POST /REST/2.0/ticket/ID/comment``): the join link when a session is created and
  the summary when it is uploaded, for tickets whose id is RT's number (``1042``,
  ``#1042``, ``RT-1042``). A help request opens a ticket (``request.created``: ``POST
  /REST/2.0/ticket`` in the configured queue) whose subject carries the request's tag;
  its later events are comments on the ticket found by that tag, and
  ``request.solved`` (self-help fixed it) also resolves the ticket. RT has no idempotency keys, so the comment's subject carries
  the event id and a retry first searches RT for it, so that a comment whose
  acknowledgement was lost is not posted twice.
"""

from __future__ import annotations

import abc
import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from .errors import ConfigError, DeliveryError
from .events import (
    EVENT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    EventType,
    encode_document,
    rt_comment,
    rt_event_tag,
    rt_request_comment,
    rt_request_tag,
    rt_request_ticket,
    rt_ticket_number,
    sign,
)

__all__ = [
    "Connector",
    "DeliveryError",
    "RequestTrackerConnector",
    "WebhookConnector",
    "check_connector_url",
]

USER_AGENT = "puente-relay"

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_connector_url(url: str, what: str) -> str:
    """Accept ``https://`` anywhere and ``http://`` on loopback; raise ConfigError otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"The {what} {url!r} is not a web address; it looks like https://...")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ConfigError(
            f"The {what} {url} is not encrypted; use https:// (plain http:// is accepted "
            "only on this machine's loopback address)."
        )
    if parts.username or parts.password:
        raise ConfigError(f"Put no credentials in the {what}; use the separate options.")
    return url.rstrip("/")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is answered as it is: a failure, retried later


_OPENER = urllib.request.build_opener(_NoRedirects)


def http_call(
    method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float
) -> tuple[int, bytes]:
    """One HTTP request; return ``(status, body)``. DeliveryError if nothing came back."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status), response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read(64 * 1024)
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"could not reach {_where(url)} ({reason})") from None


def _where(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Connector(abc.ABC):
    """A help desk the relay delivers events to."""

    #: Short, stable name: outbox rows are keyed by it.
    name: str

    @abc.abstractmethod
    def wants(self, event_type: str, session: dict[str, Any]) -> bool:
        """Whether this help desk gets events of this type for this session."""

    @abc.abstractmethod
    def deliver(self, document: dict[str, Any], attempt: int) -> str:
        """Send one event (blocking); return how it was acknowledged or raise DeliveryError."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where events go, for logs (never a secret)."""


class WebhookConnector(Connector):
    """A generic signed JSON webhook."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = check_connector_url(url, "webhook URL")
        if len(secret) < 16:
            raise ConfigError(
                "The webhook secret must be at least 16 characters; make one with "
                "'python3 -c \"import secrets; print(secrets.token_urlsafe(32))\"'."
            )
        self._secret = secret
        self._timeout = timeout
        self._clock = clock

    def wants(self, event_type: str, session: dict[str, Any]) -> bool:
        return event_type != EventType.DELIVERY_ACKNOWLEDGED

    def deliver(self, document: dict[str, Any], attempt: int) -> str:
        body = encode_document(document)
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: str(document["type"]),
            IDEMPOTENCY_HEADER: str(document["id"]),
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            "X-Puente-Attempt": str(attempt),
        }
        status, _ = http_call("POST", self.url, body, headers, self._timeout)
        if 200 <= status < 300:
            return f"HTTP {status}"
        raise DeliveryError(f"the webhook answered HTTP {status}")

    def describe(self) -> str:
        return f"webhook {_where(self.url)}"


class RequestTrackerConnector(Connector):
    """Comments on Request Tracker tickets through its REST 2.0 API."""

    name = "rt"

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        queue: str = "General",
    ) -> None:
        self.url = check_connector_url(url, "Request Tracker URL")
        self.queue = queue
        if token and (user or password):
            raise ConfigError(
                "Give Request Tracker either a token or a user and password, not both."
            )
        if token:
            self._authorization = f"token {token}"
        elif user and password:
            pair = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._authorization = f"Basic {pair}"
        else:
            raise ConfigError(
                "Request Tracker needs credentials: --rt-token TOKEN, or --rt-user and "
                "--rt-password (or PUENTE_RT_TOKEN / PUENTE_RT_USER / PUENTE_RT_PASSWORD)."
            )
        self._timeout = timeout

    def wants(self, event_type: str, session: dict[str, Any]) -> bool:
        if event_type.startswith("request."):
            return True
        if event_type not in (EventType.SESSION_CREATED, EventType.SESSION_SUMMARY):
            return False
        return rt_ticket_number(str(session.get("ticket_id", ""))) is not None

    def deliver(self, document: dict[str, Any], attempt: int) -> str:
        if str(document["type"]).startswith("request."):
            return self._deliver_request_event(document, attempt)
        number = rt_ticket_number(str(document["session"]["ticket_id"]))
        if number is None:  # wants() keeps these out of the outbox
            raise DeliveryError("the ticket id is not a Request Tracker ticket number")
        return self._comment(number, document, attempt, *rt_comment(document))

    def _comment(
        self, number: int, document: dict[str, Any], attempt: int, subject: str, text: str
    ) -> str:
        """Comment on ticket ``number`` once, whatever the attempt."""
        if attempt > 1 and self._already_commented(str(document["id"])):
            return "already on the ticket"
        payload = {"Subject": subject, "Content": text, "ContentType": "text/plain"}
        status, body = self._call("POST", f"/ticket/{number}/comment", payload)
        if 200 <= status < 300:
            return f"comment on RT ticket {number} (HTTP {status})"
        raise DeliveryError(
            f"Request Tracker answered HTTP {status} for ticket {number}: {_rt_message(body)}"
        )

    def describe(self) -> str:
        return f"Request Tracker {_where(self.url)}"

    def _deliver_request_event(self, document: dict[str, Any], attempt: int) -> str:
        request_id = str(document["request"]["request_id"])
        existing = self._request_ticket(request_id)
        if document["type"] == EventType.REQUEST_CREATED:
            if existing is not None:  # an earlier attempt's ticket reached RT
                return f"RT ticket {existing} already open"
            subject, text = rt_request_ticket(document)
            payload = {
                "Queue": self.queue,
                "Subject": subject,
                "Content": text,
                "ContentType": "text/plain",
            }
            status, body = self._call("POST", "/ticket", payload)
            if 200 <= status < 300:
                return f"RT ticket opened (HTTP {status}): {_rt_message(body)}"
            raise DeliveryError(f"Request Tracker answered HTTP {status}: {_rt_message(body)}")
        if existing is None:
            raise DeliveryError("the help request's RT ticket is not there yet")
        done = self._comment(existing, document, attempt, *rt_request_comment(document))
        if document["type"] == EventType.REQUEST_SOLVED:
            status, body = self._call("PUT", f"/ticket/{existing}", {"Status": "resolved"})
            if not 200 <= status < 300:  # retried: the comment is not posted twice
                raise DeliveryError(
                    f"Request Tracker answered HTTP {status} resolving ticket {existing}: "
                    f"{_rt_message(body)}"
                )
            done += ", ticket resolved"
        return done

    def _request_ticket(self, request_id: str) -> int | None:
        """The RT ticket opened for a help request, found by the tag in its subject."""
        # TicketSQL (RT's JSON search does not match ticket subjects); the id is hex.
        tag = rt_request_tag(request_id).strip("[]")
        query = urllib.parse.quote(f"Subject LIKE '{tag}'")
        status, body = self._call("GET", f"/tickets?query={query}", None)
        if status != 200:
            raise DeliveryError(
                f"Request Tracker answered HTTP {status} to a search: {_rt_message(body)}"
            )
        try:
            items = json.loads(body).get("items") or []
            return int(items[0]["id"]) if items else None
        except (ValueError, AttributeError, TypeError, KeyError, IndexError):
            raise DeliveryError("Request Tracker answered a search with something else") from None

    def _already_commented(self, event_id: str) -> bool:
        """Whether an earlier attempt's comment reached RT (its subject holds the tag)."""
        query = [{"field": "Subject", "operator": "LIKE", "value": rt_event_tag(event_id)}]
        status, body = self._call("POST", "/attachments?fields=Subject", query)
        if status != 200:
            raise DeliveryError(
                f"Request Tracker answered HTTP {status} to a search: {_rt_message(body)}"
            )
        try:
            found = json.loads(body)
            return int(found.get("count") or found.get("total") or 0) > 0
        except (ValueError, AttributeError, TypeError):
            raise DeliveryError("Request Tracker answered a search with something else") from None

    def _call(self, method: str, path: str, payload: Any) -> tuple[int, bytes]:
        headers = {
            "Authorization": self._authorization,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        body = json.dumps(payload).encode() if payload is not None else None
        return http_call(method, f"{self.url}/REST/2.0{path}", body, headers, self._timeout)


def _rt_message(body: bytes) -> str:
    try:
        value = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    if isinstance(value, dict) and "message" in value:
        return str(value["message"])[:200]
    return json.dumps(value)[:200]
