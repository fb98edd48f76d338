"""Exceptions of the customer's agent.

The tree::

    AgentError
     ├── ConsentDeclined     the customer said no to a capability (or nobody answered)
     ├── ConsentRevoked      the customer withdrew consent while the capability ran
     ├── CapabilityFailed    a capability ran and could not finish; the message says why
     └── PathRefused         a path the technician asked for is outside the folder the
                             customer shared (``..``, an absolute path elsewhere, or a
                             symbolic link leading out)
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


class PathRefused(AgentError):
    def __init__(self, path: str) -> None:
        shown = path if len(path) <= 200 else path[:200] + "..."
        super().__init__(
            f"{shown!r} is outside the folder the customer shared; "
            "use a path inside it (the shared folder is / in file transfers)."
        )
        self.path = path
