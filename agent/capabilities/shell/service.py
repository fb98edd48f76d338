"""Shell and file transfer: a real SSH server (asyncssh) inside the session's ``ssh`` channel.

Two capabilities, each consented on its own:

``shell``
    Terminal sessions and commands as the customer's user (their login shell on
    Linux and macOS, PowerShell on Windows), with a PTY when the client asks for one.
``files``
    SFTP (and legacy ``scp``), confined to the folder the customer chose when they
    allowed it (their home folder by default).

How it fits together:

1. The technician sends ``Request(shell|files, "open", {"client_key": ...})``. The
   consent gate asks the customer (for ``files`` also which folder). The handler then
   stays running for as long as the permission lasts: it reports, in a ``Progress``
   message, this session's SSH host key and a signature by that key over the
   pairing transcript hash, so the technician pins the key with no prompt, and a
   recording of another session's key cannot be replayed.
2. The technician opens streams on the ``ssh`` channel (the call's
   :class:`agent.capabilities.base.StreamPort`, which the session builds); each
   stream is one SSH connection, served here by asyncssh. Only the one-time public
   keys sent in live ``open`` requests can log in.
3. Every SSH channel request is checked against the live permissions: a command,
   shell or PTY needs ``shell``; SFTP and ``scp`` need ``files``; anything else
   (port forwarding, agent or X11 forwarding, other subsystems) is refused.
4. Revoking a permission cancels its ``open`` handler (the session does that at once),
   which closes its SSH channels and kills the processes they started. With neither
   permission left, every SSH connection is closed and new streams are refused.
5. Every command started and every file moved (name, size, SHA-256) is written to the
   customer's log and shown to them.

Every path an SFTP client names is canonicalised and confined by :func:`confine`:
``..`` above the shared folder is refused, and symbolic links are resolved, so a
link that leads outside the folder is refused too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import getpass
import hashlib
import logging
import os
import shutil
import signal
import struct
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import asyncssh
from asyncssh.channel import SSHChannel

from agent.capabilities.base import ByteStream, Capability, CapabilityCall, Choice, StreamPort
from agent.errors import PathRefused
from agent.i18n import english, t
from protocol.mux import Channel
from protocol.streams import HOST_KEY_PROOF_LABEL, PART_SUFFIX, SSH_MAX_PACKET

if TYPE_CHECKING:
    from agent.audit import AgentLog
    from agent.consent import Authorization

log = logging.getLogger("puente.agent.capabilities.shell.service")

SSH_CAPABILITIES = ("shell", "files")
HASH_BLOCK = 1024 * 1024
#: SSH channel window and packet size the agent offers (bigger = fewer round trips;
#: one SSH packet per tunnel DATA frame, see protocol.streams).
CHANNEL_WINDOW = 8 * 1024 * 1024
CHANNEL_MAX_PACKET = SSH_MAX_PACKET
#: After a command exits, how long to wait for its last output (background jobs may
#: keep the terminal open).
OUTPUT_GRACE = 1.0


# Paths ------------------------------------------------------------------------------


def confine(root: str, client_path: str, *, follow: bool = True) -> str:
    """The local path for ``client_path`` inside ``root``, or :class:`PathRefused`.

    ``root`` must already be canonical (``os.path.realpath``). The client sees the
    shared folder as ``/``: absolute and relative paths both start there. A ``..``
    that climbs above it is refused, as is any path whose canonical form (symbolic
    links resolved) lies outside. With ``follow=False`` the last component is not
    resolved (lstat, remove, rename act on a link itself), but every folder above it
    is.
    """
    parts: list[str] = []
    for part in client_path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise PathRefused(client_path)
            parts.pop()
            continue
        if os.name == "nt" and (":" in part):
            raise PathRefused(client_path)  # drive letters and streams (C:, file:ads)
        parts.append(part)
    local = os.path.join(root, *parts)
    if follow or not parts:
        canonical = os.path.realpath(local)
    else:
        canonical = os.path.join(os.path.realpath(os.path.dirname(local)), parts[-1])
    if canonical != root and not canonical.startswith(root.rstrip(os.sep) + os.sep):
        raise PathRefused(client_path)
    return canonical


def shown_path(root: str, local: str) -> str:
    """How a confined local path is shown to the technician: relative to ``/``."""
    relative = os.path.relpath(local, root)
    return "/" if relative == "." else "/" + relative.replace(os.sep, "/")


def shown_text(text: str, limit: int = 300) -> str:
    """Technician-supplied text made safe to show the customer on one line."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text)
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "..."


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"  # pragma: no cover - loop always returns


