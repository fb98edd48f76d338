"""API tokens: ``pt_<token-id>_<secret>``, and the one form in which they are stored.

The token id finds the account; only the SHA-256 of the secret is stored. The secret
is 256 random bits, so a fast hash is enough (no password-stretching needed), and
digests are compared with :func:`hmac.compare_digest` by the store. Pure helpers.
"""

from __future__ import annotations

import hashlib
import secrets

#: Prefix of every API token, so leaked tokens are easy to recognise and scan for.
TOKEN_PREFIX = "pt"


def hash_secret(secret: str) -> str:
    """SHA-256 hex digest of a token secret (the only form in which it is stored)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> tuple[str, str, str]:
    """Make an API token; return ``(token, token_id, secret_hash)``."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return f"{TOKEN_PREFIX}_{token_id}_{secret}", token_id, hash_secret(secret)


def parse_token(token: str) -> tuple[str, str] | None:
    """Split a token into ``(token_id, secret)``, or None if it is not shaped like one."""
    parts = token.split("_", 2)  # the secret may itself contain "_"
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]
