"""Exceptions of the relay.

Every error an operator can meet reads as a sentence that says what to do; the
CLI prints it as it is and exits with status 2.

The tree::

    RelayError                  base of everything the relay raises on purpose
     ├── ConfigError            a setting cannot work (bad port, unusable data dir,
     │                          a connector without its secret)
     ├── StoreError             the store refused an operation
     │    └── TechnicianExists  a technician account with that name already exists
     ├── EnrolmentRefused       an enrolment token or a policy file cannot be used
     │                          (unknown, expired, used up, withdrawn, not signed)
     ├── DeliveryError          a help desk did not acknowledge an event; the outbox
     │                          retries it later (never seen by an operator's command)
     ├── ApiRefusal             the REST API refuses a request: answered with its
     │                          status and {"error": code, "message": sentence}
     │                          (not the technician client's APIError, which is the
     │                          other side of the same answer)
     ├── QueueRefusal           the help queue refuses a customer's or a technician's
     │                          step (a code and a sentence; the API maps it to a status)
     ├── HeaderError            a header the relay relies on was repeated or
     │                          malformed (also a ValueError); the request is refused
     └── RedisUnavailable       Redis could not be asked; the caller refuses what
                                needed it (a claim gets error shutdown)
"""

from __future__ import annotations

import http


class RelayError(Exception):
    """Base class of the errors the relay raises on purpose."""


class ConfigError(RelayError):
    """A setting cannot work; the message says which and what to do."""


class StoreError(RelayError):
    """The store refused an operation; the message says why."""


class TechnicianExists(StoreError):
    """A technician account with this name already exists (active or removed)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"A technician named {name!r} already exists; choose another name "
            "(removed accounts keep their names so past sessions stay attributable)."
        )


class EnrolmentRefused(RelayError):
    """An enrolment token or policy cannot be used; the sentence says what to do."""


class DeliveryError(RelayError):
    """The help desk did not acknowledge an event; the message says what it answered."""


class ApiRefusal(RelayError):
    """A refusal the API answers with ``{"error": code, "message": sentence}``."""

    def __init__(
        self,
        status: http.HTTPStatus,
        code: str,
        message: str,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


class QueueRefusal(RelayError):
    """The help queue refuses a step; ``code`` names why, the message says what to do."""

    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


class HeaderError(RelayError, ValueError):
    """A header the relay relies on was repeated or malformed."""


class RedisUnavailable(RelayError):
    """Redis could not be asked; the caller refuses what needed it."""