def _file_digest(path: str, length: int | None, check: Callable[[], None]) -> tuple[int, str]:
    """SHA-256 of the first ``length`` bytes of ``path`` (all if None) and the size."""
    digest = hashlib.sha256()
    remaining = length
    with open(path, "rb", buffering=0) as file:
        size = os.fstat(file.fileno()).st_size
        while remaining is None or remaining > 0:
            check()
            want = HASH_BLOCK if remaining is None else min(HASH_BLOCK, remaining)
            block = file.read(want)
            if not block:
                break
            digest.update(block)
            if remaining is not None:
                remaining -= len(block)
    if remaining:
        raise ValueError(f"the file is shorter than {length} bytes")
    return size, digest.hexdigest()


_HashKey = tuple[int, int, int, int, int | None]


def _hash_key(st: os.stat_result, length: int | None) -> _HashKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, length)


def default_folder() -> str:
    return str(Path.home())


def check_folder(answer: str) -> str:
    """The canonical folder for the customer's answer, or ValueError saying what to do."""
    path = Path(answer.strip()).expanduser()
    if not path.is_absolute():
        path = Path.home() / path
    if not path.is_dir():
        raise ValueError(t("files.no_folder", path=str(path)))
    return os.path.realpath(path)


# The service: one per session ---------------------------------------------------------


class SSHService:
    """The SSH side of one session: host key, permitted keys, connections, audit."""

    def __init__(
        self,
        streams: StreamPort,
        transcript_hash: bytes,
        audit: AgentLog,
        notify: Callable[[str], None],
    ) -> None:
        self.streams = streams
        self.transcript_hash = transcript_hash
        self.audit = audit
        self.notify = notify
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.user = getpass.getuser()
        self._grants: dict[str, list[Authorization]] = {}
        self._client_keys: dict[str, list[asyncssh.SSHKey]] = {}
        self._processes: dict[str, set[ConsentedProcess]] = {
            name: set() for name in SSH_CAPABILITIES
        }
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._connecting: set[asyncio.Task[None]] = set()
        self._hashes: dict[_HashKey, asyncio.Future[tuple[int, str]]] = {}
        streams.accept(self._stream_opened)

    # Permissions ---------------------------------------------------------------------

    def grant(self, capability: str, auth: Authorization, client_key: asyncssh.SSHKey) -> None:
        self._grants.setdefault(capability, []).append(auth)
        self._client_keys.setdefault(capability, []).append(client_key)

    def withdraw(self, capability: str, auth: Authorization) -> None:
        """One ``open`` handler ended; when the last one for ``capability`` ends, stop it."""
        grants = self._grants.get(capability, [])
        if auth in grants:
            index = grants.index(auth)
            grants.pop(index)
            self._client_keys[capability].pop(index)
        if grants and any(a.active for a in grants):
            return
        self._grants.pop(capability, None)
        self._client_keys.pop(capability, None)
        processes = list(self._processes[capability])
        for process in processes:
            process.stop(f"the customer's permission for {capability} ended")
        if processes:
            self.tell("shell.closed", capability=capability, count=len(processes))
        if not self._grants:
            for conn in list(self._connections):
                conn.close()
            self.streams.close_all("no permission for shell or files any more")

    def allows(self, capability: str) -> bool:
        return any(auth.active for auth in self._grants.get(capability, []))

    def files_root(self) -> str | None:
        for auth in reversed(self._grants.get("files", [])):
            if auth.active and auth.choice:
                return auth.choice
        return None

    def key_allowed(self, key: asyncssh.SSHKey) -> bool:
        wanted = key.public_data
        return any(
            k.public_data == wanted
            for capability, keys in self._client_keys.items()
            if self.allows(capability)
            for k in keys
        )

    # Audit ---------------------------------------------------------------------------

    def tell(self, key: str, **values: object) -> None:
        """Write catalog sentence ``key`` to the customer's log (English) and show it to
        them (in their language)."""
        self.audit.write(english(key, **values))
        self.notify(t(key, **values))

    def track(self, capability: str, process: ConsentedProcess) -> None:
        self._processes[capability].add(process)

    def untrack(self, capability: str, process: ConsentedProcess) -> None:
        self._processes[capability].discard(process)

    async def file_hash(
        self, local: str, length: int | None = None, check: Callable[[], None] = lambda: None
    ) -> tuple[int, str]:
        """Size and SHA-256 of ``local`` (its first ``length`` bytes), computed once.

        Results are kept by file identity (device, inode, size, modification time), so a
        file renamed into place, or hashed while it was copied, is not read again.
        """
        st = os.stat(local)
        key = _hash_key(st, length)
        future = self._hashes.get(key)
        if future is None:
            future = asyncio.ensure_future(asyncio.to_thread(_file_digest, local, length, check))
            self._remember(key, future)
        try:
            return await asyncio.shield(future)
        except BaseException:
            if future.done():
                self._hashes.pop(key, None)
            raise

    def remember_hash(self, st: os.stat_result, sha256: str) -> None:
        """The whole file described by ``st`` hashes to ``sha256`` (seen while copied)."""
        future: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        future.set_result((st.st_size, sha256))
        self._remember(_hash_key(st, None), future)

    def _remember(self, key: _HashKey, future: asyncio.Future[tuple[int, str]]) -> None:
        self._hashes[key] = future
        if len(self._hashes) > 64:
            self._hashes.pop(next(iter(self._hashes)))

    # Proof of the host key -----------------------------------------------------------

    def host_key_offer(self) -> dict[str, Any]:
        transcript = self.transcript_hash
        signature = self.host_key.sign(
            HOST_KEY_PROOF_LABEL + transcript, self.host_key.sig_algorithms[0]
        )
        public = self.host_key.export_public_key("openssh").decode("ascii").strip()
        return {
            "host_key": public,
            "host_key_signature": base64.b64encode(signature).decode("ascii"),
        }

    # Streams and connections ---------------------------------------------------------

    def _stream_opened(self, stream: ByteStream) -> None:
        if not self._grants:
            stream.abort()  # deny by default: no SSH at all without a permission
            return
        task = asyncio.ensure_future(self._serve(stream))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _serve(self, stream: ByteStream) -> None:
        try:
            conn = await asyncssh.connect_reverse(
                "puente",
                tunnel=_AcceptedStream(stream),
                config=None,
                server_factory=lambda: _Server(self),
                server_host_keys=[self.host_key],
                encoding=None,
                line_editor=False,
                agent_forwarding=False,
                x11_forwarding=False,
                allow_pty=True,
                window=CHANNEL_WINDOW,
                max_pktsize=CHANNEL_MAX_PACKET,
                login_timeout=60,
            )
        except (OSError, asyncssh.Error) as exc:
            log.info("an SSH connection through the tunnel failed: %s", exc)
            return
        self._connections.add(conn)
        try:
            await conn.wait_closed()
        finally:
            self._connections.discard(conn)

    async def aclose(self) -> None:
        for task in list(self._connecting):
            task.cancel()
        for conn in list(self._connections):
            conn.close()
        await self.streams.aclose("the session ended")


