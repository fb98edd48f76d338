"""Console commands for a real SSH session inside the Puente tunnel.

``shell``, ``put``, ``get`` and ``forward`` (see each command's help). The first
use of ``shell`` or ``files`` asks the customer through their agent; the agent's
answer also carries this session's SSH host key and a signature by it over the
pairing transcript, which is checked here and pinned, so no host-key prompt ever
appears. This side logs in with a one-time key made for the session.

Transfers are resumable: ``get`` writes ``LOCAL.puente-part`` and ``put`` writes
``REMOTE.puente-part``; the next attempt compares the SHA-256 of the part already
copied on both sides and continues from there. Every transfer ends with a
whole-file SHA-256 comparison.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import posixpath
import shutil
import stat
import sys
import tempfile
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import asyncssh

from link.errors import LinkError, SessionLost
from link.tunnel import Tunnel, TunnelConnector
from protocol.messages import ReplyStatus
from protocol.safe_text import safe_text
from protocol.streams import HOST_KEY_PROOF_LABEL, PART_SUFFIX, SSH_MAX_PACKET

from .client import TechnicianSession
from .console import Result, SessionConsole, command, need, reply_result
from .errors import UsageError

#: SSH channel window and packet size this side offers (one SSH packet per tunnel DATA
#: frame, see protocol.streams).
CHANNEL_WINDOW = 8 * 1024 * 1024
CHANNEL_MAX_PACKET = SSH_MAX_PACKET
#: SFTP request size (a request or reply and its SFTP header fit one SSH packet, so one
#: tunnel frame: nothing spills into a small extra packet; 252 KiB, whole pages on disk)
#: and requests in flight.
BLOCK_SIZE = (SSH_MAX_PACKET - 1024) // 4096 * 4096
WINDOW = 16
#: Inner SSH ciphers, fastest first (the outer Puente channel encrypts too).
CIPHERS = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com"]
HASH_BLOCK = 1024 * 1024
#: Blocks waiting for the disk thread before the download waits for it.
DISK_QUEUE = 8


class Refused(Exception):
    """A console-ready refusal: the command's result line is ``result``."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.message)
        self.result = result


@dataclass
class Grant:
    """A live ``open`` request: the agent keeps it running while the permission lasts."""

    capability: str
    task: asyncio.Task[Any]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return not self.task.done()


