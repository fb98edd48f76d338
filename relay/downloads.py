"""The organisation's one-file agents, kept by the relay and served from the join page.

An operator adds one agent per system (``puente-relay downloads add FILE --os linux``):
:class:`DownloadShelf` copies it under ``DATA_DIR/downloads/`` with its size, SHA-256
and, where the installer build made one, the organisation's signature. The join page
(:mod:`relay.joinpage`) lists them; :class:`DownloadDesk` serves them at
``GET /join/{session_id}/agent/{os}`` and the page's pictures at
``GET /join/assets/{name}.png``.

A served agent is named after the session's nameplate (``puente-agent-417``, with
``.exe`` on Windows), never its secret, which the relay does not know: the agent reads
its own name and asks only for the 6 digits the technician reads out.

Streaming: the file goes out with :meth:`asyncio.loop.sendfile` in 1 MiB segments
(zero-copy on plain TCP, small buffers through TLS), so memory does not grow with the
file; a client that reads nothing for ``stall_timeout`` seconds is dropped. One range
(``Range: bytes=START-END``) is honoured with 206; a range past the end gets 416;
several ranges, or an ``If-Range`` that no longer matches, get the whole file.

Limits: the same door as every request (:mod:`relay.front_door`), then per address
``DOWNLOADS_PER_MINUTE`` requests and one of the address's connection slots for as
long as the download runs (:class:`relay.admission.AddressLimits`); all downloads
together share a :class:`ByteBudget` (``download_rate``), so that a crowd of customers
downloading at once leaves the CPU to the sessions the relay forwards.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email.utils
import hashlib
import http
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .errors import ConfigError
from .http import RelayConnection, body_response, error_response
from .ratelimit import SlidingWindowLimiter
from .records import SessionState
from .store import RelayStore

logger = logging.getLogger("relay.server")

#: The systems an agent is built for, in the order the page lists them by default.
SYSTEMS = ("windows", "macos", "linux")
SYSTEM_NAMES = {"windows": "Windows", "macos": "macOS", "linux": "Linux"}

#: Download requests (ranges included) one address may make per minute.
DOWNLOADS_PER_MINUTE = 30
#: Bytes sent per sendfile call; the stall timeout applies to each.
SEGMENT = 256 * 1024
#: All downloads together, bytes per second (512 Mb/s): above that a burst of customers
#: would take the CPU the relay's forwarding needs (bench/downloads.py measures it;
#: ``puente-relay serve --download-rate``).
DOWNLOAD_RATE = 64e6
#: Where the join page's pictures live (screenshots of the agent's window, made by tests).
ASSETS = Path(__file__).resolve().parent / "static"

AGENT_PATH = re.compile(r"/join/([0-9a-f]{32})/agent/([a-z0-9]{1,16})")
ASSET_PATH = re.compile(r"/join/assets/([a-z0-9-]{1,64}\.png)")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass(frozen=True)
class AgentDownload:
    """One stored agent: what ``downloads list`` shows and the join page offers."""

    system: str  # one of SYSTEMS
    original_name: str
    size: int
    sha256: str
    added_at: float
    signature: str | None  # the organisation's signature (base64) when the build made one

    @property
    def etag(self) -> str:
        return f'"{self.sha256[:32]}"'

    def served_name(self, nameplate: str) -> str:
        """``puente-agent-417`` (``.exe`` on Windows): the nameplate, never the secret."""
        return f"puente-agent-{nameplate}" + (".exe" if self.system == "windows" else "")

    def as_json(self) -> dict[str, object]:
        return asdict(self)


class DownloadShelf:
    """The agents under ``DATA_DIR/downloads``: one per system, each with a JSON card."""

    def __init__(self, data_dir: str | Path) -> None:
        self.folder = Path(data_dir) / "downloads"

    def add(
        self, source: Path, system: str, now: float, signature: str | None = None
    ) -> AgentDownload:
        """Copy ``source`` in (replacing this system's agent); raise ConfigError if unusable."""
        check_system(system)
        if not source.is_file():
            raise ConfigError(f"{source} is not a file; give the path of the built agent.")
        self.folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with (
            source.open("rb") as reader,
            tempfile.NamedTemporaryFile(dir=self.folder, prefix=".adding-", delete=False) as out,
        ):
            try:
                while chunk := reader.read(SEGMENT):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            except BaseException:
                Path(out.name).unlink(missing_ok=True)
                raise
        size = Path(out.name).stat().st_size
        if size == 0:
            Path(out.name).unlink()
            raise ConfigError(f"{source} is empty; build the agent again and add that file.")
        download = AgentDownload(system, source.name, size, digest.hexdigest(), now, signature)
        os.replace(out.name, self._binary(system))
        _write_atomically(self._card(system), json.dumps(download.as_json(), indent=1) + "\n")
        return download

    def remove(self, system: str) -> bool:
        """Forget this system's agent; False if there was none."""
        check_system(system)
        had = self._card(system).exists()
        self._card(system).unlink(missing_ok=True)
        self._binary(system).unlink(missing_ok=True)
        return had

    def get(self, system: str) -> AgentDownload | None:
        """This system's agent, or None if none was added (or its file went missing)."""
        try:
            card = json.loads(self._card(system).read_text(encoding="utf-8"))
            download = AgentDownload(**card)
            size = self._binary(system).stat().st_size
        except (OSError, ValueError, TypeError):
            return None
        if size != download.size:
            logger.warning(
                "download %s: file is %d bytes, card says %d", system, size, download.size
            )
            return None
        return download

    def all(self) -> list[AgentDownload]:
        return [d for system in SYSTEMS if (d := self.get(system)) is not None]

    def path(self, system: str) -> Path:
        return self._binary(system)

    def _binary(self, system: str) -> Path:
        return self.folder / f"{system}.agent"

    def _card(self, system: str) -> Path:
        return self.folder / f"{system}.json"


def check_system(system: str) -> None:
    if system not in SYSTEMS:
        raise ConfigError(
            f"{system!r} is not a system Puente builds agents for; use one of "
            + ", ".join(SYSTEMS)
            + "."
        )


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


class ByteBudget:
    """A token bucket shared by every download: at most ``rate`` bytes a second, bursts of
    ``burst``. Time is an input (``now``); :meth:`delay` says how long to wait first."""

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at: float | None = None

    def delay(self, size: int, now: float) -> float:
        """Spend ``size`` bytes at ``now``; return the seconds to wait before sending them."""
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= size
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class UnsatisfiableRange(ValueError):
    """The requested range starts past the end of the file (answered with 416)."""


def requested_range(headers: Headers, download: AgentDownload) -> tuple[int, int] | None:
    """The one byte range asked for, as ``(first, last)`` inclusive; None for the whole file.

    Raise UnsatisfiableRange for a range that starts past the end. Several ranges, a
    malformed header, or an ``If-Range`` other than this file's ETag: the whole file
    (RFC 9110 lets a server ignore a Range it does not serve).
    """
    values = headers.get_all("Range")
    if len(values) != 1:
        return None
    if_range = headers.get_all("If-Range")
    if if_range and if_range != [download.etag]:
        return None
    match = _RANGE.fullmatch(values[0].strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    size = download.size
    first_text, last_text = match.groups()
    if first_text == "":  # the last N bytes
        length = int(last_text)
        if length == 0:
            raise UnsatisfiableRange(values[0])
        return max(0, size - length), size - 1
    first = int(first_text)
    last = size - 1 if last_text == "" else min(int(last_text), size - 1)
    if first >= size:
        raise UnsatisfiableRange(values[0])
    if last < first:
        return None
    return first, last


class _AlreadySent(Response):
    """What websockets is handed back after a download wrote its own answer: nothing."""

    def serialize(self) -> bytes:
        return b""


class DownloadDesk:
    """Answers ``/join/{id}/agent/{os}`` and ``/join/assets/{name}`` (module docstring)."""

    def __init__(
        self,
        shelf: DownloadShelf | None,
        store: Callable[[], RelayStore],
        clock: Callable[[], float],
        stall_timeout: float = 60.0,
        rate: float = DOWNLOAD_RATE,
    ) -> None:
        self.shelf = shelf
        self._store = store
        self._clock = clock
        self._stall_timeout = stall_timeout
        self._budget = ByteBudget(rate, burst=4 * SEGMENT)
        self._limiter = SlidingWindowLimiter(DOWNLOADS_PER_MINUTE, 60.0)

    def answer(
        self, connection: RelayConnection, request: Request, ip: str
    ) -> Response | Awaitable[Response] | None:
        """The answer for a download or asset path; None for any other path."""
        path = request.path.partition("?")[0]
        agent = AGENT_PATH.fullmatch(path)
        asset = ASSET_PATH.fullmatch(path)
        if agent is None and asset is None:
            return None
        if request.method not in ("GET", "HEAD"):
            return error_response(
                http.HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                f"This route does not accept {request.method}; use GET or HEAD.",
                (("Allow", "GET, HEAD"),),
            )
        if not self._limiter.allow(ip, self._clock()):
            return error_response(
                http.HTTPStatus.TOO_MANY_REQUESTS,
                "rate_limited",
                "This address asked for too many downloads in a minute; wait a minute and "
                "click the download again.",
                (("Retry-After", "60"),),
            )
        if asset is not None:
            return _asset_response(asset.group(1), request.method == "HEAD")
        assert agent is not None
        return self._agent(connection, request, ip, agent.group(1), agent.group(2))

    def _agent(
        self, connection: RelayConnection, request: Request, ip: str, session_id: str, system: str
    ) -> Response | Awaitable[Response]:
        if system not in SYSTEMS:
            return _not_found(
                f"There is no agent for {system!r}; the join page offers "
                + ", ".join(SYSTEMS)
                + "."
            )
        record = self._store().get_session(session_id)
        if record is None or record.state_at(self._clock()) is not SessionState.WAITING:
            return error_response(
                http.HTTPStatus.GONE,
                "gone",
                "This session's link no longer works (it expired or was used); ask your "
                "technician for a new one.",
            )
        download = self.shelf.get(system) if self.shelf is not None else None
        if download is None or self.shelf is None:
            return _not_found(
                f"This relay has no agent for {SYSTEM_NAMES[system]}; ask your technician "
                "for the agent, or choose another system on the join page."
            )
        try:
            span = requested_range(request.headers, download)
        except UnsatisfiableRange:
            return error_response(
                http.HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                f"The file has only {download.size} bytes; start the download again.",
                (("Content-Range", f"bytes */{download.size}"),),
            )
        if not connection.take_upgrade_slot(ip):
            return error_response(
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                "unavailable",
                "Your address has too many connections to this relay open; wait for the "
                "other downloads to finish and try again.",
                (("Retry-After", "10"),),
            )
        name = download.served_name(record.nameplate)
        return self._stream(
            connection, request.method, download, self.shelf.path(system), span, name
        )

    async def _stream(
        self,
        connection: RelayConnection,
        method: str,
        download: AgentDownload,
        path: Path,
        span: tuple[int, int] | None,
        name: str,
    ) -> Response:
        """Write the head, then the bytes, straight to the transport; then close."""
        first, last = span if span is not None else (0, download.size - 1)
        headers = Headers(
            [
                ("Date", email.utils.formatdate(usegmt=True)),
                ("Server", "puente-relay"),
                ("Connection", "close"),
                ("Content-Type", "application/octet-stream"),
                ("Content-Disposition", f'attachment; filename="{name}"'),
                ("Content-Length", str(last - first + 1)),
                ("Accept-Ranges", "bytes"),
                ("ETag", download.etag),
                ("Last-Modified", email.utils.formatdate(download.added_at, usegmt=True)),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                ("Content-Security-Policy", "default-src 'none'; sandbox"),
            ]
        )
        status = http.HTTPStatus.OK
        if span is not None:
            status = http.HTTPStatus.PARTIAL_CONTENT
            headers["Content-Range"] = f"bytes {first}-{last}/{download.size}"
        # A slow customer line may take minutes: from here the stall timeout applies.
        connection.lift_open_timeout()
        transport = connection.transport
        loop = asyncio.get_running_loop()
        sent = 0
        try:
            transport.write(Response(status.value, status.phrase, headers).serialize())
            if method == "GET":
                with path.open("rb") as file:
                    offset = first
                    while offset <= last:
                        count = min(SEGMENT, last + 1 - offset)
                        wait = self._budget.delay(count, loop.time())
                        if wait > 0:
                            await asyncio.sleep(wait)
                        async with asyncio.timeout(self._stall_timeout):
                            sent += await loop.sendfile(transport, file, offset, count)
                        offset += count
            transport.close()  # flushes what is buffered, then closes
            async with asyncio.timeout(self._stall_timeout):
                await asyncio.shield(connection.connection_lost_waiter)
        except (OSError, RuntimeError, TimeoutError) as exc:
            logger.info(
                "download %s stopped after %d bytes ip=%s (%s)",
                download.system,
                sent,
                connection.client_ip,
                type(exc).__name__,
            )
            transport.abort()
        else:
            logger.info(
                "download %s %s bytes=%d-%d status=%d ip=%s",
                download.system,
                method,
                first,
                last,
                status.value,
                connection.client_ip,
            )
        return _AlreadySent(status.value, status.phrase, Headers())


def _not_found(message: str) -> Response:
    return error_response(http.HTTPStatus.NOT_FOUND, "not_found", message)


def _asset_response(name: str, head_only: bool) -> Response:
    """One of the join page's pictures (small PNGs, read whole)."""
    try:
        body = (ASSETS / name).read_bytes()
    except OSError:
        return _not_found("There is no such picture.")
    return body_response(
        http.HTTPStatus.OK, "image/png", body, "public, max-age=3600", head_only=head_only
    )


def shelf_for(data_dir: str | Path | None) -> DownloadShelf | None:
    """The relay's shelf, or None when it keeps no data directory (PostgreSQL only)."""
    return DownloadShelf(data_dir) if data_dir is not None else None


#: A signature file bigger than this is not a signature.
MAX_SIGNATURE_BYTES = 4096


def downloads_command(args: argparse.Namespace) -> int:
    """``puente-relay downloads add|list|remove``; raise ConfigError with what to do."""
    if not args.data_dir:
        raise ConfigError(
            "Downloads live in the relay's data directory: pass --data-dir (or set "
            "PUENTE_DATA_DIR), even when the store is PostgreSQL."
        )
    shelf = DownloadShelf(args.data_dir)
    if args.action == "add":
        signature = _read_signature(args.file, args.signature)
        download = shelf.add(args.file, args.os, time.time(), signature)
        if args.json:
            print(json.dumps(download.as_json()))
        else:
            signed = "with" if signature else "without"
            print(
                f"Added {args.file} for {SYSTEM_NAMES[args.os]}: {download.size} bytes, "
                f"SHA-256 {download.sha256}, {signed} an organisation signature. Customers "
                f"download it as puente-agent-NAMEPLATE from the join page."
            )
        return 0
    if args.action == "list":
        stored = shelf.all()
        if args.json:
            print(json.dumps([d.as_json() for d in stored]))
        elif not stored:
            print("No agents yet; add one with: puente-relay downloads add FILE --os linux")
        for download in [] if args.json else stored:
            print(
                f"{download.system:8} {download.size:>11} bytes  sha256 {download.sha256}  "
                f"{'signed' if download.signature else 'unsigned'}  {download.original_name}"
            )
        return 0
    if not shelf.remove(args.os):
        print(
            f"puente-relay: There was no agent for {SYSTEM_NAMES[args.os]}; "
            "'puente-relay downloads list' shows what is stored.",
            file=sys.stderr,
        )
        return 1
    print(f"Removed the agent for {SYSTEM_NAMES[args.os]}; join pages no longer offer it.")
    return 0


def _read_signature(file: Path, given: Path | None) -> str | None:
    """The organisation's signature of ``file`` (base64): ``given``, else ``FILE.sig``."""
    path = given or file.with_name(file.name + ".sig")
    if given is None and not path.is_file():
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"Cannot read the signature {path} ({exc.strerror}); check the path."
        ) from None
    if not data or len(data) > MAX_SIGNATURE_BYTES:
        raise ConfigError(f"{path} is not a signature file (empty, or over 4 KiB).")
    return base64.b64encode(data).decode()