class _AcceptedStream:
    """What asyncssh's ``tunnel=`` argument wants, for a stream the technician opened:
    ``create_connection`` attaches asyncssh's protocol to it (once)."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream: ByteStream | None = stream

    async def create_connection(
        self, session_factory: Callable[[], asyncio.BaseProtocol], host: str, port: int
    ) -> tuple[ByteStream, asyncio.BaseProtocol]:
        if self._stream is None:
            raise OSError("this SSH stream was already used")
        stream, self._stream = self._stream, None
        protocol = session_factory()
        stream.attach(protocol)
        return stream, protocol

    def close(self) -> None:
        """Nothing to release: the streams belong to the port."""

    async def wait_closed(self) -> None:
        """Nothing to wait for (see :meth:`close`)."""


def service_for(call: CapabilityCall) -> SSHService:
    """This session's SSH service (made on the first ``shell`` or ``files`` request)."""
    streams = call.streams
    if streams is None:
        raise RuntimeError("the shell and files capabilities need the session's ssh channel")
    return call.session.get(
        SSHService,
        lambda: SSHService(
            streams, call.transcript_hash, call.log, call.notify or (lambda text: None)
        ),
    )


# asyncssh server hooks --------------------------------------------------------------


class _Server(asyncssh.SSHServer):
    """Public-key login with this session's one-time keys; everything else refused."""

    def __init__(self, service: SSHService) -> None:
        self.service = service

    def begin_auth(self, username: str) -> bool:
        return True  # authentication is always required

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self.service.key_allowed(key)

    def session_requested(self) -> ConsentedProcess | bool:
        if not (self.service.allows("shell") or self.service.allows("files")):
            return False
        return ConsentedProcess(self.service)

    # Port forwarding, reverse forwarding, UNIX sockets, tun/tap: the defaults refuse.


