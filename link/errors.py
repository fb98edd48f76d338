"""Exceptions of the link: the client side of the wire, shared by agent and technician.

Every error a caller can meet reads as a sentence that says what to do.

The tree::

    LinkError                 the link to the relay and the peer failed; also a bad
     │                        relay address or CA file (link.relay_address), a closed
     │                        tunnel (link.tunnel)
     ├── RelayUnavailable     the relay could not be reached or dropped us
     ├── RelayRefused         the relay said no (wrong/expired code, token, rate limit);
     │    │                   ``code`` is the relay's :class:`protocol.errors.ErrorCode`
     │    └── CodeReissued    someone else claimed the technician's code; the relay made
     │                        a new one for the same ticket (``nameplate``, ``session_id``)
     └── SessionLost          the session ended abnormally after pairing; ``kind`` says how
          (protocol errors such as WrongCodeError / IntegrityError are the ``__cause__``)

The technician's REST client adds ``technician.errors.RelayApiError`` under
``LinkError``, so one ``except LinkError`` covers everything the relay can answer.
"""

from __future__ import annotations


class LinkError(Exception):
    """Base class of errors of the link to the relay and the peer."""


class RelayUnavailable(LinkError):
    pass


class RelayRefused(LinkError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CodeReissued(RelayRefused):
    """Someone else claimed this code, so the relay burnt it and made a new nameplate
    for the same ticket: make a new code with it and give that to the customer."""

    def __init__(self, nameplate: str, session_id: str, join_url: str | None) -> None:
        super().__init__("reissued", "Someone else used this code; give the customer the new one.")
        self.nameplate = nameplate
        self.session_id = session_id
        self.join_url = join_url


class SessionLost(LinkError):
    """The session ended abnormally; ``kind`` says how, for a translated message.

    Kinds: ``lost`` (generic), ``resume_timeout`` (this end could not get back in
    time), ``peer_timeout`` (the other side did not come back in time),
    ``peer_gone`` (the other side left), ``relay`` (the relay ended it), ``bug`` (this
    program failed; never resumed, so a bug cannot pass for a network problem).
    """

    def __init__(self, message: str, kind: str = "lost", code: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        #: The relay's error code when ``kind`` is ``relay``.
        self.code = code
