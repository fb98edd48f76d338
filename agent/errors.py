"""Exceptions of the customer's agent.

The tree::

    AgentError
     ├── ConsentDeclined     the customer said no to a capability (or nobody answered)
     ├── ConsentRevoked      the customer withdrew consent while the capability ran
     ├── CapabilityFailed    a capability ran and could not finish; the message says why
     │    └── CaptureUnavailable   this desktop cannot be captured; the message says
     │                             why, for both people
     ├── RequestRefused      a request was refused before anything ran (a fix that failed
     │                       verification); shown to the customer, sent as REFUSED
     ├── TrustSetupError     the pinned organisation key or its revocation list could not
     │    │                  be used; the agent does not start
     │    └── EnrolmentFailed   enrolling this computer could not go on (a refused token
     │                          or policy, a "no", an unreachable relay); nothing was kept
     ├── SettingsError       the settings built into this agent are unusable; the agent
     │                       does not start
     ├── PathRefused         a path the technician asked for is outside the folder the
     │                       customer shared (``..``, an absolute path elsewhere, or a
     │                       symbolic link leading out)
     ├── WriteRefused        a file transfer that would change a start-up or
     │                       shell-initialisation location, or set setuid/setgid
     ├── HubUnavailable      an enrolled device's service cannot open the socket of the
     │                       signed-in users' helpers; its questions go to the console
     └── LinkRefused         a path turned into a symbolic link between its check and
                             its opening (links are never followed when opening)

Failures of signed documents themselves are ``protocol.errors.TrustError``; the link's
errors (``SessionLost``...) are drawn in :mod:`link.connection`.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base class of the agent's errors."""


class ConsentDeclined(AgentError):
    def __init__(self, capability: str, message: str = "") -> None:
        super().__init__(message or f"The customer declined {capability}.")
        self.capability = capability


class ConsentRevoked(AgentError):
    def __init__(self, capability: str) -> None:
        super().__init__(f"The customer stopped {capability}.")
        self.capability = capability


class CapabilityFailed(AgentError):
    pass


class CaptureUnavailable(CapabilityFailed):
    """This desktop cannot be captured; the message says why, for both people."""


class RequestRefused(AgentError):
    """A capability's ``prepare`` refused a request before anything ran; says why."""


class TrustSetupError(AgentError):
    """The pinned key or the revocation list could not be loaded; the agent must not start."""


class EnrolmentFailed(TrustSetupError):
    """Enrolling could not go on; the sentence (in the owner's language) says why."""


class SettingsError(AgentError):
    """The baked settings are unusable; the sentence says what to do."""


class PathRefused(AgentError):
    def __init__(self, path: str) -> None:
        shown = path if len(path) <= 200 else path[:200] + "..."
        super().__init__(
            f"{shown!r} is outside the folder the customer shared; "
            "use a path inside it (the shared folder is / in file transfers)."
        )
        self.path = path


class WriteRefused(AgentError):
    """A Files write that could make something run later; the sentence says what to do."""


class HubUnavailable(AgentError):
    """The helpers' socket cannot be opened (agent.helper_hub); the sentence says why."""


class LinkRefused(AgentError):
    def __init__(self, shown: str) -> None:
        super().__init__(
            f"{shown} changed into a symbolic link while it was being opened, and Puente "
            "does not follow links when it opens files; check the folder and try again."
        )
