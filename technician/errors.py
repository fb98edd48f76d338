"""Exceptions of the technician's tools. Every message says what to do.

The tree::

    TechnicianError
     ├── CredentialsError   a key, certificate or passphrase could not be used
     ├── FixLibraryError    a fix directory, bundle or library entry could not be used
     ├── StreamRefused      the agent did not start a screen stream; ``reply`` says why
     └── UsageError         a session-console command line lacks arguments (the console
                            answers with the command's usage)

    link.errors.LinkError   (the link's tree: RelayUnavailable, RelayRefused, SessionLost)
     └── RelayApiError      the relay's REST API refused a request: ``status`` (HTTP)
                            and ``code``; a LinkError, so one ``except LinkError`` covers
                            everything the relay can answer

    protocol.errors.RuleError  a knowledge-base rule file is not valid (names file and
                            rule); raised by the shared engine (protocol.triage) and
                            offered here as ``technician.errors.RuleError``

    protocol.errors.MalformedMessage
     └── ScreenDataError    the agent sent pixels that do not decode as announced; the
                            stream ends, as for any malformed message

``technician.ssh_commands.Refused`` (a refusal already turned into a console result
line) never leaves that module.
"""

from __future__ import annotations

from link.errors import LinkError
from protocol.errors import MalformedMessage
from protocol.errors import RuleError as RuleError  # the shared engine's (protocol.triage)
from protocol.messages import Reply


class TechnicianError(Exception):
    """Base class of the technician tools' errors."""


class CredentialsError(TechnicianError):
    """A key, certificate or passphrase could not be used; the message says what to do."""


class FixLibraryError(TechnicianError):
    """A fix directory, bundle or library entry could not be used; says what to do."""


class StreamRefused(TechnicianError):
    """The stream did not start; ``reply`` says why (declined, failed...)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.message or "the screen stream did not start")
        self.reply = reply


class UsageError(TechnicianError):
    """A console command line lacks what the command needs; the console adds its usage."""


class RelayApiError(LinkError):
    """The relay's REST API refused a request (``status`` is the HTTP status).

    Not the relay's own ``relay.errors.ApiError``: this is how the technician's client
    reports the relay's answer.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ScreenDataError(MalformedMessage):
    """The agent sent pixels that do not decode as announced."""
