"""SFTP confined to the folder the customer shared (the ``files`` capability).

Every path goes through :func:`agent.capabilities.shell.confinement.confine`; files
and folders are then opened from the shared folder's descriptor without following
links (:func:`~agent.capabilities.shell.confinement.open_confined`); writes to
start-up locations and setuid/setgid modes are refused
(:func:`~agent.capabilities.shell.confinement.check_write`, ``check_mode``). Every
file moved (name, size, SHA-256 of the opened file) is written to the customer's log
and shown to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import asyncssh

from agent.capabilities.shell.confinement import (
    check_mode,
    check_write,
    confine,
    human_size,
    open_confined,
    open_parent,
    shown_path,
)
from agent.errors import LinkRefused, PathRefused, WriteRefused
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
        self, fd: int, length: int | None = None, check: Callable[[], None] = ...
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
        st = os.fstat(self.file.fileno())
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

    def _refused(self, exc: WriteRefused | LinkRefused) -> asyncssh.SFTPPermissionDenied:
        """The technician's error for a refused write, written to the customer's log too."""
        self.service.audit.write(f"Refused: {exc}")
        return asyncssh.SFTPPermissionDenied(str(exc))

    def _check_write(self, local: str, mode: int | None = None, holding: bool = False) -> None:
        try:
            # A resumable copy's part file is refused as its destination would be.
            check_write(self.root, local.removesuffix(PART_SUFFIX), holding=holding)
            check_write(self.root, local, holding=holding)
            check_mode(self.root, local, mode)
        except WriteRefused as exc:
            raise self._refused(exc) from None

    def _open_fd(self, local: str, flags: int, mode: int = 0o666) -> int:
        try:
            return open_confined(self.root, local, flags, mode)
        except LinkRefused as exc:
            raise self._refused(exc) from None

    @contextlib.contextmanager
    def _parent(self, local: str) -> Iterator[tuple[int, str]]:
        """The descriptor of ``local``'s folder (walked without links) and its last name."""
        try:
            fd, name = open_parent(self.root, local)
        except LinkRefused as exc:
            raise self._refused(exc) from None
        except PathRefused as exc:
            raise asyncssh.SFTPPermissionDenied(str(exc)) from None
        try:
            yield fd, name
        finally:
            os.close(fd)

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
        local = self._local(path, follow=False)
        if local == self.root:
            return os.lstat(local)
        with self._parent(local) as (parent, name):
            return os.stat(name, dir_fd=parent, follow_symlinks=False)

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        local = self._local(path)
        # ".." of the shared folder is the shared folder itself, as in a chroot.
        parent = local if local == self.root else os.path.dirname(local)
        fd = self._open_fd(local, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            for name, st in ((b".", os.fstat(fd)), (b"..", os.stat(parent))):
                yield asyncssh.SFTPName(name, attrs=asyncssh.SFTPAttrs.from_local(st))
            with os.scandir(fd if os.scandir in os.supports_fd else local) as entries:
                for entry in entries:
                    attrs = asyncssh.SFTPAttrs.from_local(entry.stat(follow_symlinks=False))
                    yield asyncssh.SFTPName(os.fsencode(entry.name), attrs=attrs)
        finally:
            os.close(fd)

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        local = self._local(path)
        self._check_write(local, attrs.permissions)
        try:
            fd = self._open_fd(local, os.O_RDONLY)
        except PermissionError:  # a file only its writer may open
            fd = self._open_fd(local, os.O_WRONLY)
        try:
            _set_attributes(fd, attrs)
        finally:
            os.close(fd)

    def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise asyncssh.SFTPOpUnsupported("Changing a link's attributes is not supported.")

    def remove(self, path: bytes) -> None:
        local = self._local(path, follow=False)
        with self._parent(local) as (parent, name):
            os.unlink(name, dir_fd=parent)
        self.service.tell("files.deleted_file", path=shown_path(self.root, local))

    def rmdir(self, path: bytes) -> None:
        local = self._local(path, follow=False)
        with self._parent(local) as (parent, name):
            os.rmdir(name, dir_fd=parent)
        self.service.tell("files.deleted_folder", path=shown_path(self.root, local))

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        local = self._local(path, follow=False)
        self._check_write(local, attrs.permissions)
        with self._parent(local) as (parent, name):
            os.mkdir(name, 0o777 if attrs.permissions is None else attrs.permissions, dir_fd=parent)
        self.service.tell("files.created_folder", path=shown_path(self.root, local))

    def readlink(self, path: bytes) -> bytes:
        # The link's target is shown only when it stays inside the shared folder.
        return self.reverse_map_path(os.fsencode(self._local(path, follow=True)))

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._rename(oldpath, newpath, replace=False)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._rename(oldpath, newpath, replace=True)

    def _rename(self, oldpath: bytes, newpath: bytes, replace: bool) -> None:
        old = self._local(oldpath, follow=False)
        new = self._local(newpath, follow=False)
        # A folder renamed onto ~/.config would bring its own autostart/ with it.
        self._check_write(new, holding=True)
        with (
            self._parent(old) as (old_parent, old_name),
            self._parent(new) as (
                new_parent,
                new_name,
            ),
        ):
            if not replace:
                try:
                    os.stat(new_name, dir_fd=new_parent, follow_symlinks=False)
                except FileNotFoundError:
                    pass
                else:
                    raise asyncssh.SFTPFileAlreadyExists("File already exists")
            os.replace(old_name, new_name, src_dir_fd=old_parent, dst_dir_fd=new_parent)
        self._renamed(old, new)

    def _renamed(self, old: str, new: str) -> None:
        if old.endswith(PART_SUFFIX) and new == old[: -len(PART_SUFFIX)]:
            fd = self._open_fd(new, os.O_RDONLY)
            self._announce(shown_path(self.root, new), fd, received=0, sent=0, finished=True)
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
        changes = asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC
        writing = bool(pflags & changes)
        if writing:
            self._check_write(local, attrs.permissions if pflags & asyncssh.FXF_CREAT else None)
        mode, flags = _open_mode(pflags)
        perms = 0o666 if attrs.permissions is None else attrs.permissions
        fd = self._open_fd(local, flags, perms)
        file = open(fd, mode, buffering=0)
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
        self._check_write(file_obj.local, attrs.permissions)
        _set_attributes(file_obj.file.fileno(), attrs)

    def fstatvfs(self, file_obj: object) -> Any:
        assert isinstance(file_obj, _OpenFile)
        return super().fstatvfs(file_obj.file)

    def fsync(self, file_obj: object) -> None:
        assert isinstance(file_obj, _OpenFile)
        super().fsync(file_obj.file)

    def close(self, file_obj: object) -> None:
        assert isinstance(file_obj, _OpenFile)
        entry = file_obj
        with contextlib.suppress(OSError):
            seen = entry.whole_file_hash()
            if seen is not None:
                self.service.remember_hash(*seen)
        # What the customer is told is the hash of the file that was opened, not of
        # whatever the path names by the time the hash is computed.
        opened = os.dup(entry.file.fileno())
        super().close(entry.file)
        if entry.written_bytes and entry.local.endswith(PART_SUFFIX):
            # A resumable copy in progress: announced once it is renamed into place.
            self.service.audit.write(
                f"Partly copied to this computer, kept to resume: {entry.client_path} "
                f"({entry.written_bytes} bytes written now)"
            )
        elif entry.written_bytes or entry.read_bytes:
            self._announce(entry.client_path, opened, entry.written_bytes, entry.read_bytes, False)
            return
        os.close(opened)

    def _announce(self, shown: str, fd: int, received: int, sent: int, finished: bool) -> None:
        """Tell the customer about a file moved, with its size and SHA-256 (computed aside).

        Takes ownership of ``fd``, the opened file that is hashed.
        """

        async def announce() -> None:
            try:
                size, sha = await self.service.file_hash(fd)
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


def _open_mode(pflags: int) -> tuple[str, int]:
    """The Python file mode and ``os.open`` flags for SFTP open flags (as asyncssh maps them)."""
    if pflags & asyncssh.FXF_EXCL:
        mode = "xb"
    elif pflags & asyncssh.FXF_APPEND:
        mode = "ab"
    elif pflags & asyncssh.FXF_WRITE and not pflags & asyncssh.FXF_READ:
        mode = "wb"
    else:
        mode = "rb"
    if pflags & asyncssh.FXF_READ and pflags & asyncssh.FXF_WRITE:
        mode += "+"
        flags = os.O_RDWR
    elif pflags & asyncssh.FXF_WRITE:
        flags = os.O_WRONLY
    else:
        flags = os.O_RDONLY
    for sftp_flag, os_flag in (
        (asyncssh.FXF_APPEND, os.O_APPEND),
        (asyncssh.FXF_CREAT, os.O_CREAT),
        (asyncssh.FXF_TRUNC, os.O_TRUNC),
        (asyncssh.FXF_EXCL, os.O_EXCL),
    ):
        if pflags & sftp_flag:
            flags |= os_flag
    return mode, flags | getattr(os, "O_BINARY", 0)


def _set_attributes(fd: int, attrs: asyncssh.SFTPAttrs) -> None:
    """SFTP setstat on an open descriptor: size, owner, times, permissions."""
    if attrs.size is not None:
        os.ftruncate(fd, attrs.size)
    if attrs.uid is not None or attrs.gid is not None:
        os.fchown(
            fd, -1 if attrs.uid is None else attrs.uid, -1 if attrs.gid is None else attrs.gid
        )
    if attrs.atime is not None or attrs.mtime is not None:
        st = os.fstat(fd)
        atime = (
            st.st_atime_ns if attrs.atime is None else attrs.atime * 10**9 + (attrs.atime_ns or 0)
        )
        mtime = (
            st.st_mtime_ns if attrs.mtime is None else attrs.mtime * 10**9 + (attrs.mtime_ns or 0)
        )
        os.utime(fd, ns=(atime, mtime))
    if attrs.permissions is not None:
        os.fchmod(fd, attrs.permissions & 0o7777)
