"""SFTP confined to the folder the customer shared (the ``files`` capability).

Every path goes through :func:`agent.capabilities.shell.confinement.confine`; every
file moved (name, size, SHA-256) is written to the customer's log and shown to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

import asyncssh

from agent.capabilities.shell.confinement import confine, human_size, shown_path
from agent.errors import PathRefused
from agent.i18n import english, t
from protocol.safe_text import safe_text
from protocol.streams import PART_SUFFIX

if TYPE_CHECKING:
    from agent.audit import AgentLog


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
                f"Refused: the technician asked for {safe_text(client_path, 300)!r} (outside {self.root})."
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
