"""The SSH service of one session: an asyncssh server on the ``ssh`` channel's streams.

:class:`SSHService` holds the session's host key, the one-time client keys of live
permissions, the SSH connections and the processes they started; every SSH channel
request is checked against the live permissions (:class:`ConsentedProcess`). How the
``shell`` and ``files`` capabilities use it: :mod:`agent.capabilities.shell.capability`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import getpass
import hashlib
import logging
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import asyncssh
from asyncssh.channel import SSHChannel

from agent.capabilities.base import ByteStream, CapabilityCall, StreamPort
from agent.capabilities.shell.processes import run_in_terminal, run_with_pipes
from agent.capabilities.shell.sftp import ConfinedSFTPServer
from agent.i18n import english, t
from protocol.safe_text import safe_text
from protocol.streams import HOST_KEY_PROOF_LABEL, SSH_MAX_PACKET

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


def _file_digest(fd: int, length: int | None, check: Callable[[], None]) -> tuple[int, str]:
    """SHA-256 of the first ``length`` bytes of the open file ``fd`` (all if None), and its size.

    The descriptor, not a path: what is hashed is what was opened and checked.
    """
    digest = hashlib.sha256()
    remaining = length
    size = os.fstat(fd).st_size
    offset = 0
    while remaining is None or remaining > 0:
        check()
        want = HASH_BLOCK if remaining is None else min(HASH_BLOCK, remaining)
        if hasattr(os, "pread"):
            block = os.pread(fd, want, offset)
        else:  # pragma: no cover - Windows
            os.lseek(fd, offset, os.SEEK_SET)
            block = os.read(fd, want)
        if not block:
            break
        digest.update(block)
        offset += len(block)
        if remaining is not None:
            remaining -= len(block)
    if remaining:
        raise ValueError(f"the file is shorter than {length} bytes")
    return size, digest.hexdigest()


_HashKey = tuple[int, int, int, int, int | None]


def _hash_key(st: os.stat_result, length: int | None) -> _HashKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, length)


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
        self, fd: int, length: int | None = None, check: Callable[[], None] = lambda: None
    ) -> tuple[int, str]:
        """Size and SHA-256 of the open file ``fd`` (its first ``length`` bytes), computed once.

        Takes ownership of ``fd`` (closes it). Results are kept by file identity (device,
        inode, size, modification time), so a file renamed into place, or hashed while
        it was copied, is not read again.
        """
        future: asyncio.Future[tuple[int, str]] | None = None
        try:
            st = os.fstat(fd)
            key = _hash_key(st, length)
            future = self._hashes.get(key)
            if future is None:
                future = asyncio.ensure_future(asyncio.to_thread(_file_digest, fd, length, check))
                self._remember(key, future)
            try:
                return await asyncio.shield(future)
            except BaseException:
                if future.done():
                    self._hashes.pop(key, None)
                raise
        finally:
            if future is None or future.done():
                os.close(fd)
            else:  # cancelled while the thread still reads it: close when it is done
                future.add_done_callback(lambda _: os.close(fd))

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
        #: Stopped or disconnected: any child, even one still being started, is killed.
        self._killed = False

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
                f"Refused: the technician tried {safe_text(what, 300)} without your permission "
                f"for {capability}."
            )
            return False
        self.capability = capability
        self.service.track(capability, self)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._killed = True
        self._kill_child()
        if self.capability:
            self.service.untrack(self.capability, self)
        super().connection_lost(exc)

    def stop(self, reason: str) -> None:
        """Permission withdrawn: kill what runs and close the channel now."""
        self._stopped = True
        self._killed = True
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
            self.service.tell("shell.ran_command", command=safe_text(command, 300))
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
        what = f"command {safe_text(command, 80)!r}" if command else "terminal"
        self.service.audit.write(f"The technician's {what} ended (exit status {status}).")

    def _typed(self, line: str) -> None:
        self.service.tell("shell.typed", line=safe_text(line, 300))

    def _started(self, child: asyncio.subprocess.Process) -> None:
        self._child = child
        # The child can be forked (and running) before this callback: a stop or a lost
        # connection that came in between found no child to kill, so kill it now.
        if self._killed:
            self._kill_child()