class ConsentedProcess(asyncssh.SSHServerProcess[bytes]):
    """One SSH session channel; each request is checked against the live permissions."""

    def __init__(self, service: SSHService) -> None:
        super().__init__(self._run, self._sftp_server, 3, allow_scp=True)
        self.service = service
        self.capability = ""
        self._child: asyncio.subprocess.Process | None = None
        self._stopped = False

    # Requests (asyncssh calls these; False refuses the request) ---------------------

    def shell_requested(self) -> bool:
        return self._allow("shell", "an interactive shell") and super().shell_requested()

    def exec_requested(self, command: str) -> bool:
        needs = "files" if command.startswith("scp ") else "shell"
        return self._allow(needs, f"the command {command!r}") and super().exec_requested(command)

    def subsystem_requested(self, subsystem: str) -> bool:
        if subsystem != "sftp":
            return False
        return self._allow("files", "file transfer (SFTP)") and super().subsystem_requested(
            subsystem
        )

    def _allow(self, capability: str, what: str) -> bool:
        if not self.service.allows(capability):
            self.service.audit.write(
                f"Refused: the technician tried {shown_text(what)} without your permission "
                f"for {capability}."
            )
            return False
        self.capability = capability
        self.service.track(capability, self)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._kill_child()
        if self.capability:
            self.service.untrack(self.capability, self)
        super().connection_lost(exc)

    def stop(self, reason: str) -> None:
        """Permission withdrawn: kill what runs and close the channel now."""
        self._stopped = True
        self._kill_child()
        with contextlib.suppress(Exception):
            self.channel.close()

    def _kill_child(self) -> None:
        child = self._child
        if child is not None and child.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
                if os.name == "nt":
                    child.kill()
                else:
                    os.killpg(child.pid, signal.SIGKILL)

    # File transfer --------------------------------------------------------------------

    def _sftp_server(self, chan: SSHChannel[bytes]) -> ConfinedSFTPServer:
        root = self.service.files_root()
        if root is None or not self.service.allows("files"):
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "file transfer is not allowed"
            )
        assert isinstance(chan, asyncssh.SSHServerChannel)
        return ConfinedSFTPServer(chan, self.service, root)

    # Commands and shells --------------------------------------------------------------

    async def _run(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command
        term = process.term_type
        if command:
            self.service.tell("shell.ran_command", command=shown_text(command))
        else:
            self.service.tell("shell.opened_terminal")
        try:
            if term and os.name != "nt":
                status = await run_in_terminal(process, command, term, self._started, self._typed)
            else:
                status = await run_with_pipes(process, command, self._started)
        except OSError as exc:
            with contextlib.suppress(Exception):
                process.stderr.write(f"puente: could not start the shell: {exc}\r\n".encode())
            status = 127
        finally:
            self._kill_child()
        if not self._stopped:
            with contextlib.suppress(Exception):
                process.exit(status)
        what = f"command {shown_text(command, 80)!r}" if command else "terminal"
        self.service.audit.write(f"The technician's {what} ended (exit status {status}).")

    def _typed(self, line: str) -> None:
        self.service.tell("shell.typed", line=shown_text(line))

    def _started(self, child: asyncio.subprocess.Process) -> None:
        self._child = child


def shell_argv(command: str | None, terminal: bool) -> list[str]:
    """The customer's own shell: interactive, or running ``command``."""
    if os.name == "nt":
        powershell = shutil.which("pwsh") or shutil.which("powershell") or "powershell.exe"
        if command:
            return [powershell, "-NoLogo", "-NoProfile", "-Command", command]
        return [powershell, "-NoLogo", "-NoProfile", "-Command", "-"]
    shell = os.environ.get("SHELL") or ""
    if not shell:
        with contextlib.suppress(ImportError, KeyError):
            import pwd

            shell = pwd.getpwuid(os.getuid()).pw_shell
    shell = shell or "/bin/sh"
    if command:
        return [shell, "-c", command]
    return [shell, "-l"] if terminal else [shell]


async def run_with_pipes(
    process: asyncssh.SSHServerProcess[bytes],
    command: str | None,
    started: Callable[[asyncio.subprocess.Process], None],
) -> int:
    """Run ``command`` (or the shell) with pipes; ``started`` gets the child at once."""
    child = await asyncio.create_subprocess_exec(
        *shell_argv(command, terminal=False),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(Path.home()),
        start_new_session=os.name != "nt",
    )
    started(child)
    assert child.stdin and child.stdout and child.stderr
    feed = asyncio.ensure_future(_feed_pipe(process, child.stdin))
    try:
        await asyncio.gather(
            _drain(child.stdout.read, process.stdout),
            _drain(child.stderr.read, process.stderr),
        )
        return _exit_status(await child.wait())
    finally:
        feed.cancel()


async def run_in_terminal(
    process: asyncssh.SSHServerProcess[bytes],
    command: str | None,
    term: str,
    started: Callable[[asyncio.subprocess.Process], None],
    on_line: Callable[[str], None],
) -> int:
    """Run ``command`` (or a login shell) in a new terminal; ``started`` gets the child
    at once, ``on_line`` each line typed (see :func:`_feed_terminal`)."""
    import fcntl
    import termios

    master, slave = os.openpty()
    try:
        width, height, pixwidth, pixheight = process.term_size
        if width and height:
            _set_window(master, width, height, pixwidth, pixheight)
        env = dict(os.environ, TERM=term)

        def take_terminal() -> None:  # in the child, after setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        child = await asyncio.create_subprocess_exec(
            *shell_argv(command, terminal=True),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=str(Path.home()),
            env=env,
            start_new_session=True,
            preexec_fn=take_terminal,
        )
    finally:
        os.close(slave)
    started(child)
    os.set_blocking(master, False)
    feed = asyncio.ensure_future(_feed_terminal(process, master, on_line))
    output = asyncio.ensure_future(_drain(lambda n: _read_fd(master, n), process.stdout))
    try:
        status = _exit_status(await child.wait())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(output), OUTPUT_GRACE)
        return status
    finally:
        feed.cancel()
        output.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await output
        os.close(master)


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _set_window(fd: int, width: int, height: int, pixwidth: int, pixheight: int) -> None:
    import fcntl
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, pixwidth, pixheight))


