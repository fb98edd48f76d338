"""Tests of agent.capabilities.diagnostics.redaction: the secret masker of the diagnostics."""

from __future__ import annotations

import time

import pytest

from agent.capabilities.diagnostics import redaction
from agent.capabilities.diagnostics.redaction import redact
from tests.support.timeouts import scaled

PLANTED_SECRET = "hunter2-very-secret-value"

PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----"
)

# (text, the secret that must disappear, the expected text or None when only the secret matters)
SECRETS = [
    ("password=hunter2", "hunter2", "password=[redacted]"),
    ("login failed: passwd: s3cr3t!", "s3cr3t!", "login failed: passwd: [redacted]"),
    ("mysql pwd=abc123 host=db", "abc123", "mysql pwd=[redacted] host=db"),
    ("DB_PASSWORD = 'correct horse'", "correct horse", "DB_PASSWORD = '[redacted]'"),
    ("client_secret: Zm9vYmFy", "Zm9vYmFy", "client_secret: [redacted]"),
    ("refresh token=tok_12345", "tok_12345", "refresh token=[redacted]"),
    ("api_key=k-998877", "k-998877", "api_key=[redacted]"),
    ("apikey: qwerty99", "qwerty99", "apikey: [redacted]"),
    ("sessionid=abcdef42; path=/", "abcdef42", "sessionid=[redacted]; path=/"),
    (
        '{"password": "p4ss \\"word\\"", "user": "bob"}',
        "p4ss",
        '{"password": "[redacted]", "user": "bob"}',
    ),
    ("{'api_key': 'xyz789'}", "xyz789", "{'api_key': '[redacted]'}"),
    (
        "GET / Authorization: Basic dXNlcjpwYXNz",
        "dXNlcjpwYXNz",
        "GET / Authorization: [redacted]",
    ),
    ("Cookie: sid=31d4d96e407aad42; lang=en", "31d4d96e407aad42", "Cookie: [redacted]"),
    ("curl -H 'x: Bearer abc.DEF-123_xyz'", "abc.DEF-123_xyz", "curl -H 'x: Bearer [redacted]'"),
    ("using key AKIAIOSFODNN7EXAMPLE now", "AKIAIOSFODNN7EXAMPLE", "using key [redacted] now"),
    (f"key:\n{PRIVATE_KEY}\ndone", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUA", "key:\n[redacted]\ndone"),
    (
        "fetch https://alice:pa55w0rd@example.com/repo.git",
        "pa55w0rd",
        "fetch https://alice:[redacted]@example.com/repo.git",
    ),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "dozjgNryP4J3jVmNHl0w5N",
        "jwt [redacted]",
    ),
    (
        "commit token 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "9f86d081884c7d659a2feaa0c55ad015",
        "commit token [redacted]",
    ),
    (
        "sent ghp_R4nd0mT0k3nV4lu3Xy9Zq8Wp7Lk6Jh5Gf4Ds3 upstream",
        "R4nd0mT0k3nV4lu3",
        "sent [redacted] upstream",
    ),
]


@pytest.mark.parametrize(("text", "secret", "expected"), SECRETS)
def test_redact_masks_each_family_of_secret(text: str, secret: str, expected: str | None) -> None:
    masked, count = redact(text)
    assert secret not in masked
    assert count >= 1
    if expected is not None:
        assert masked == expected


ORDINARY = [
    "systemd[1]: Started Session 3 of User root.",
    "systemd[1]: session-3.scope: Deactivated successfully.",
    "sshd[812]: Accepted password for alice from 192.0.2.10 port 52144 ssh2",
    "pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)",
    "gnome-keyring-daemon[1201]: The Secret Service was already initialized",
    "kernel: EXT4-fs (vda): mounted filesystem 7d0b1c3e-5a4f-4f7e-9d55-0c9a1e2b3f40 r/w.",
    "CRON[2231]: (root) CMD (test -x /usr/sbin/anacron || run-parts --report /etc/cron.daily)",
    "NetworkManager[700]: <info> dhcp4 (eth0): state changed new lease, address=192.0.2.15",
    "loaded /usr/lib/x86_64-linux-gnu/security/pam_systemd_home_and_friends.so",
    "xdg_desktop_portal_gnome_settings_backend_ready",
    "Bearer authentication is required for this endpoint",
    "the token bucket refilled; 42 requests waiting",
    "",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == (text, 0)


def test_redact_is_idempotent() -> None:
    once, _ = redact("password=hunter2 token: abc Authorization: Bearer zzz12345")
    assert redact(once) == (once, 0)


@pytest.mark.parametrize(
    "hostile", ["token" * 10_000, "a." * 20_000, "password-" * 5_000, 'secret="' * 5_000]
)
def test_redact_stays_fast_on_hostile_text(hostile: str) -> None:
    started = time.monotonic()
    redact(hostile)
    assert time.monotonic() - started < scaled(0.5)


# Environment values ----------------------------------------------------------------------


def test_environment_secrets_are_masked_even_inside_collected_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUENTE_TEST_SECRET", PLANTED_SECRET)
    document = {"system_log": {"lines": [f"app started with {PLANTED_SECRET} set"]}}
    scrubbed, masked = redaction.scrub_environment_values(document)
    assert scrubbed == {"system_log": {"lines": ["app started with [redacted] set"]}}
    assert masked == 1
