"""TLS for the relay: serve ``wss://`` and ``https://`` from a certificate and key file.

Rules::

    files        --tls-cert and --tls-key together or not at all; PEM; the certificate
                 file may hold the whole chain (leaf first). A missing or unreadable
                 file, or a key that does not match the certificate, is a ConfigError
                 naming the flag to fix; the relay does not start half-secured.
    protocol     TLS 1.2 or newer (ssl.create_default_context's server defaults:
                 no compression, strong ciphers). No client certificates.
    rotation     reload() re-reads both files into the same context: new handshakes
                 use the new pair, open connections keep theirs. ``puente-relay serve``
                 calls it on SIGHUP; a bad new pair is refused and the old one stays.

Without TLS the relay speaks plain HTTP; that is meant for loopback and for running
behind a TLS-terminating reverse proxy (docs/deploy.md), never for the open internet.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from .errors import ConfigError


def check_pair(cert_file: str | Path | None, key_file: str | Path | None) -> None:
    """Refuse one of the two files without the other."""
    if (cert_file is None) != (key_file is None):
        missing = "--tls-key (PUENTE_TLS_KEY)" if key_file is None else "--tls-cert"
        raise ConfigError(
            f"TLS needs both a certificate and its key; add {missing}, or drop the other flag "
            "to serve plain HTTP behind a reverse proxy."
        )


class ServerTLS:
    """An ``ssl.SSLContext`` for the relay's listening socket, reloadable in place."""

    def __init__(self, cert_file: str | Path, key_file: str | Path) -> None:
        """Load the pair; raise :class:`ConfigError` (a sentence) if it cannot serve."""
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load(self.context)

    def reload(self) -> None:
        """Re-read both files for new handshakes; on error keep the old pair and raise."""
        # Check the new pair on a scratch context first, so a half-written file during
        # a certificate renewal never leaves the live context without a usable pair.
        scratch = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._load(scratch)
        self._load(self.context)

    def _load(self, context: ssl.SSLContext) -> None:
        for flag, path in (("--tls-cert", self.cert_file), ("--tls-key", self.key_file)):
            if not path.is_file():
                raise ConfigError(
                    f"The TLS file {str(path)!r} does not exist or is not a file; check {flag}."
                )
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc):
                raise ConfigError(
                    f"The TLS key {str(self.key_file)!r} does not belong to the certificate "
                    f"{str(self.cert_file)!r}; pass the matching pair with --tls-cert and --tls-key."
                ) from exc
            raise ConfigError(
                f"Cannot use the TLS certificate {str(self.cert_file)!r} with the key "
                f"{str(self.key_file)!r} ({exc.reason or exc}); both must be PEM files and "
                "the key must not need a passphrase."
            ) from exc
        except OSError as exc:
            raise ConfigError(
                f"Cannot read the TLS files ({exc.strerror or exc}); check that the relay's "
                "user may read --tls-cert and --tls-key."
            ) from exc