class SSHAccess:
    """The technician's SSH side of one session: one-time key, pinned host key, tunnel."""

    def __init__(self, session: TechnicianSession) -> None:
        self.session = session
        self.key = asyncssh.generate_private_key("ssh-ed25519")
        self.public_key = self.key.export_public_key("openssh").decode("ascii").strip()
        self.host_key: asyncssh.SSHKey | None = None
        self.user = ""
        self.grants: dict[str, Grant] = {}
        self._tunnel: Tunnel | None = None
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._connect_lock = asyncio.Lock()
        self.forwards: list[Forward] = []
        session.link.closed.add_done_callback(lambda _: self._cleanup())

    # Permissions ---------------------------------------------------------------------

    async def ensure(self, capability: str) -> Grant:
        """A live grant for ``capability``, asking the customer if needed (or Refused)."""
        grant = self.grants.get(capability)
        if grant is not None and grant.alive:
            return grant
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[dict[str, Any]] = loop.create_future()

        def on_progress(data: dict[str, Any]) -> None:
            if data.get("state") == "ready" and not ready.done():
                ready.set_result(data)

        task = asyncio.create_task(
            self.session.request(
                capability, "open", {"client_key": self.public_key}, on_progress=on_progress
            )
        )
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        waiters: list[asyncio.Future[Any]] = [ready, task]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            reply = task.result()  # raises LinkError if the session ended
            refused = reply_result(capability, reply.status, reply.message)
            raise Refused(refused or Result("error", f"the agent ended {capability} at once"))
        info = ready.result()
        self._pin(info)
        grant = Grant(capability, task, info)
        self.grants[capability] = grant
        return grant

    def _pin(self, info: dict[str, Any]) -> None:
        """Check the host key's proof over this session's transcript; pin it."""
        try:
            key = asyncssh.import_public_key(str(info["host_key"]))
            signature = base64.b64decode(str(info["host_key_signature"]), validate=True)
        except (KeyError, ValueError, asyncssh.KeyImportError) as exc:
            raise Refused(
                Result("error", f"the customer's agent sent no usable SSH host key ({exc})")
            ) from None
        transcript = self.session.link.keys.transcript_hash
        if not key.verify(HOST_KEY_PROOF_LABEL + transcript, signature):
            raise Refused(
                Result(
                    "error",
                    "the customer's agent could not prove its SSH host key belongs to this "
                    "session; do not continue, end the session and start a new one",
                )
            )
        if self.host_key is not None and self.host_key.public_data != key.public_data:
            raise Refused(
                Result("error", "the customer's agent changed its SSH host key mid-session")
            )
        self.host_key = key
        self.user = str(info.get("user") or "customer")[:64]

    def revoked(self, capability: str) -> bool:
        return self.session.consent.get(capability) == "revoked"

    async def refusal_after_close(self, capability: str) -> Result | None:
        """After a channel ended without an answer: was it the customer stopping it?"""
        grant = self.grants.get(capability)
        if grant is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(grant.task), 2.0)
        if self.revoked(capability) or (grant is not None and not grant.alive):
            return Result("declined", f"the customer stopped {capability}")
        return None

    # The SSH connection --------------------------------------------------------------

    def tunnel(self) -> Tunnel:
        if self._tunnel is None:
            from protocol.envelope import Role

            self._tunnel = Tunnel(self.session.link, Role.TECHNICIAN)
        return self._tunnel

    async def connection(self) -> asyncssh.SSHClientConnection:
        async with self._connect_lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            assert self.host_key is not None, "ensure() pins the host key first"
            self._sftp = None
            try:
                self._conn = await asyncssh.connect(
                    "puente",
                    22,
                    tunnel=TunnelConnector(self.tunnel()),
                    config=None,
                    known_hosts=([self.host_key], [], []),
                    client_keys=[self.key],
                    username=self.user,
                    agent_path=None,
                    preferred_auth="publickey",
                    encryption_algs=CIPHERS,
                    compression_algs=None,
                    window=CHANNEL_WINDOW,
                    max_pktsize=CHANNEL_MAX_PACKET,
                    login_timeout=60,
                )
            except asyncssh.PermissionDenied as exc:
                raise Refused(
                    Result("declined", f"the customer's agent refused the SSH login ({exc})")
                ) from None
            except (OSError, asyncssh.Error) as exc:
                raise Refused(
                    Result("error", f"could not open SSH through the session ({exc})")
                ) from None
            return self._conn

    async def sftp(self) -> asyncssh.SFTPClient:
        conn = await self.connection()
        if self._sftp is None:
            try:
                self._sftp = await conn.start_sftp_client()
            except (asyncssh.Error, OSError) as exc:
                if self.revoked("files"):
                    raise Refused(Result("declined", "the customer stopped files")) from None
                raise Refused(
                    Result("declined", f"the customer's agent refused file transfer ({exc})")
                ) from None
        return self._sftp

    async def remote_hash(self, path: str, length: int | None = None) -> dict[str, Any]:
        args: dict[str, Any] = {"path": path}
        if length is not None:
            args["length"] = length
        reply = await self.session.request("files", "hash", args)
        if reply.status != ReplyStatus.OK or reply.result is None:
            refused = reply_result("files", reply.status, reply.message)
            raise Refused(refused or Result("error", "the agent sent no hash"))
        sha = reply.result.get("sha256")
        if not isinstance(sha, str) or len(sha) != 64:
            raise Refused(Result("error", "the agent's hash answer is malformed"))
        return reply.result

    def _cleanup(self) -> None:
        for forward in self.forwards:
            forward.close()
        self.forwards.clear()


_ACCESS: weakref.WeakKeyDictionary[TechnicianSession, SSHAccess] = weakref.WeakKeyDictionary()


def access_for(console: SessionConsole) -> SSHAccess:
    return session_access(console.session)


def session_access(session: TechnicianSession) -> SSHAccess:
    """The one SSH side of ``session`` (the console and the viewer share it)."""
    access = _ACCESS.get(session)
    if access is None:
        access = SSHAccess(session)
        _ACCESS[session] = access
    return access


def shown_output(text: str) -> str:
    """Output from the agent as safe_text shows it: lines and tabs kept, never cut."""
    return safe_text(text, 10 * len(text) + 1, multiline=True)


