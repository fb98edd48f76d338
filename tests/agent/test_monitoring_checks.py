"""Each check kind on real things: files, certificates, processes, a real HTTP time
source on loopback with its own clock, this machine's memory. Sentences exist in
English and Spanish; details stay out of the relay's summary."""

from __future__ import annotations

import datetime as dt
import email.utils
import http.server
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.i18n import Translator
from agent.monitoring.checks import ERROR, FAILING, OK, run_check
from agent.monitoring.runner import run_policy
from protocol import sealed_details
from protocol.device_policy import DevicePolicy, policy_from_toml


def one_check(source: str) -> DevicePolicy:
    return policy_from_toml(source, "Acme IT", "0" * 64)


def check_of(source: str) -> Any:
    return one_check(source).checks[0]


# -- log pattern, backup age, certificates: real files -------------------------------


def test_log_pattern_counts_matching_lines(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.write_text("boot ok\nsda: I/O error, dev sda, sector 42\nall fine\n", encoding="utf-8")
    source = f'[[checks]]\nid = "io"\nkind = "log_pattern"\npath = "{log}"\npattern = "I/O error"\n'
    result = run_check(check_of(source))
    assert result.status == FAILING
    assert result.details["lines"] == ["sda: I/O error, dev sda, sector 42"]
    assert "1 lines matching" in result.text()
    assert result.summary() == {
        "check": "io",
        "kind": "log_pattern",
        "status": "failing",
        "severity": "warning",
    }
    log.write_text("boot ok\n", encoding="utf-8")
    assert run_check(check_of(source)).status == OK


def test_a_missing_log_is_an_error_with_what_to_do(tmp_path: Path) -> None:
    source = (
        f'[[checks]]\nid = "io"\nkind = "log_pattern"\npath = "{tmp_path / "none"}"\n'
        'pattern = "x"\n'
    )
    result = run_check(check_of(source))
    assert result.status == ERROR and result.failing
    assert "could not run" in result.text() and "No such file" in result.text()


def test_backup_age_follows_the_newest_file(tmp_path: Path) -> None:
    old, new = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    for path in (old, new):
        path.write_bytes(b"backup")
    now = time.time()
    os.utime(old, (now - 90 * 3600, now - 90 * 3600))
    os.utime(new, (now - 30 * 3600, now - 30 * 3600))
    source = (
        f'[[checks]]\nid = "b"\nkind = "backup_age"\npath = "{tmp_path}/*.tar.gz"\nmax_hours = 26\n'
    )
    result = run_check(check_of(source))
    assert result.status == FAILING and result.details["path"] == str(new)
    assert "30 hours old, older than 26 hours" in result.text()
    os.utime(new, (now - 3600, now - 3600))
    assert run_check(check_of(source)).status == OK
    new.unlink()
    old.unlink()
    assert run_check(check_of(source)).message == "check.backup.none"


def certificate(path: Path, days: int) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example.org")])
    now = dt.datetime.now(dt.UTC)
    made = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now + dt.timedelta(days=days, hours=1))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(made.public_bytes(serialization.Encoding.PEM))
    return path


