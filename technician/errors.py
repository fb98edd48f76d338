"""Exceptions of the technician's tools (besides the link errors of ``link.connection``).

The tree::

    TechnicianError
     ├── CredentialsError   a key, certificate or passphrase could not be used
     ├── FixLibraryError    a fix directory, bundle or library entry could not be used
     └── RuleError          a knowledge-base rule file is not valid (names file and rule)

``APIError`` (REST refusals) is a ``link.connection.LinkError`` and lives in
:mod:`technician.client`. Every message says what to do.
"""

from __future__ import annotations


class TechnicianError(Exception):
    """Base class of the technician tools' errors."""


class CredentialsError(TechnicianError):
    """A key, certificate or passphrase could not be used; the message says what to do."""


class FixLibraryError(TechnicianError):
    """A fix directory, bundle or library entry could not be used; says what to do."""


class RuleError(TechnicianError):
    """A rule file is not valid; the message names the file and the rule."""
