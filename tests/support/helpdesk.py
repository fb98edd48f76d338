"""Honest help-desk doubles for tests: a real webhook receiver and a real Request Tracker.

``WebhookReceiver`` is a real HTTP server on loopback that does what a help desk's
endpoint should: verify the HMAC signature and timestamp (401 otherwise), then
process each idempotency key once, however often it is delivered. It can be down
(nothing listening on its port), refuse with a status, or lose its acknowledgement
(process the event, then drop the connection without answering).

``RequestTracker`` runs Debian's ``request-tracker5`` (``rt-server``) on a free port
with a private copy of its SQLite database, so tests read comments back through RT's
own REST 2.0 API.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.events import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)
from tests.support.timeouts import scaled


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``condition()`` every ``interval`` s until true, or fail saying ``what`` did not happen."""
    deadline = time.monotonic() + scaled(timeout)
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


@dataclass
class Received:
    """One request the receiver accepted as genuine."""

    key: str
    event: dict[str, Any]
    headers: dict[str, str]


class WebhookReceiver:
    """A help desk's webhook endpoint on ``http://127.0.0.1:PORT/hooks/puente``."""

    def __init__(self, secret: str, port: int | None = None) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/puente"
        #: Every genuine delivery, duplicates included, in arrival order.
        self.deliveries: list[Received] = []
        #: Events processed, once per idempotency key.
        self.processed: dict[str, dict[str, Any]] = {}
        #: How many times each key was processed (the help desk's side effects).
        self.process_count: Counter[str] = Counter()
        self.rejected_signatures = 0
        #: Answer this status instead of 200 (while set), after verifying.
        self.refuse_with: int | None = None
        #: Keys whose first delivery is processed but never acknowledged.
        self.lose_ack_for_first: int = 0
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # life

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: nothing listens on the port until start() again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(scaled(5))

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # queries

    def events(self, type_: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.processed.values() if e["type"] == type_]

    def wait_for(self, type_: str, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        wait_until(lambda: len(self.events(type_)) >= count, timeout, f"{count} {type_} event(s)")
        return self.events(type_)

    # the endpoint

    def _handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length", "0"))
        body = request.rfile.read(length)
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not verify_signature(self.secret, timestamp, body, signature, time.time()):
            with self._lock:
                self.rejected_signatures += 1
            self._answer(request, 401)
            return
        event = json.loads(body)
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        assert key == event["id"], "the idempotency key is the event id"
        lose_ack = False
        with self._lock:
            self.deliveries.append(Received(key, event, dict(request.headers.items())))
            if self.refuse_with is not None:
                status = self.refuse_with
            else:
                status = 200
                if key not in self.processed:  # the idempotent part: once per key
                    self.processed[key] = event
                    self.process_count[key] += 1
                    if self.lose_ack_for_first > 0:
                        self.lose_ack_for_first -= 1
                        lose_ack = True
        if lose_ack:
            # Processed, but the acknowledgement never reaches the relay.
            request.close_connection = True
            request.connection.shutdown(socket.SHUT_RDWR)
            return
        self._answer(request, status)

    @staticmethod
    def _answer(request: http.server.BaseHTTPRequestHandler, status: int) -> None:
        payload = b'{"ok": true}' if status == 200 else b'{"ok": false}'
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)


# ---------------------------------------------------------------------------
# Request Tracker 5
# ---------------------------------------------------------------------------

RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
RT_LIB = Path("/usr/share/request-tracker5/lib")
#: The SQLite database Debian's package sets up (root / password), copied per test run.
RT_DATABASE = Path("/var/lib/dbconfig-common/sqlite3/request-tracker5/rtdb")

_RT_CONFIG = """\
Set($rtname, 'puente-test');
Set($Organization, 'puente-test');
Set($WebPath, "");
Set($WebDomain, "127.0.0.1");
Set($WebPort, {port});
Set($WebBaseURL, "http://127.0.0.1:{port}");
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{database}');
Set($LogToSyslog, undef);
Set($LogToSTDERR, 'error');
Set($MailCommand, 'testfile');
1;
"""


def rt_missing() -> str | None:
    """Why Request Tracker cannot run here, or None if it can."""
    if not RT_SERVER.exists():
        return "Request Tracker is not installed (apt-get install request-tracker5 rt5-db-sqlite rt5-standalone)"
    if not RT_DATABASE.exists():
        return f"request-tracker5 is installed but its SQLite database {RT_DATABASE} is missing"
    return None


