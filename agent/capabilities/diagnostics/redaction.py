"""The diagnostics' secret masker: what :func:`redact` hides and how.

Every text the agent collects from the computer (system log lines, process names,
error texts) goes through :func:`redact` before the technician can see it; it masks
passwords, tokens, keys, cookies, credentials in URLs and long token-like strings with
``[redacted]``. As a second line of defence :func:`scrub_environment_values` masks the
values of this process's secret-looking environment variables wherever they would
appear in a collected document.

Quantifiers are bounded so that a hostile log line cannot make a rule backtrack for
long; :func:`redact` is idempotent (masked text comes back unchanged, count 0).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

__all__ = ["REDACTED", "redact", "scrub_environment_values"]

#: What a masked secret is replaced with.
REDACTED = "[redacted]"


def redact(text: str) -> tuple[str, int]:
    """Mask secrets in ``text``; return the masked text and how many were masked.

    Masked with ``[redacted]``: values of password/passwd/pwd/secret/token/api key/
    authorization/bearer/session/cookie keys (``key=value``, ``key: value``,
    ``"key": "value"``), ``Authorization:``/``Cookie:`` header values, ``Bearer``
    tokens, JWTs, AWS access key ids, private key blocks, passwords in URLs
    (``scheme://user:password@host``) and hex or base64 strings of 32+ characters
    that look like tokens. Ordinary text comes back unchanged with a count of 0.
    """
    total = 0
    for pattern, mask in _REDACTION_RULES:
        text, count = _apply_rule(pattern, mask, text)
        total += count
    return text, total


_KEY_WORDS = (
    r"pass(?:word|wd|phrase)|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|authorization|bearer|session|cookie|credentials?"
)

_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:.*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|.*)",
    re.DOTALL,
)
# Quantifiers are bounded and keys start at word starts so that a hostile log line
# cannot make a pattern backtrack for long (every rule stays close to linear).
_URL_PASSWORD = re.compile(
    r"(?P<start>\b[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s:/@]{0,256}:)(?!\[redacted\]@)"
    r"[^\s/?#]{1,256}@"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_HEADER = re.compile(
    r"(?i)(?<![\w-])(?P<key>(?:proxy-)?authorization|(?:set-)?cookie)(?P<sep>\s*:\s*)"
    r"(?!\[redacted\])\S(?:[^\r\n]*\S)?"
)
_BEARER = re.compile(
    r"(?<![\w-])(?P<scheme>[Bb]earer)\s+(?!\[redacted\])(?P<value>[A-Za-z0-9\-._~+/]{8,}=*)"
)
_KEY_VALUE = re.compile(
    rf"""(?ix)
    (?<![\w-])
    (?=[\w-]*?(?:{_KEY_WORDS}))
    (?P<key>[\w-]+)
    (?P<sep>["']?\s*(?:=>|[:=])\s*)
    (?!["']?\[redacted\])
    (?P<value>"(?:\\.|[^"\\\n]){{0,4096}}"|'(?:\\.|[^'\\\n]){{0,4096}}'|[^\s,;&"'<>()\[\]{{}}]+)
    """
)
_AWS_ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
_LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_-]{32,}={0,2}(?![A-Za-z0-9+/_=-])")
_HEX = re.compile(r"[0-9A-Fa-f]+")


# A mask returns the replacement for a match, or None to leave the match as it is.
Mask = Callable[[re.Match[str]], str | None]


def _apply_rule(pattern: re.Pattern[str], mask: Mask, text: str) -> tuple[str, int]:
    """Substitute every match of ``pattern`` that ``mask`` masks; count those only."""
    masked = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal masked
        replacement = mask(match)
        if replacement is None:
            return match.group(0)
        masked += 1
        return replacement

    return pattern.sub(replace, text), masked


def _mask_all(match: re.Match[str]) -> str | None:
    return REDACTED


def _mask_url_password(match: re.Match[str]) -> str | None:
    return f"{match.group('start')}{REDACTED}@"


def _mask_header(match: re.Match[str]) -> str | None:
    return f"{match.group('key')}{match.group('sep')}{REDACTED}"


def _mask_bearer(match: re.Match[str]) -> str | None:
    value = match.group("value")
    if value.isalpha() and value.islower():  # "bearer authentication", not a token
        return None
    return f"{match.group('scheme')} {REDACTED}"


def _mask_key_value(match: re.Match[str]) -> str | None:
    value = match.group("value")
    if value in ('""', "''"):
        return None
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match.group('key')}{match.group('sep')}{quote}{REDACTED}{quote}"


def _mask_long_token(match: re.Match[str]) -> str | None:
    return REDACTED if _looks_like_token(match.group(0)) else None


def _looks_like_token(candidate: str) -> bool:
    """Whether a 32+ character run of hex/base64 characters is probably a secret.

    Hex counts when it mixes digits and letters. Base64 counts when it mixes
    upper case, lower case and digits, or is as varied as random data; a path
    (leading or doubled ``/``) never counts.
    """
    core = candidate.rstrip("=")
    if _HEX.fullmatch(core):
        return any(c.isdigit() for c in core) and any(c.isalpha() for c in core)
    if core.startswith("/") or "//" in core:
        return False
    mixed = (
        any(c.isupper() for c in core)
        and any(c.islower() for c in core)
        and any(c.isdigit() for c in core)
    )
    entropy = _entropy(core)
    if "/" in core:
        return mixed and entropy >= 4.0
    return (mixed and entropy >= 3.5) or entropy >= 4.3


def _entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


_REDACTION_RULES: tuple[tuple[re.Pattern[str], Mask], ...] = (
    (_PRIVATE_KEY, _mask_all),
    (_URL_PASSWORD, _mask_url_password),
    (_JWT, _mask_all),
    (_HEADER, _mask_header),
    (_BEARER, _mask_bearer),
    (_KEY_VALUE, _mask_key_value),
    (_AWS_ACCESS_KEY, _mask_all),
    (_LONG_TOKEN, _mask_long_token),
)

# Environment variables whose values must never leak, even through a log line.
_SECRET_VARIABLE = re.compile(
    r"(?i)pass|secret|token|api_?key|access_?key|private_?key|auth|cookie|credential"
)


def _environment_secrets() -> list[str]:
    """Values of secret-looking environment variables, longest first (paths excluded)."""
    values = {
        value
        for name, value in os.environ.items()
        if _SECRET_VARIABLE.search(name) and len(value) >= 8 and not value.startswith("/")
    }
    return sorted(values, key=len, reverse=True)


def scrub_environment_values(document: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Mask secret environment values in every string of ``document``; count them."""
    secrets = _environment_secrets()
    if not secrets:
        return document, 0
    masked = 0

    def scrub(value: Any) -> Any:
        nonlocal masked
        if isinstance(value, str):
            for secret in secrets:
                if secret in value:
                    masked += value.count(secret)
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {key: scrub(item) for key, item in value.items()}
        if isinstance(value, list):
            return [scrub(item) for item in value]
        return value

    return scrub(document), masked