async def _drain(read: Callable[[int], Any], writer: asyncssh.SSHWriter[bytes]) -> None:
    """Copy a child's output to the SSH channel until end of file."""
    while True:
        data = await read(65536)
        if not data:
            return
        writer.write(data)
        await writer.drain()


async def _feed_pipe(
    process: asyncssh.SSHServerProcess[bytes], stdin: asyncio.StreamWriter
) -> None:
    """Copy the SSH channel's input to a child's stdin; close it at end of input."""
    try:
        while True:
            try:
                data = await process.stdin.read(65536)
            except (asyncssh.BreakReceived, asyncssh.SignalReceived, asyncssh.TerminalSizeChanged):
                continue
            if not data:
                break
            stdin.write(data)
            await stdin.drain()
    except (ConnectionError, asyncssh.Error):
        pass
    finally:
        with contextlib.suppress(Exception):
            stdin.close()


async def _feed_terminal(
    process: asyncssh.SSHServerProcess[bytes], master: int, on_line: Callable[[str], None]
) -> None:
    """Copy keystrokes to the terminal; apply window size changes and Ctrl-Break.

    Each line the technician types is handed to ``on_line`` for the customer's record,
    except while the terminal does not echo (a password prompt): that is not recorded.
    """
    typed = TypedLines(master)
    with contextlib.suppress(ConnectionError, asyncssh.Error, OSError):
        while True:
            try:
                data = await process.stdin.read(65536)
            except asyncssh.TerminalSizeChanged as exc:
                _set_window(master, exc.width, exc.height, exc.pixwidth, exc.pixheight)
                continue
            except asyncssh.BreakReceived:
                data = b"\x03"
            except asyncssh.SignalReceived:
                continue
            if not data:
                return
            for line in typed.feed(data):
                on_line(line)
            await _write_fd(master, data)


class TypedLines:
    """Best-effort reconstruction of the lines typed into a terminal, for the audit.

    Printable characters are kept, backspace removes one, Ctrl-C or Ctrl-U forget
    the line, escape sequences (arrow keys) are dropped. What the shell finally runs
    can differ (tab completion, history), so the record says "typed".
    """

    def __init__(self, master: int) -> None:
        self._master = master
        self._line: list[str] = []
        self._escape = False

    def _echoing(self) -> bool:
        import termios

        try:
            return bool(termios.tcgetattr(self._master)[3] & termios.ECHO)
        except (termios.error, OSError):
            return True

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        for ch in data.decode("utf-8", "replace"):
            if self._escape:
                self._escape = ch in "[O0123456789;?"  # inside an escape sequence
                continue
            if ch == "\x1b":
                self._escape = True
            elif ch in "\r\n":
                text = "".join(self._line).strip()
                self._line = []
                if text and self._echoing():
                    lines.append(text)
            elif ch in "\x7f\x08":
                if self._line:
                    self._line.pop()
            elif ch in "\x03\x15":
                self._line = []
            elif ch.isprintable():
                self._line.append(ch)
        return lines