# shell ------------------------------------------------------------------------------


@command(
    "shell",
    'shell [-c "COMMAND"]',
    "a terminal on the customer's computer (asks for shell); -c runs one command",
)
async def _shell(console: SessionConsole, args: list[str]) -> Result:
    command_text: str | None = None
    if args:
        if args[0] != "-c" or len(args) < 2:
            raise UsageError("give -c followed by the command in quotes")
        command_text = " ".join(args[1:])
    elif not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("an interactive shell needs a terminal; here use -c")
    elif os.name == "nt":
        raise UsageError(
            "an interactive shell from Windows is not available yet; use -c, or forward and "
            "your ssh client"
        )
    access = access_for(console)
    try:
        await access.ensure("shell")
        conn = await access.connection()
        if command_text is None:
            status = await interactive_shell(conn)
        else:
            return await _run_command(console, access, conn, command_text)
    except Refused as exc:
        return exc.result
    except (asyncssh.ChannelOpenError, asyncssh.ConnectionLost) as exc:
        refusal = await access.refusal_after_close("shell")
        return refusal or Result("declined", f"the customer's agent refused the shell ({exc})")
    if status is None:
        refusal = await access.refusal_after_close("shell")
        if refusal:
            return refusal
    return Result("ok", f"the shell ended (exit status {status})", {"exit_status": status})


async def _run_command(
    console: SessionConsole,
    access: SSHAccess,
    conn: asyncssh.SSHClientConnection,
    command_text: str,
) -> Result:
    completed = await conn.run(command_text, stdin=asyncssh.DEVNULL, encoding=None)
    out, err = _text(completed.stdout), _text(completed.stderr)
    status = completed.exit_status
    if status is None:
        refusal = await access.refusal_after_close("shell")
        if refusal:
            return refusal
    if not console.as_json:
        if out:
            sys.stdout.write(shown_output(out) + ("" if out.endswith("\n") else "\n"))
        if err:
            sys.stderr.write(shown_output(err) + ("" if err.endswith("\n") else "\n"))
        sys.stdout.flush()
        sys.stderr.flush()
    data = {"exit_status": status, "stdout": out, "stderr": err}
    if status == 0:
        return Result("ok", "exit status 0", data)
    return Result("error", f"the command ended with exit status {status}", data)


def _text(output: bytes | str | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", "replace")
    return output or ""


async def interactive_shell(conn: asyncssh.SSHClientConnection) -> int | None:
    """A terminal session: local raw mode, window size follows the local window."""
    import signal
    import termios
    import tty

    loop = asyncio.get_running_loop()
    stdin_fd = sys.stdin.fileno()
    size = os.get_terminal_size(sys.stdout.fileno())
    process = await conn.create_process(
        term_type=os.environ.get("TERM", "xterm-256color"),
        term_size=(size.columns, size.lines),
        encoding=None,
    )
    saved = termios.tcgetattr(stdin_fd)
    done = loop.create_future()

    def on_keys() -> None:
        try:
            data = os.read(stdin_fd, 4096)
        except OSError:
            data = b""
        if data:
            process.stdin.write(data)
        elif not done.done():
            done.set_result(None)

    def on_resize() -> None:
        new = os.get_terminal_size(sys.stdout.fileno())
        process.change_terminal_size(new.columns, new.lines)

    async def show() -> None:
        out = sys.stdout.buffer
        while data := await process.stdout.read(65536):
            out.write(data)
            out.flush()

    tty.setraw(stdin_fd, termios.TCSANOW)  # keep what was typed ahead
    loop.add_reader(stdin_fd, on_keys)
    loop.add_signal_handler(signal.SIGWINCH, on_resize)
    try:
        await asyncio.wait([asyncio.ensure_future(show()), done], return_when="FIRST_COMPLETED")
        await process.wait_closed()
    finally:
        loop.remove_reader(stdin_fd)
        loop.remove_signal_handler(signal.SIGWINCH)
        termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        sys.stdout.write("\r\n")
        sys.stdout.flush()
    return process.exit_status


# Transfers ------------------------------------------------------------------------------


class ProgressBar:
    """A progress bar on stderr: redrawn in place on a terminal, every 10 % otherwise."""

    def __init__(
        self,
        label: str,
        total: int,
        start: int = 0,
        stream: TextIO | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ):
        """``on_progress(done, total)`` (the viewer's bars) replaces drawing on ``stream``."""
        self.label = label
        self.on_progress = on_progress
        self.total = total
        self.done = start
        self.start_bytes = start
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._tty = self.stream.isatty()
        self._last_draw = 0.0
        self._last_tenth = -1

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)
            return
        now = time.monotonic()
        tenth = int(10 * self.done / self.total) if self.total else 10
        if self._tty and now - self._last_draw >= 0.1:
            self._last_draw = now
            self._draw("\r")
        elif not self._tty and tenth != self._last_tenth:
            self._last_tenth = tenth
            self._draw("", "\n")

    @property
    def rate(self) -> float:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return (self.done - self.start_bytes) / elapsed

    def _draw(self, prefix: str, suffix: str = "") -> None:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(30 * fraction)
        bar = "#" * filled + "-" * (30 - filled)
        self.stream.write(
            f"{prefix}{self.label} [{bar}] {fraction * 100:5.1f}% "
            f"{self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB {self.rate / 1e6:.1f} MB/s{suffix}"
        )
        self.stream.flush()

    def finish(self) -> None:
        if self._tty and self.on_progress is None:
            self._draw("\r", "\n")


