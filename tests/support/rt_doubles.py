"""Honest Request Tracker doubles for the relay's alert delivery (relay/alert_delivery.py).

``RequestTrackerStandIn`` is a real HTTP server on loopback that speaks the part of RT's
REST 2.0 the relay's alert tickets use (create, search by subject, comment, search
comments by subject, resolve) and keeps what it was given, so a test counts tickets and
comments the way it would in RT. It writes down when each call started and ended, in
order, and can make calls slow, hold them until several are in flight together, refuse
them, or do the work and lose the answer (drop the connection without answering).

``AnswerLosingProxy`` sits in front of the real RT (tests/support/helpdesk.py): it passes
every call on, and for the first N ticket creations lets RT make the ticket, then drops
the relay's connection instead of answering.
"""

from __future__ import annotations

import http.server
import json
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tests.support.timeouts import scaled


@dataclass
class Ticket:
    id: int
    subject: str
    status: str = "new"
    #: Subjects of its comments, in the order they were added.
    comments: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Call:
    """One REST call as the stand-in saw it: ``what`` is create, search, comment,
    comment-search or resolve; ``about`` the ticket id (or the searched tag)."""

    what: str
    about: str
    started: int  # position in the stand-in's sequence of starts and ends
    ended: int


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-answer (the relay killed on purpose)


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class RequestTrackerStandIn:
    """RT's REST 2.0 for alert tickets, at ``url`` (give it to the relay as --rt-url)."""

    def __init__(self) -> None:
        self.tickets: dict[int, Ticket] = {}
        self.calls: list[Call] = []
        #: Seconds each call takes at most (a random share of it), to shuffle endings.
        self.jitter = 0.0
        #: Calls wait until this many are in flight together (or ``gather_timeout``
        #: passes: then they answer 503), which a one-at-a-time client never reaches.
        self.gather = 1
        self.gather_timeout = scaled(10)
        #: While set, creations and comments are done at once but not answered.
        self.hold_answers = threading.Event()
        self._released = threading.Event()
        #: Creations refused with 500 while they name one of these (in their subject).
        self.refuse_subjects: set[str] = set()
        #: How many of the next creations are done but never answered.
        self.lose_answers = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self._clock = 0
        self._lock = threading.Condition()
        stand_in = self

        class Handler(_Quiet):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                stand_in._serve(self)

            do_POST = do_PUT = do_GET  # noqa: N815

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(scaled(5))

    def __enter__(self) -> RequestTrackerStandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def release(self) -> None:
        """Answer the held calls (see :attr:`hold_answers`; those whose client went
        away answer no one) and hold no more."""
        self.hold_answers.clear()
        self._released.set()

    # -- what a test reads ---------------------------------------------------------------

    def tickets_named(self, text: str) -> list[Ticket]:
        with self._lock:
            return [t for t in self.tickets.values() if text in t.subject]

    def count(self, what: str) -> int:
        with self._lock:
            return sum(call.what == what for call in self.calls)

    def calls_about(self, ticket: int) -> list[Call]:
        """The calls that acted on ``ticket`` (its creation first), in the order they started."""
        with self._lock:
            return sorted(
                (c for c in self.calls if c.about == str(ticket)), key=lambda c: c.started
            )

    # -- the server ----------------------------------------------------------------------

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def _serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length)) if length else None
        path, _, query = handler.path.partition("?")
        path = path.removeprefix("/REST/2.0")
        with self._lock:
            started = self._tick()
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self._lock.notify_all()
            gathered = self._lock.wait_for(
                lambda: self.most_in_flight >= self.gather, self.gather_timeout
            )
        try:
            if self.jitter:
                time.sleep(random.random() * self.jitter)
            if not gathered:
                self._answer(handler, 503, {"message": "not enough calls at once"})
                return
            status, answer, what, about, lose = self._act(handler.command, path, query, body)
            held = self.hold_answers.is_set() and what in ("create", "comment")
            dropped = lose or (held and not self._released.wait(scaled(60)))
            # ended: counted before the answer (or the dropped connection) leaves, so a
            # call the relay starts once it has the answer always counts as later.
            with self._lock:
                self.calls.append(Call(what, about, started, self._tick()))
            if dropped:
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
            else:
                self._answer(handler, status, answer)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _act(
        self, method: str, path: str, query: str, body: Any
    ) -> tuple[int, Any, str, str, bool]:
        """Do one call: (status, answer, what, about, lose the answer)."""
        with self._lock:
            if method == "POST" and path == "/ticket":
                subject = str(body["Subject"])
                if any(name in subject for name in self.refuse_subjects):
                    return 500, {"message": "refused"}, "refused", "", False
                ticket = Ticket(len(self.tickets) + 1, subject)
                self.tickets[ticket.id] = ticket
                lose = self.lose_answers > 0
                self.lose_answers -= lose
                return 201, {"id": ticket.id}, "create", str(ticket.id), lose
            if method == "GET" and path == "/tickets":
                (text,) = urllib.parse.parse_qs(query)["query"]
                tag = text.removeprefix("Subject LIKE '").removesuffix("'")
                found = [{"id": t.id} for t in self.tickets.values() if tag in t.subject]
                return 200, {"items": found, "count": len(found)}, "search", tag, False
            if method == "POST" and path.endswith("/comment"):
                ticket = self.tickets[int(path.split("/")[2])]
                ticket.comments.append(str(body["Subject"]))
                return 201, ["Comments added"], "comment", str(ticket.id), False
            if method == "POST" and path == "/attachments":
                tag = str(body[0]["value"])
                count = sum(tag in s for t in self.tickets.values() for s in t.comments)
                return 200, {"count": count, "total": count}, "comment-search", tag, False
            if method == "PUT" and path.startswith("/ticket/"):
                ticket = self.tickets[int(path.split("/")[2])]
                ticket.status = str(body["Status"])
                return 200, ["Status changed"], "resolve", str(ticket.id), False
        return 404, {"message": f"no {method} {path} here"}, "unknown", path, False

    @staticmethod
    def _answer(handler: http.server.BaseHTTPRequestHandler, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass  # the relay went away


class AnswerLosingProxy:
    """In front of ``backend`` (a real RT): ``lose_answers`` ticket creations reach RT,
    which makes the ticket; their client gets a dropped connection instead of the 201."""

    def __init__(self, backend: str, lose_answers: int = 1) -> None:
        self.backend = backend
        self.lose_answers = lose_answers
        self.lost = 0
        proxy = self

        class Handler(_Quiet):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                proxy._forward(self)

            do_POST = do_PUT = do_GET  # noqa: N815

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(scaled(5))

    def __enter__(self) -> AnswerLosingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _forward(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        headers = {
            name: value
            for name, value in handler.headers.items()
            if name.lower() in ("authorization", "content-type", "accept")
        }
        request = urllib.request.Request(
            self.backend + handler.path, data=body, method=handler.command, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=scaled(60)) as response:
                status, data = response.status, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                status, data = exc.code, exc.read()
        creation = handler.command == "POST" and handler.path.endswith("/REST/2.0/ticket")
        if creation and status == 201 and self.lost < self.lose_answers:
            self.lost += 1  # RT made the ticket; the client never hears of it
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