async def _read_fd(fd: int, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    while True:
        try:
            return os.read(fd, size)
        except BlockingIOError:
            ready = loop.create_future()
            loop.add_reader(fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
        except OSError as exc:
            if exc.errno == errno.EIO:  # the terminal's last user went away
                return b""
            raise


async def _write_fd(fd: int, data: bytes) -> None:
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            ready = loop.create_future()
            loop.add_writer(fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_writer(fd)


# SFTP, confined -----------------------------------------------------------------------


class FilesService(Protocol):
    """What the SFTP server needs of the session's SSH service (:class:`SSHService`)."""

    @property
    def audit(self) -> AgentLog: ...

    @property
    def notify(self) -> Callable[[str], None]: ...

    def allows(self, capability: str) -> bool: ...

    def tell(self, key: str, **values: object) -> None: ...

    async def file_hash(
        self, local: str, length: int | None = None, check: Callable[[], None] = ...
    ) -> tuple[int, str]: ...

    def remember_hash(self, st: os.stat_result, sha256: str) -> None: ...


class _OpenFile:
    """An open file of an SFTP session, with what the customer's record needs.

    While a file is read or written in order from its start, its SHA-256 is computed
    on the way (``digest``), so the audit and the technician's check need not read it
    again; any other pattern drops the running digest.
    """

    __slots__ = (
        "file", "client_path", "local", "writing", "read_bytes", "written_bytes",
        "digest", "hashed", "opened",
    )  # fmt: skip

    def __init__(self, file: Any, client_path: str, local: str, writing: bool) -> None:
        self.file = file
        self.client_path = client_path
        self.local = local
        self.writing = writing
        self.read_bytes = 0
        self.written_bytes = 0
        self.digest: Any = hashlib.sha256()
        self.hashed = 0
        self.opened = os.fstat(file.fileno())

    def pread(self, offset: int, size: int) -> bytes:
        if hasattr(os, "pread"):
            data = os.pread(self.file.fileno(), size, offset)
        else:  # Windows: requests of a session are served one at a time, so seeking is safe
            self.file.seek(offset)
            data = self.file.read(size)
        self.read_bytes += len(data)
        self._hash(offset, data)
        return data

    def pwrite(self, offset: int, data: bytes) -> int:
        view = memoryview(data)
        while view:
            if hasattr(os, "pwrite"):
                written = os.pwrite(self.file.fileno(), view, offset)
            else:  # Windows (see pread)
                self.file.seek(offset)
                written = self.file.write(view)
            view, offset = view[written:], offset + written
        self.written_bytes += len(data)
        self._hash(offset - len(data), data)
        return len(data)

    def _hash(self, offset: int, data: bytes) -> None:
        if self.digest is None:
            return
        if offset == self.hashed:
            self.digest.update(data)
            self.hashed += len(data)
        elif offset + len(data) > self.hashed or self.writing:
            self.digest = None  # out of order: hash the file afterwards instead

    def whole_file_hash(self) -> tuple[os.stat_result, str] | None:
        """(stat, SHA-256) if the running digest covers exactly the file as it is now."""
        if self.digest is None:
            return None
        st = os.stat(self.local)
        if st.st_size != self.hashed:
            return None
        if not self.writing and (st.st_mtime_ns, st.st_size) != (
            self.opened.st_mtime_ns,
            self.opened.st_size,
        ):
            return None  # changed by someone else while it was read
        return st, self.digest.hexdigest()


class ConfinedSFTPServer(asyncssh.SFTPServer):
    """SFTP inside the customer's chosen folder; every path goes through :func:`confine`."""

    def __init__(
        self, chan: asyncssh.SSHServerChannel[bytes], service: FilesService, root: str
    ) -> None:
        super().__init__(chan)
        self.service = service
        self.root = root

    # Mapping -------------------------------------------------------------------------

    def _local(self, path: bytes, follow: bool = True) -> str:
        if not self.service.allows("files"):
            raise asyncssh.SFTPPermissionDenied("The customer stopped file transfer.")
        client_path = os.fsdecode(path)
        try:
            return confine(self.root, client_path, follow=follow)
        except PathRefused as exc:
            self.service.audit.write(
                f"Refused: the technician asked for {shown_text(client_path)!r} (outside {self.root})."
            )
            raise asyncssh.SFTPPermissionDenied(str(exc)) from None

    def map_path(self, path: bytes) -> bytes:
        return os.fsencode(self._local(path))

    def reverse_map_path(self, path: bytes) -> bytes:
        local = os.fsdecode(path)
        if local != self.root and not local.startswith(self.root.rstrip(os.sep) + os.sep):
            raise asyncssh.SFTPNoSuchFile("No such file")
        return os.fsencode(shown_path(self.root, local))

    def realpath(self, path: bytes) -> bytes:
        return self.reverse_map_path(self.map_path(path))

    # Operations that act on a link itself (no following of the last component) ------

    def lstat(self, path: bytes) -> os.stat_result:
        return os.lstat(self._local(path, follow=False))

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        local = self._local(path)
        # ".." of the shared folder is the shared folder itself, as in a chroot.
        parent = local if local == self.root else os.path.dirname(local)
        for name, where in ((b".", local), (b"..", parent)):
            yield asyncssh.SFTPName(name, attrs=asyncssh.SFTPAttrs.from_local(os.stat(where)))
        with os.scandir(local) as entries:
            for entry in entries:
                attrs = asyncssh.SFTPAttrs.from_local(entry.stat(follow_symlinks=False))
                yield asyncssh.SFTPName(os.fsencode(entry.name), attrs=attrs)

    def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise asyncssh.SFTPOpUnsupported("Changing a link's attributes is not supported.")

    def remove(self, path: bytes) -> None:
        local = self._local(path, follow=False)
        os.remove(local)
        self.service.tell("files.deleted_file", path=shown_path(self.root, local))

    def rmdir(self, path: bytes) -> None:
        local = self._local(path, follow=False)
        os.rmdir(local)
        self.service.tell("files.deleted_folder", path=shown_path(self.root, local))

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        local = self._local(path, follow=False)
        os.mkdir(local, 0o777 if attrs.permissions is None else attrs.permissions)
        self.service.tell("files.created_folder", path=shown_path(self.root, local))

    def readlink(self, path: bytes) -> bytes:
        # The link's target is shown only when it stays inside the shared folder.
        return self.reverse_map_path(os.fsencode(self._local(path, follow=True)))

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        old = self._local(oldpath, follow=False)
        new = self._local(newpath, follow=False)
        if os.path.lexists(new):
            raise asyncssh.SFTPFileAlreadyExists("File already exists")
        os.rename(old, new)
        self._renamed(old, new)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        old = self._local(oldpath, follow=False)
        new = self._local(newpath, follow=False)
        os.replace(old, new)
        self._renamed(old, new)

    def _renamed(self, old: str, new: str) -> None:
        if old.endswith(PART_SUFFIX) and new == old[: -len(PART_SUFFIX)]:
            self._announce(shown_path(self.root, new), new, received=0, sent=0, finished=True)
        else:
            self.service.tell(
                "files.renamed", old=shown_path(self.root, old), new=shown_path(self.root, new)
            )

    def exit(self) -> None:
        # OpenSSH's sftp and scp treat a session without an exit status as a failure
        # (asyncssh's scp server reports its own status).
        if self.channel.get_subsystem() == "sftp":
            with contextlib.suppress(Exception):
                self.channel.exit(0)

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("Creating links is not allowed in a Puente session.")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("Creating links is not allowed in a Puente session.")

    # Files ------------------------------------------------------------------------------

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> _OpenFile:
        local = self._local(path)
        file = super().open(os.fsencode(shown_path(self.root, local)), pflags, attrs)
        writing = bool(pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND))
        return _OpenFile(file, shown_path(self.root, local), local, writing)

    # Reads and writes run inline: the page cache makes them quick, and handing them to a
    # thread cost more CPU (GIL hand-offs) than it saved, measured with the benchmark.

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        assert isinstance(file_obj, _OpenFile)
        return file_obj.pread(offset, size)

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        assert isinstance(file_obj, _OpenFile)
        return file_obj.pwrite(offset, data)

    def fstat(self, file_obj: object) -> os.stat_result:
        assert isinstance(file_obj, _OpenFile)
        return super().fstat(file_obj.file)  # type: ignore[return-value]

    def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        assert isinstance(file_obj, _OpenFile)
        super().fsetstat(file_obj.file, attrs)

    def fstatvfs(self, file_obj: object) -> Any:
        assert isinstance(file_obj, _OpenFile)
        return super().fstatvfs(file_obj.file)

    def fsync(self, file_obj: object) -> None:
        assert isinstance(file_obj, _OpenFile)
        super().fsync(file_obj.file)

    def close(self, file_obj: object) -> None:
        assert isinstance(file_obj, _OpenFile)
        super().close(file_obj.file)
        entry = file_obj
        with contextlib.suppress(OSError):
            seen = entry.whole_file_hash()
            if seen is not None:
                self.service.remember_hash(*seen)
        if entry.written_bytes and entry.local.endswith(PART_SUFFIX):
            # A resumable copy in progress: announced once it is renamed into place.
            self.service.audit.write(
                f"Partly copied to this computer, kept to resume: {entry.client_path} "
                f"({entry.written_bytes} bytes written now)"
            )
        elif entry.written_bytes or entry.read_bytes:
            self._announce(
                entry.client_path, entry.local, entry.written_bytes, entry.read_bytes, False
            )

    def _announce(self, shown: str, local: str, received: int, sent: int, finished: bool) -> None:
        """Tell the customer about a file moved, with its size and SHA-256 (computed aside)."""

        async def announce() -> None:
            try:
                size, sha = await self.service.file_hash(local)
                facts_key, facts_values = "files.facts", {"size": human_size(size), "sha": sha}
            except (OSError, ValueError) as exc:
                facts_key, facts_values = "files.no_facts", {"error": str(exc)}
            for wanted, key, extra in (
                (finished or received, "files.copied_to", {}),
                (sent, "files.copied_from", {"sent": sent}),
            ):
                if wanted:
                    # The facts in each language: the log's English, the customer's own.
                    self.service.audit.write(
                        english(key, path=shown, facts=english(facts_key, **facts_values), **extra)
                    )
                    self.service.notify(
                        t(key, path=shown, facts=t(facts_key, **facts_values), **extra)
                    )

        task = asyncio.ensure_future(announce())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())


# Capabilities -------------------------------------------------------------------------


def _client_key(call: CapabilityCall) -> asyncssh.SSHKey:
    text = call.args.get("client_key")
    if not isinstance(text, str) or len(text) > 4096:
        raise ValueError("the request carries no client_key (an OpenSSH public key)")
    try:
        return asyncssh.import_public_key(text)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ValueError(f"the client_key is not a usable public key ({exc})") from None


async def _hold_open(
    call: CapabilityCall, capability: str, extra: dict[str, Any]
) -> dict[str, Any]:
    """Keep the permission's SSH access alive until revoked, cancelled or the session ends."""
    service = service_for(call)
    key = _client_key(call)
    call.authorization.check()
    service.grant(capability, call.authorization, key)
    try:
        await call.progress(
            {
                "state": "ready",
                "user": service.user,
                "platform": sys.platform,
                **service.host_key_offer(),
                **extra,
            }
        )
        await asyncio.Event().wait()
    finally:
        service.withdraw(capability, call.authorization)
    return {}  # pragma: no cover - the wait above only ends by cancellation


async def _shell_handler(call: CapabilityCall) -> dict[str, Any]:
    return await _hold_open(call, "shell", {"shell": shell_argv(None, terminal=True)[0]})


async def _files_handler(call: CapabilityCall) -> dict[str, Any]:
    root = call.authorization.choice
    if not root:
        raise ValueError("no folder was chosen for file transfer")
    if call.action == "hash":
        return await _hash(call, root)
    return await _hold_open(call, "files", {"root": root})


async def _hash(call: CapabilityCall, root: str) -> dict[str, Any]:
    path = call.args.get("path")
    length = call.args.get("length")
    if not isinstance(path, str):
        raise ValueError("hash needs a path")
    if length is not None and (not isinstance(length, int) or length < 0):
        raise ValueError("length must be a whole number of bytes")
    local = confine(root, path)
    if not os.path.isfile(local):
        raise ValueError(f"{shown_path(root, local)} is not a file on the customer's computer")
    service = service_for(call)
    size, sha = await service.file_hash(local, length, call.authorization.check)
    return {"path": shown_path(root, local), "size": size, "length": length, "sha256": sha}


def shell_capability() -> Capability:
    return Capability(
        name="shell",
        title="Shell",
        description=english("cap.shell.description", user=getpass.getuser()),
        handler=_shell_handler,
        actions=("open",),
        stream_channel=Channel.SSH,
    )


def files_capability() -> Capability:
    return Capability(
        name="files",
        title="Files",
        description=(
            "Copy files to and from one folder you choose (and the folders inside it). "
            "Nothing outside that folder can be seen or changed. Every file copied is shown "
            "here and written to your log."
        ),
        handler=_files_handler,
        actions=("open", "hash"),
        choice=Choice(
            question="Which folder may the technician use for files?",
            default=default_folder,
            check=check_folder,
        ),
        stream_channel=Channel.SSH,
    )


__all__ = [
    "ConfinedSFTPServer",
    "SSHService",
    "confine",
    "files_capability",
    "shell_capability",
]