async def in_window(
    offsets: list[int], fetch: Callable[[int], Awaitable[bytes | int]], window: int = WINDOW
) -> AsyncIterator[tuple[int, bytes | int]]:
    """Run ``fetch(offset)`` for each offset, ``window`` at a time; yield in order."""
    pending: deque[tuple[int, asyncio.Future[bytes | int]]] = deque()
    position = 0
    try:
        while position < len(offsets) or pending:
            while position < len(offsets) and len(pending) < window:
                offset = offsets[position]
                pending.append((offset, asyncio.ensure_future(fetch(offset))))
                position += 1
            offset, future = pending.popleft()
            yield offset, await future
    finally:
        for _, future in pending:
            future.cancel()
        for _, future in pending:
            with contextlib.suppress(BaseException):
                await future


def local_digest(path: Path, length: int) -> Any:
    """A SHA-256 object fed with the first ``length`` bytes of ``path``."""
    digest = hashlib.sha256()
    remaining = length
    with open(path, "rb") as file:
        while remaining > 0:
            block = file.read(min(HASH_BLOCK, remaining))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest


def _sftp_failure(what: str, exc: Exception) -> Result:
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return Result("declined", f"{what}: {exc.reason}")
    if isinstance(exc, asyncssh.SFTPNoSuchFile):
        return Result("error", f"{what}: no such file on the customer's computer")
    if isinstance(exc, asyncssh.SFTPError):
        return Result("error", f"{what}: {exc.reason}")
    return Result("error", f"{what}: {exc}")


@command(
    "get",
    "get REMOTE LOCAL",
    "copy a file from the customer's shared folder (asks for files); resumes, checks SHA-256",
)
async def _get(console: SessionConsole, args: list[str]) -> Result:
    need(args, 2)
    return await get_file(access_for(console), args[0], Path(args[1]))


async def get_file(
    access: SSHAccess,
    remote: str,
    local: Path,
    on_progress: Callable[[int, int], None] | None = None,
) -> Result:
    """Copy ``remote`` (in the customer's shared folder) to ``local``; asks for files.

    Resumes a ``.puente-part`` left by an earlier attempt, checks the whole file's
    SHA-256 against the agent's, and notes the transfer in the session's journal.
    Refusals and failures come back as the result, never raised.
    """
    try:
        await access.ensure("files")
        sftp = await access.sftp()
        attrs = await sftp.stat(remote)
        if attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY:
            return Result("error", f"{remote} is a folder; get copies one file at a time")
        size = int(attrs.size or 0)
        if local.is_dir():
            local = local / posixpath.basename(remote.rstrip("/"))
        return _noted(
            access.session,
            "from_customer",
            remote,
            await _download(access, sftp, remote, local, size, on_progress),
        )
    except Refused as exc:
        return exc.result
    except asyncssh.SFTPError as exc:  # the agent answered: no waiting for a revocation
        if access.revoked("files"):
            return Result("declined", "the customer stopped files")
        return _sftp_failure(f"cannot get {remote}", exc)
    except (asyncssh.Error, ConnectionError) as exc:
        refusal = await access.refusal_after_close("files")
        return refusal or _sftp_failure(f"cannot get {remote}", exc)


