"""Issue 7, acceptance 3: a full session over wss:// with a self-signed certificate.

Real relay, agent and technician processes. Clients told to trust the certificate
(--ca-file) complete a session; clients that were not told fail with a sentence
that says what to do, before anything reaches the relay.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509

from tests.support.customer import Process, ScriptedCustomer, technician
from tests.support.relay import RelayProcess, start_relay
from tests.support.services import CertificatePair, self_signed_certificate
from tests.support.timeouts import scaled

CODE_LINE = r"^code: (\d{3,9}-\d{3}-\d{3})$"
UNTRUSTED = "presented a certificate this computer does not trust"


def tls_relay(tmp_path: Path, pair: CertificatePair) -> RelayProcess:
    return start_relay(
        tmp_path / "relay-data", "--tls-cert", str(pair.cert), "--tls-key", str(pair.key)
    )


def wss(relay: RelayProcess) -> str:
    return f"wss://127.0.0.1:{relay.port}"


def served_certificate(port: int) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=scaled(5)) as sock:
        with context.wrap_socket(sock) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_full_session_over_wss_with_a_trusted_self_signed_certificate(tmp_path: Path) -> None:
    pair = self_signed_certificate(tmp_path / "tls")
    relay = tls_relay(tmp_path, pair)
    try:
        token = relay.add_technician("Ana Technician")
        out = tmp_path / "diag.json"
        tech = technician(
            wss(relay),
            token,
            "--ca-file",
            str(pair.cert),
            "--json",
            "diagnostics",
            "--ticket",
            "HD-7",
            "--out",
            str(out),
        )
        code = json.loads(tech.expect(r'"event": "code"').string)["code"]
        customer = ScriptedCustomer(
            wss(relay),
            code,
            tmp_path / "logs",
            answers={"Diagnostics": "y"},
            extra=["--ca-file", str(pair.cert)],
        )
        assert tech.wait(60) == 0, tech.output + tech.stderr
        assert customer.wait(30) == 0, customer.output + customer.stderr
        assert json.loads(out.read_text())["hostname"]
        assert "Check code:" in customer.output
    finally:
        log = relay.stop()
    assert "session paired" in log
    assert "session finished" in log and "the technician ended the session" in log


def test_clients_not_told_to_trust_the_certificate_fail_clearly(tmp_path: Path) -> None:
    pair = self_signed_certificate(tmp_path / "tls")
    other = self_signed_certificate(tmp_path / "other", name="other")
    relay = tls_relay(tmp_path, pair)
    try:
        token = relay.add_technician()
        # The technician's REST call: no --ca-file, then a CA that did not sign it.
        for extra in ([], ["--ca-file", str(other.cert)]):
            tech = technician(
                wss(relay),
                token,
                *extra,
                "diagnostics",
                "--ticket",
                "T",
                "--out",
                str(tmp_path / "x.json"),
            )
            assert tech.wait(30) == 1
            assert UNTRUSTED in tech.stderr and "--ca-file" in tech.stderr, tech.stderr
            assert "Traceback" not in tech.stderr
        # The agent's WebSocket: refused before it could claim anything.
        customer = ScriptedCustomer(wss(relay), "123-456-789", tmp_path / "logs")
        assert customer.wait(30) == 1
        assert UNTRUSTED in customer.stderr and "--ca-file" in customer.stderr
        assert "Traceback" not in customer.stderr
        # A --ca-file that is not a certificate is a sentence too.
        customer = ScriptedCustomer(
            wss(relay), "123-456-789", tmp_path / "logs", extra=["--ca-file", str(tmp_path)]
        )
        assert customer.wait(30) == 1
        assert "as the relay's CA certificate" in customer.stderr, customer.stderr
    finally:
        log = relay.stop()
    assert "claim" not in log  # nothing got as far as a claim


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay.cli", *args],
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )


def test_unusable_tls_settings_are_one_sentence(tmp_path: Path) -> None:
    pair = self_signed_certificate(tmp_path / "a", name="a")
    other = self_signed_certificate(tmp_path / "b", name="b")
    data = str(tmp_path / "data")
    cases = {
        "does not belong to the certificate": [
            "--tls-cert",
            str(pair.cert),
            "--tls-key",
            str(other.key),
        ],
        "does not exist": ["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(pair.key)],
        "needs both a certificate and its key": ["--tls-cert", str(pair.cert)],
    }
    for expected, flags in cases.items():
        result = cli("serve", "--data-dir", data, "--port", "0", *flags)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr and "Traceback" not in result.stderr


def test_sighup_reloads_the_certificate(tmp_path: Path) -> None:
    first = self_signed_certificate(tmp_path / "tls", name="relay")
    relay = tls_relay(tmp_path, first)
    try:
        before = served_certificate(relay.port)
        second = self_signed_certificate(tmp_path / "tls", name="relay")  # same paths
        relay.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + scaled(10)
        while served_certificate(relay.port) == before:
            assert time.monotonic() < deadline, "the new certificate was not served"
            time.sleep(0.05)
        assert served_certificate(relay.port).serial_number != before.serial_number
        # A broken file on the next SIGHUP keeps the working pair.
        second.key.write_text("not a key")
        current = served_certificate(relay.port)
        relay.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert served_certificate(relay.port) == current
        assert relay.proc.poll() is None
    finally:
        log = relay.stop()
    assert "TLS certificate reloaded" in log
    assert "TLS certificate not reloaded, the old one stays" in log


def test_health_command_checks_a_tls_relay(tmp_path: Path) -> None:
    pair = self_signed_certificate(tmp_path / "tls")
    relay = tls_relay(tmp_path, pair)
    try:
        env = {**os.environ, "PUENTE_TLS_CERT": str(pair.cert), "PUENTE_PORT": str(relay.port)}
        ok = subprocess.run(
            [sys.executable, "-m", "relay.cli", "health"],
            capture_output=True,
            text=True,
            env=env,
            timeout=scaled(30),
        )
        assert ok.returncode == 0 and "healthy" in ok.stdout, ok.stderr
        plain = Process(
            [sys.executable, "-m", "relay.cli", "health", "--no-tls", "--port", str(relay.port)]
        )
        assert plain.wait(30) == 1
        assert "is not healthy" in plain.stderr
    finally:
        relay.stop()
