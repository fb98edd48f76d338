"""Real servers from Debian for tests: Redis, PostgreSQL, and self-signed certificates.

Each server runs as a child process on a spare loopback port with its data in a
temporary directory, and is stopped by the fixture that started it. A test that
needs one is skipped, with the package to install, only when the program is missing.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.timeouts import scaled


def spare_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(scaled(15))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------


@dataclass
class RedisServer:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh ``redis-server`` (no persistence) on a spare port."""
    program = shutil.which("redis-server")
    if program is None:
        pytest.skip("redis-server is not installed (apt install redis-server)")
    port = spare_port()
    proc = subprocess.Popen(
        [
            program,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield RedisServer(proc, port)
    finally:
        stop_process(proc)


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------


def _postgres_bin(name: str) -> str | None:
    """Debian's versioned directory first, then PATH."""
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    return shutil.which(name)


@dataclass
class PostgresServer:
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://puente@127.0.0.1:{self.port}/{database}"

    def new_database(self, name: str) -> str:
        """Create an empty database; return its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')  # type: ignore[arg-type]
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)


def postgres_missing() -> str | None:
    """Why PostgreSQL cannot run here, or None if it can."""
    if _postgres_bin("initdb") is None or _postgres_bin("postgres") is None:
        return "PostgreSQL is not installed (apt install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a 'postgres' user to run PostgreSQL as"
    return None


@contextlib.contextmanager
def running_postgres(durable: bool = False) -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster (initdb) on a spare port, stopped and removed when
    the block ends (see :func:`postgres_missing` first). ``durable``: with fsync, as in
    production (tests run without: they never pull the plug).

    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user
    that Debian's package creates.
    """
    initdb, postgres = _postgres_bin("initdb"), _postgres_bin("postgres")
    assert initdb is not None and postgres is not None, postgres_missing()
    user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="puente-pg-"))
    data_dir, socket_dir = base / "data", base / "socket"
    socket_dir.mkdir()
    if user is not None:
        for path in (base, socket_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
    uid, gid = (user.pw_uid, user.pw_gid) if user else (None, None)
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    subprocess.run(
        [initdb, "-D", str(data_dir), "-U", "puente", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        env=env,
        timeout=scaled(60),
        user=uid,
        group=gid,
    )
    port = spare_port()
    proc = subprocess.Popen(
        [
            postgres,
            "-D",
            str(data_dir),
            "-p",
            str(port),
            "-k",
            str(socket_dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"fsync={'on' if durable else 'off'}",
            "-c",
            "max_connections=200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        user=uid,
        group=gid,
    )
    try:
        wait_for_port(port, 30)
        _wait_ready(f"postgresql://puente@127.0.0.1:{port}/postgres")
        yield PostgresServer(proc, port, data_dir)
    finally:
        if proc.poll() is None:
            proc.send_signal(2)  # SIGINT: fast shutdown
            try:
                proc.wait(scaled(30))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL for the test session (:func:`running_postgres`), or a skip
    saying what is missing."""
    missing = postgres_missing()
    if missing is not None:
        pytest.skip(missing)
    with running_postgres() as server:
        yield server


def _wait_ready(url: str) -> None:
    import psycopg

    deadline = time.monotonic() + scaled(30)
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# ---------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------


@dataclass
class CertificatePair:
    cert: Path
    key: Path


def self_signed_certificate(directory: Path, name: str = "relay") -> CertificatePair:
    """A self-signed certificate for 127.0.0.1 and localhost (its own CA), and its key."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"puente test {name}")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = CertificatePair(directory / f"{name}.crt", directory / f"{name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pair