async def _download(
    access: SSHAccess,
    sftp: asyncssh.SFTPClient,
    remote: str,
    local: Path,
    size: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> Result:
    part = local.with_name(local.name + PART_SUFFIX)
    offset = part.stat().st_size if part.exists() else 0
    if offset > size:
        offset = 0
    digest = hashlib.sha256()
    if offset:
        digest = await asyncio.to_thread(local_digest, part, offset)
        theirs = await access.remote_hash(remote, offset)
        if theirs["sha256"] != digest.hexdigest():
            offset, digest = 0, hashlib.sha256()  # the part no longer matches: start over
    resumed_from = offset
    started = time.monotonic()
    bar = ProgressBar(f"get {posixpath.basename(remote)}", size, offset, on_progress=on_progress)
    loop = asyncio.get_running_loop()
    # Disk writes and hashing run in one worker thread, in order, beside the event loop
    # (both release the GIL), so the copy keeps the network busy meanwhile.
    disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="puente-get")
    stored: deque[asyncio.Future[None]] = deque()
    with open(part, "r+b" if offset else "wb") as out:
        out.truncate(offset)
        out.seek(offset)

        def store(data: bytes) -> None:
            out.write(data)
            digest.update(data)

        try:
            async with sftp.open(remote, "rb", block_size=BLOCK_SIZE) as source:

                async def fetch(at: int) -> bytes:
                    data: bytes = await source.read(min(BLOCK_SIZE, size - at), at)
                    return data

                blocks = list(range(offset, size, BLOCK_SIZE))
                async for at, data in in_window(blocks, fetch):
                    assert isinstance(data, bytes)
                    if len(data) != min(BLOCK_SIZE, size - at):
                        raise asyncssh.SFTPFailure("the file got shorter while it was copied")
                    stored.append(loop.run_in_executor(disk, store, data))
                    while len(stored) > DISK_QUEUE:
                        await stored.popleft()
                    bar.advance(len(data))
        finally:
            while stored:
                await stored.popleft()
            disk.shutdown()
    bar.finish()
    seconds = time.monotonic() - started
    theirs = await access.remote_hash(remote)
    ours = digest.hexdigest()
    if theirs["sha256"] != ours:
        part.unlink(missing_ok=True)
        return Result(
            "error",
            f"SHA-256 mismatch for {remote} (the file may have changed during the copy); "
            "nothing was kept: run get again",
            {"sha256": ours, "remote_sha256": theirs["sha256"]},
        )
    os.replace(part, local)
    return _transfer_result(remote, str(local), size, ours, resumed_from, seconds, "->")


def _noted(session: TechnicianSession, direction: str, remote: str, result: Result) -> Result:
    """Note a completed transfer in the session journal (name, size, SHA-256: never the
    contents), for the ticket's summary; return ``result``."""
    data = result.data or {}
    if result.status == "ok" and isinstance(data.get("size"), int):
        session.journal.file_moved(time.time(), direction, remote, data["size"], data.get("sha256"))
    return result


def _transfer_result(
    source: str, target: str, size: int, sha: str, resumed_from: int, seconds: float, arrow: str
) -> Result:
    rate = (size - resumed_from) / max(seconds, 1e-6)
    resumed = f", resumed at byte {resumed_from}" if resumed_from else ""
    return Result(
        "ok",
        f"{source} {arrow} {target} ({size} bytes, SHA-256 {sha[:16]}... verified{resumed})",
        {
            "size": size,
            "sha256": sha,
            "resumed_from": resumed_from,
            "seconds": round(seconds, 3),
            "bytes_per_second": round(rate),
        },
    )


@command(
    "put",
    "put LOCAL REMOTE",
    "copy a file into the customer's shared folder (asks for files); resumes, checks SHA-256",
)
async def _put(console: SessionConsole, args: list[str]) -> Result:
    need(args, 2)
    return await put_file(access_for(console), Path(args[0]), args[1])


