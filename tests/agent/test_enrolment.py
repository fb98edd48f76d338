"""Enrolling, against a relay stand-in at the HTTP level (a real server on loopback
whose clock and answers the test chooses): a clock far off is refused before anything
is spent or kept; the policy reads in plain words in both languages."""

from __future__ import annotations

import email.utils
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import i18n
from agent.enrolment import KEY_FILE, STATE_FILE, enrol, policy_words
from agent.errors import EnrolmentFailed
from protocol.device_policy import policy_from_toml
from protocol.identity import private_key_pem, public_key_pem
from tests.support.device_fixtures import agent_command

ROOT = Path(__file__).resolve().parents[2]


class RelayStandIn:
    """Answers the policy question with no policy, its Date ``skew`` seconds off."""

    def __init__(self) -> None:
        owner = self
        self.skew = 0.0
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
                owner.requests.append(f"GET {self.path}")
                body = json.dumps({"policy": None}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                owner.requests.append(f"POST {self.path}")
                self.send_response(500)
                self.end_headers()

            def date_time_string(self, timestamp: float | None = None) -> str:
                return email.utils.formatdate(time.time() + owner.skew, usegmt=True)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"ws://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in() -> Iterator[RelayStandIn]:
    server = RelayStandIn()
    yield server
    server.close()


@pytest.fixture
def org_pub(tmp_path: Path) -> Path:
    path = tmp_path / "org.pub"
    path.write_bytes(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    return path


@pytest.mark.parametrize(
    ("skew", "words"), [(3600.0, "60 minutes behind"), (-900.0, "15 minutes ahead")]
)
def test_a_clock_far_off_is_refused_before_anything_happens(
    stand_in: RelayStandIn, org_pub: Path, tmp_path: Path, skew: float, words: str
) -> None:
    stand_in.skew = skew
    asked: list[str] = []
    with pytest.raises(EnrolmentFailed, match=words) as refused:
        enrol(
            stand_in.url,
            org_pub,
            "pe_x_y",
            tmp_path / "state",
            service=False,
            answer=lambda question: asked.append(question) or "yes",
            say=lambda line: None,
        )
    assert "turn on automatic date and time" in str(refused.value)
    assert asked == [] and stand_in.requests == ["GET /v1/enrol/policy"]
    assert not (tmp_path / "state").exists()


def test_a_no_keeps_nothing_and_spends_nothing(
    stand_in: RelayStandIn, org_pub: Path, tmp_path: Path
) -> None:
    shown: list[str] = []
    with pytest.raises(EnrolmentFailed, match="not enrolled"):
        enrol(
            stand_in.url,
            org_pub,
            "pe_x_y",
            tmp_path / "state",
            service=False,
            answer=lambda question: "no",
            say=shown.append,
        )
    assert any("no answer within 60 seconds means no" in line for line in shown)
    assert stand_in.requests == ["GET /v1/enrol/policy"]  # no POST: nothing spent
    assert not (tmp_path / "state").exists()


def test_the_policy_in_plain_words_in_both_languages() -> None:
    source = (ROOT / "docs" / "examples" / "device-policy.toml").read_text(encoding="utf-8")
    policy = policy_from_toml(source, "Acme IT", "0" * 64)
    try:
        i18n.set_language("es")
        spanish = policy_words(policy, "Acme IT")
        i18n.set_language("en")
        english = policy_words(policy, "Acme IT")
    finally:
        i18n.set_language(i18n.detect_language())
    assert english[0].startswith("Your help desk, Acme IT, asks to look after this computer")
    assert spanish[0].startswith("Su servicio de asistencia, Acme IT, pide cuidar de este equipo")
    assert "espacio en disco" in " ".join(spanish) and "disk space" in " ".join(english)
    assert any("sun 02:00 +120 min" in line for line in english)


def test_unenrol_without_the_relay_still_removes_everything_and_says_so(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / KEY_FILE).write_bytes(private_key_pem(Ed25519PrivateKey.generate()))
    org = public_key_pem(Ed25519PrivateKey.generate().public_key()).decode()
    record = {
        "relay": f"ws://127.0.0.1:{port}",
        "device_id": "ab" * 16,
        "organisation_key": org,
        "policy": None,
    }
    (state / STATE_FILE).write_text(json.dumps(record), encoding="utf-8")
    done = agent_command("unenrol", "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    assert "The relay could not be told" in done.stdout and "abab" in done.stdout
    assert not state.exists()
    again = agent_command("unenrol", "--state-dir", str(state))
    assert again.returncode == 0 and "nothing was removed" in again.stdout


def test_the_owner_reads_whether_fixes_run_by_themselves_in_both_languages() -> None:
    source = (ROOT / "docs" / "examples" / "device-policy.toml").read_text(encoding="utf-8")
    allowed = source.replace("failure_actions = false", "failure_actions = true")
    try:
        i18n.set_language("es")
        spanish = " ".join(policy_words(policy_from_toml(allowed, "Acme IT", "0" * 64), "Acme IT"))
        i18n.set_language("en")
        english = " ".join(policy_words(policy_from_toml(allowed, "Acme IT", "0" * 64), "Acme IT"))
        off = " ".join(policy_words(policy_from_toml(source, "Acme IT", "0" * 64), "Acme IT"))
    finally:
        i18n.set_language(i18n.detect_language())
    assert (
        "runs by itself, without asking, the fix your help desk signed for it (disk-cleanup"
        in english
    )
    assert "ejecuta por sí mismo, sin preguntar" in spanish
    assert "does not let fixes run by themselves" in off