def test_certificates_near_expiry_fail(tmp_path: Path) -> None:
    certificate(tmp_path / "long.pem", 200)
    soon = certificate(tmp_path / "soon.pem", 5)
    source = (
        f'[[checks]]\nid = "c"\nkind = "certificate_expiry"\npaths = ["{tmp_path}/*.pem"]\n'
        "min_days = 14\n"
    )
    result = run_check(check_of(source))
    assert result.status == FAILING
    assert result.values["path"] == str(soon) and result.values["days"] == "5"
    soon.unlink()
    result = run_check(check_of(source))
    assert result.status == OK and "All 1 certificates" in result.text()
    (tmp_path / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nnope\n", encoding="utf-8")
    assert run_check(check_of(source)).status == ERROR


# -- processes, memory, services, restart --------------------------------------------


def test_process_running_finds_this_process() -> None:
    name = psutil.Process().name()
    found = run_check(
        check_of(f'[[checks]]\nid = "p"\nkind = "process_running"\nname = "{name}"\n')
    )
    assert found.status == OK and os.getpid() in found.details["pids"]
    missing = check_of('[[checks]]\nid = "p"\nkind = "process_running"\nname = "no-such-prog"\n')
    result = run_check(missing)
    assert result.status == FAILING and "is not running" in result.text()


def test_memory_pressure_against_its_limits() -> None:
    relaxed = check_of('[[checks]]\nid = "m"\nkind = "memory_pressure"\nmax_used_percent = 100\n')
    assert run_check(relaxed).status == OK
    strict = check_of('[[checks]]\nid = "m"\nkind = "memory_pressure"\nmax_used_percent = 0\n')
    result = run_check(strict)
    assert result.status == FAILING and result.measurement is not None


def test_service_and_restart_checks_answer_on_this_machine() -> None:
    service = run_check(check_of('[[checks]]\nid = "s"\nkind = "service_running"\nname = "ssh"\n'))
    if sys.platform.startswith("linux") and not Path("/run/systemd/system").is_dir():
        assert service.status == ERROR and "no systemd" in service.text()
    else:
        assert service.status in (OK, FAILING)
    reboot = run_check(check_of('[[checks]]\nid = "r"\nkind = "pending_reboot"\n'))
    expected = Path("/var/run/reboot-required").exists()
    if reboot.status != ERROR:
        assert (reboot.status == FAILING) == expected


# -- clock drift against a real HTTP server with its own clock ------------------------


class DateServer:
    """A loopback HTTP server whose Date header runs ``skew`` seconds off."""

    def __init__(self, skew: float) -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 - the http.server hook's name
                self.send_response(200)
                self.end_headers()

            def date_time_string(self, timestamp: float | None = None) -> str:
                return email.utils.formatdate(time.time() + owner.skew, usegmt=True)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.skew = skew
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/healthz"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def date_server() -> Iterator[DateServer]:
    server = DateServer(0)
    yield server
    server.close()


def test_clock_drift_against_the_servers_date(date_server: DateServer) -> None:
    source = (
        f'[[checks]]\nid = "clock"\nkind = "clock_drift"\nsource = "{date_server.url}"\n'
        "max_seconds = 30\n"
    )
    assert run_check(check_of(source)).status == OK
    date_server.skew = 300.0  # the time source is five minutes ahead of this machine
    result = run_check(check_of(source))
    assert result.status == FAILING
    assert 298 <= abs(result.details["offset_seconds"]) <= 302
    assert "off by 300 seconds" in result.text() or "off by 299 seconds" in result.text()


def test_an_unreachable_time_source_is_an_error(date_server: DateServer) -> None:
    url = date_server.url
    date_server.close()
    result = run_check(check_of(f'[[checks]]\nid = "c"\nkind = "clock_drift"\nsource = "{url}"\n'))
    assert result.status == ERROR and "did not answer" in result.text()


# -- the report: sentences in both languages, details kept apart ----------------------


def test_the_report_keeps_details_from_the_relay(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("ERROR secret-customer-data\n", encoding="utf-8")
    source = f'[[checks]]\nid = "e"\nkind = "log_pattern"\npath = "{log}"\npattern = "ERROR"\n'
    report = run_policy(one_check(source), history=None)
    relay_sees = str(report.relay_summary())
    assert "secret-customer-data" not in relay_sees and str(log) not in relay_sees
    assert "secret-customer-data" in str(report.as_dict())
    spanish = report.as_dict(Translator("es"))["results"][0]["text"]
    assert "líneas que coinciden" in spanish


def test_details_travel_only_sealed_to_the_organisations_details_key(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("ERROR disk full of secret-customer-data\n", encoding="utf-8")
    key = sealed_details.new_details_key()
    check = f'[[checks]]\nid = "e"\nkind = "log_pattern"\npath = "{log}"\npattern = "ERROR"\n'
    source = f'details_key = "{sealed_details.public_text(key)}"\n' + check
    device = "ab" * 16
    summary = run_policy(one_check(source), history=None).relay_summary(device)
    result = summary["results"][0]
    assert set(result) == {"check", "kind", "status", "severity", "sealed"}
    assert "secret-customer-data" not in str(summary)
    details = sealed_details.open_sealed(result["sealed"], key, device, "e", summary["at"])
    assert details["lines"] == ["ERROR disk full of secret-customer-data"]
    # Without a details key nothing of the details leaves the device.
    bare = run_policy(one_check(check), history=None).relay_summary(device)
    assert set(bare["results"][0]) == {"check", "kind", "status", "severity"}