async def put_file(
    access: SSHAccess,
    local: Path,
    remote: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> Result:
    """Copy ``local`` into the customer's shared folder as ``remote``; asks for files.

    The copy is written as ``REMOTE.puente-part`` and takes ``remote``'s place only
    once its SHA-256 matches; refusals and failures come back as the result.
    """
    if not local.is_file():
        return Result("error", f"{local} is not a file here; give the path of a file to send")
    try:
        await access.ensure("files")
        sftp = await access.sftp()
        with contextlib.suppress(asyncssh.SFTPNoSuchFile):
            if await sftp.isdir(remote):
                remote = posixpath.join(remote, local.name)
        return _noted(
            access.session,
            "to_customer",
            remote,
            await _upload(access, sftp, local, remote, on_progress),
        )
    except Refused as exc:
        return exc.result
    except asyncssh.SFTPError as exc:  # the agent answered: no waiting for a revocation
        if access.revoked("files"):
            return Result("declined", "the customer stopped files")
        return _sftp_failure(f"cannot put {remote}", exc)
    except (asyncssh.Error, ConnectionError) as exc:
        refusal = await access.refusal_after_close("files")
        return refusal or _sftp_failure(f"cannot put {remote}", exc)


async def _upload(
    access: SSHAccess,
    sftp: asyncssh.SFTPClient,
    local: Path,
    remote: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> Result:
    size = local.stat().st_size
    part = remote + PART_SUFFIX
    offset = 0
    with contextlib.suppress(asyncssh.SFTPNoSuchFile):
        offset = int((await sftp.stat(part)).size or 0)
    if offset > size:
        offset = 0
    digest = hashlib.sha256()
    if offset:
        digest = await asyncio.to_thread(local_digest, local, offset)
        theirs = await access.remote_hash(part, offset)
        if theirs["sha256"] != digest.hexdigest():
            offset, digest = 0, hashlib.sha256()
    resumed_from = offset
    started = time.monotonic()
    bar = ProgressBar(f"put {local.name}", size, offset, on_progress=on_progress)
    loop = asyncio.get_running_loop()
    disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="puente-put")
    with open(local, "rb") as source, contextlib.ExitStack() as stack:
        stack.callback(disk.shutdown)
        source.seek(offset)

        def load() -> bytes:
            data = source.read(BLOCK_SIZE)
            digest.update(data)
            return data

        async with sftp.open(part, "r+b" if offset else "wb", block_size=BLOCK_SIZE) as target:

            async def send(at: int) -> int:
                # in_window starts these in offset order, and the one worker thread reads
                # in the order they were submitted: the file is read and hashed in order.
                data = await loop.run_in_executor(disk, load)
                await target.write(data, at)
                return len(data)

            async for _, sent in in_window(list(range(offset, size, BLOCK_SIZE)), send):
                assert isinstance(sent, int)
                bar.advance(sent)
    bar.finish()
    seconds = time.monotonic() - started
    ours = digest.hexdigest()
    # Check the copy before it takes the file's place, so a bad copy replaces nothing.
    theirs = await access.remote_hash(part)
    if theirs["sha256"] != ours:
        with contextlib.suppress(asyncssh.SFTPError):
            await sftp.remove(part)
        return Result(
            "error",
            f"SHA-256 mismatch after sending {local} (the local file may have changed during "
            f"the copy); {remote} was left as it was: run put again",
            {"sha256": ours, "remote_sha256": theirs["sha256"]},
        )
    await sftp.posix_rename(part, remote)
    return _transfer_result(str(local), remote, size, ours, resumed_from, seconds, "->")


# forward --------------------------------------------------------------------------------


class _StreamSide(asyncio.Protocol):
    """The tunnel stream's end of a forwarded TCP connection."""

    def __init__(self, tcp: asyncio.Transport) -> None:
        self.tcp = tcp

    def data_received(self, data: bytes) -> None:
        self.tcp.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.tcp.close()

    def pause_writing(self) -> None:
        self.tcp.pause_reading()

    def resume_writing(self) -> None:
        self.tcp.resume_reading()


class _TcpSide(asyncio.Protocol):
    """A local client (OpenSSH) connected to the forward listener."""

    def __init__(self, access: SSHAccess) -> None:
        self.access = access
        self.stream: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        try:
            self.stream = self.access.tunnel().open(lambda: _StreamSide(transport))
        except LinkError:
            transport.close()

    def data_received(self, data: bytes) -> None:
        if self.stream is not None:
            self.stream.write(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stream is not None:
            self.stream.close()

    def pause_writing(self) -> None:
        if self.stream is not None:
            self.stream.pause_reading()

    def resume_writing(self) -> None:
        if self.stream is not None:
            self.stream.resume_reading()


class Forward:
    """A 127.0.0.1 listener whose connections go through the tunnel to the agent's SSH."""

    def __init__(self, server: asyncio.Server, directory: Path, port: int) -> None:
        self.server = server
        self.directory = directory
        self.port = port

    def close(self) -> None:
        self.server.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def write_client_files(access: SSHAccess, directory: Path, port: int) -> dict[str, Path]:
    """The one-time key, a known_hosts with the pinned key, and an ssh_config using both."""
    assert access.host_key is not None
    alias = f"puente-{access.session.link.session_id[:12] or 'session'}"
    key_file = directory / "id_ed25519"
    access.key.write_private_key(str(key_file))
    os.chmod(key_file, stat.S_IRUSR | stat.S_IWUSR)
    known_hosts = directory / "known_hosts"
    host_line = access.host_key.export_public_key("openssh").decode("ascii").strip()
    known_hosts.write_text(f"{alias} {host_line}\n", encoding="ascii")
    config = directory / "ssh_config"
    config.write_text(
        "\n".join(
            [
                "Host puente",
                "    HostName 127.0.0.1",
                f"    Port {port}",
                f"    User {access.user}",
                f"    HostKeyAlias {alias}",
                f"    IdentityFile {key_file}",
                "    IdentitiesOnly yes",
                "    IdentityAgent none",
                f"    UserKnownHostsFile {known_hosts}",
                "    GlobalKnownHostsFile /dev/null",
                "    StrictHostKeyChecking yes",
                "    UpdateHostKeys no",
                "    BatchMode yes",
                "    PasswordAuthentication no",
                "    KbdInteractiveAuthentication no",
                "    LogLevel ERROR",
                "",
            ]
        ),
        encoding="ascii",
    )
    return {"key_file": key_file, "known_hosts": known_hosts, "ssh_config": config}


@command(
    "forward",
    "forward PORT [shell] [files]",
    "let ssh/scp/sftp/rsync reach the customer via 127.0.0.1:PORT (asks for shell and files)",
)
async def _forward(console: SessionConsole, args: list[str]) -> Result:
    need(args, 1)
    try:
        port = int(args[0])
    except ValueError:
        raise UsageError(f"{args[0]!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise UsageError("the port must be between 0 (any free port) and 65535")
    wanted = [a for a in args[1:]] or ["shell", "files"]
    unknown = [a for a in wanted if a not in ("shell", "files")]
    if unknown:
        raise UsageError(f"{unknown[0]!r} is not shell or files")
    access = access_for(console)
    allowed: list[str] = []
    refusals: list[Result] = []
    for capability in wanted:
        try:
            await access.ensure(capability)
            allowed.append(capability)
        except Refused as exc:
            refusals.append(exc.result)
    if not allowed:
        return refusals[0]
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(lambda: _TcpSide(access), "127.0.0.1", port)
    except OSError as exc:
        return Result("error", f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); try another")
    port = server.sockets[0].getsockname()[1]
    directory = Path(tempfile.mkdtemp(prefix="puente-ssh-"))
    files = write_client_files(access, directory, port)
    access.forwards.append(Forward(server, directory, port))
    config = files["ssh_config"]
    commands = {
        "ssh": f"ssh -F {config} puente",
        "sftp": f"sftp -F {config} puente",
        "scp": f"scp -F {config} LOCAL_FILE puente:REMOTE_PATH",
        "rsync": f"rsync -e 'ssh -F {config}' LOCAL_FILE puente:REMOTE_PATH",
    }
    if not console.as_json:
        print(f"  one-time key: {files['key_file']}", flush=True)
        print(f"  pinned host key: {files['known_hosts']}", flush=True)
        for line in commands.values():
            print(f"  {line}", flush=True)
    message = (
        f"127.0.0.1:{port} leads to the customer's computer (allowed: {', '.join(allowed)}"
        + (f"; not allowed: {', '.join(c for c in wanted if c not in allowed)}" if refusals else "")
        + ")"
    )
    return Result(
        "ok",
        message,
        {
            "port": port,
            "allowed": allowed,
            "commands": commands,
            **{name: str(path) for name, path in files.items()},
        },
    )


__all__ = ["SSHAccess", "SessionLost", "access_for", "interactive_shell", "write_client_files"]