class RequestTracker:
    """A real RT 5 server on loopback with its own copy of the database."""

    user = "root"
    password = "password"

    def __init__(self, workdir: Path, server_args: tuple[str, ...] = ()) -> None:
        """``server_args``: more rt-server options, e.g. ``("--max-workers", "2")`` (it
        runs Starlet with 10 worker processes unless told)."""
        workdir.mkdir(parents=True, exist_ok=True)
        self._workdir = workdir
        self._server_args = server_args
        self._database = workdir / "rtdb"
        shutil.copyfile(RT_DATABASE, self._database)
        (workdir / "conf.d").mkdir(exist_ok=True)
        self.token = self._make_token(self._env(free_port()))
        # A free port can be taken by someone else before RT binds it: then try another.
        problems = []
        for _ in range(3):
            problem = self._start(free_port())
            if problem is None:
                return
            problems.append(problem)
        raise AssertionError("RT did not start:\n" + "\n---\n".join(problems))

    def _env(self, port: int) -> dict[str, str]:
        config = self._workdir / "RT_SiteConfig.pm"
        config.write_text(_RT_CONFIG.format(port=port, database=self._database))
        return {
            **os.environ,
            "RT_SITE_CONFIG": str(config),
            "RT_SITE_CONFIG_DIR": str(self._workdir / "conf.d"),
        }

    def _start(self, port: int) -> str | None:
        """Start rt-server on ``port``; None once it answers, else what went wrong."""
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        env = self._env(port)
        self._logfile = self._workdir / f"rt-{port}.log"
        self._log = self._logfile.open("w")
        self.proc = subprocess.Popen(
            [str(RT_SERVER), "--port", str(port), *self._server_args],
            cwd=self._workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(self._answers, 60, "Request Tracker to answer REST 2.0", 0.2)
        except AssertionError as exc:
            self.stop()
            return f"{exc}: {self._logfile.read_text()[-2000:]}"
        return None

    @staticmethod
    def _make_token(env: dict[str, str]) -> str:
        """An RT auth token for root (RT::Authen::Token is part of RT 5), made with RT's API."""
        script = (
            "use strict; use RT; RT::LoadConfig(); RT::Init();"
            'my $u = RT::User->new(RT->SystemUser); $u->Load("root");'
            "my ($ok, $msg, $token) = RT::AuthToken->new(RT->SystemUser)"
            '->Create(Owner => $u->Id, Description => "puente tests");'
            'die "$msg\\n" unless $ok; print $token;'
        )
        result = subprocess.run(
            ["perl", f"-I{RT_LIB}", "-e", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=scaled(60),
        )
        assert result.returncode == 0, f"cannot make an RT token: {result.stderr[-2000:]}"
        return result.stdout.strip()

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"rt-server exited with status {self.proc.returncode}")
        try:
            status, _ = self.rest("GET", "/queues/all")
        except (OSError, ValueError):  # not listening yet, or still booting (not JSON yet)
            return False
        return status == 200

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(scaled(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def rest(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        """One REST 2.0 call as root; returns ``(status, parsed JSON)``."""
        data = None if payload is None else json.dumps(payload).encode()
        auth = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request = urllib.request.Request(
            f"{self.url}/REST/2.0{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=scaled(10)) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read() or b"null")

    def create_ticket(self, subject: str) -> int:
        status, body = self.rest(
            "POST",
            "/ticket",
            {"Queue": "General", "Subject": subject, "Content": "The printer is broken."},
        )
        assert status == 201, body
        return int(body["id"])

    def comments(self, ticket: int, kind: str = "Comment") -> list[dict[str, str]]:
        """The ticket's comments (subject and text), oldest first, read through REST 2.0;
        ``kind="Create"``: the text the ticket was opened with."""
        status, history = self.rest("GET", f"/ticket/{ticket}/history?fields=Type&per_page=100")
        assert status == 200, history
        comments = []
        for item in history["items"]:
            if item.get("Type") != kind:
                continue
            status, attachments = self.rest(
                "GET", f"/transaction/{item['id']}/attachments?fields=Subject,Content,ContentType"
            )
            assert status == 200, attachments
            for attachment in attachments["items"]:
                if attachment.get("ContentType") == "text/plain":
                    comments.append(
                        {"subject": attachment.get("Subject", ""), "text": attachment["Content"]}
                    )
        return comments
