"""Where the relay is and how to trust it: its URL and the TLS context to reach it.

Used before any link exists (checking ``--relay``, loading ``--ca-file``) and for the
relay's REST API, so apart from :class:`link.connection.Link`. Problems are
:class:`link.errors.LinkError` sentences that say what to do.
"""

from __future__ import annotations

import ssl as ssl_module

from .errors import LinkError


def check_relay_url(url: str) -> str:
    """Accept ``wss://`` anywhere and ``ws://`` only on loopback (no plaintext mode)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise LinkError(f"{url!r} is not a relay address; it looks like wss://relay.example.org")
    if parts.scheme == "ws" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise LinkError(
            f"{url} is not encrypted; use wss:// (plain ws:// is only for loopback tests)"
        )
    return url.rstrip("/")


def client_ssl_context(ca_file: str | None) -> ssl_module.SSLContext | None:
    """The TLS context of ``--ca-file``: trust that CA (and the system's) for the relay.

    None without a file: ``wss://`` then trusts the system's certificate authorities.
    Raise :class:`LinkError` (a sentence) if the file cannot be used.
    """
    if not ca_file:
        return None
    try:
        return ssl_module.create_default_context(cafile=ca_file)
    except (OSError, ssl_module.SSLError) as exc:
        raise LinkError(
            f"Cannot use {ca_file!r} as the relay's CA certificate "
            f"({getattr(exc, 'strerror', None) or exc}); pass a PEM certificate file with --ca-file."
        ) from exc


def untrusted_certificate(relay_url: str, exc: ssl_module.SSLCertVerificationError) -> str:
    """The sentence for a relay whose TLS certificate this computer does not trust."""
    return (
        f"The relay at {relay_url} presented a certificate this computer does not trust "
        f"({exc.verify_message}); check the address, or if the relay uses its own "
        "certificate authority, pass its certificate with --ca-file."
    )


def http_url(relay_url: str) -> str:
    """The REST base URL of a relay given by its WebSocket URL."""
    if relay_url.startswith("wss://"):
        return "https://" + relay_url[len("wss://") :]
    if relay_url.startswith("ws://"):
        return "http://" + relay_url[len("ws://") :]
    return relay_url
