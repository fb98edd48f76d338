"""Shell and file transfer: a real SSH server (asyncssh) inside the session's ``ssh`` channel.

Two capabilities, each consented on its own:

``shell``
    Terminal sessions and commands as the customer's user (their login shell on
    Linux and macOS, PowerShell on Windows), with a PTY when the client asks for one.
``files``
    SFTP (and legacy ``scp``), confined to the folder the customer chose when they
    allowed it (``~/Puente shared`` by default, never the home folder unless they pick
    it); writes to start-up locations and setuid/setgid modes are refused there.

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
link that leads outside the folder is refused too; files are then opened from the
shared folder's descriptor without following links (see
:mod:`agent.capabilities.shell.confinement`).
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from typing import Any

import asyncssh

from agent.capabilities.base import Capability, CapabilityCall, Choice
from agent.capabilities.shell.confinement import (
    check_folder,
    confine,
    default_folder,
    open_confined,
    shown_path,
)
from agent.capabilities.shell.processes import shell_argv
from agent.capabilities.shell.service import service_for
from agent.i18n import english
from protocol.mux import Channel

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
    fd = open_confined(root, local, os.O_RDONLY)  # hash what was opened, not the path
    service = service_for(call)
    size, sha = await service.file_hash(fd, length, call.authorization.check)
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
        description=english("cap.files.description"),
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
    "files_capability",
    "shell_capability",
]
