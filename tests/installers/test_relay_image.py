"""Issue 7, acceptance 1: the relay's container image builds here from the Containerfile
and, started, answers /healthz and pairs a real agent with a technician.

This machine has no Docker engine and no image registry: installers/relay/build-image.sh
makes the Debian base with debootstrap and builds with buildah. ``podman run`` cannot set
rlimits here, so the image runs with ``buildah run --isolation chroot`` (same root file
system, user, environment and command as the image's configuration says). Slow (a
minute or two, more when the base must be made): marked ``image``; CI runs it once.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.support.customer import ScriptedCustomer, technician
from tests.support.lockfiles import locked_versions
from tests.support.once import once_per_run
from tests.support.services import spare_port
from tests.support.timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/puente-relay"

pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]


def buildah(*args: str, timeout: float = 60) -> str:
    result = subprocess.run(
        ["buildah", *args], capture_output=True, text=True, timeout=scaled(timeout)
    )
    assert result.returncode == 0, f"buildah {' '.join(args)}: {result.stderr}"
    return result.stdout


def needs_root_and_buildah() -> None:
    if shutil.which("buildah") is None or shutil.which("debootstrap") is None:
        pytest.skip("buildah or debootstrap is not installed (apt install buildah debootstrap)")
    if os.geteuid() != 0:
        pytest.skip("building the image needs root (debootstrap, buildah chroot isolation)")


def build_image() -> str:
    needs_root_and_buildah()
    build = subprocess.run(
        # At a lower priority, so that the tests running meanwhile keep their timing.
        ["nice", "-n", "10", str(ROOT / "installers" / "relay" / "build-image.sh")],
        env={**os.environ, "PYTHON": sys.executable, "IMAGE": IMAGE},
        capture_output=True,
        text=True,
        timeout=scaled(600),
    )
    assert build.returncode == 0, build.stderr
    return IMAGE


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image, built once per run: every worker of ``pytest -n`` shares the build."""
    return once_per_run(tmp_path_factory, "relay-image", build_image)


def test_image_configuration(image: str) -> None:
    config = json.loads(buildah("inspect", "--type", "image", image))["Docker"]["config"]
    assert config["User"] == "puente"
    assert config["Entrypoint"] == ["puente-relay"] and config["Cmd"] == ["serve"]
    assert config["StopSignal"] == "SIGTERM"
    assert config["Healthcheck"]["Test"] == ["CMD", "puente-relay", "health"]
    assert "/var/lib/puente" in config["Volumes"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PUENTE_DATA_DIR"] == "/var/lib/puente" and env["PUENTE_HOST"] == "0.0.0.0"


def serve_in(container: str) -> tuple[subprocess.Popen[str], int, list[str]]:
    """The image's relay serving on a spare port: the process, the port, ``buildah run``.

    A port free a moment ago may be taken by the time the container starts (other tests
    and programs on this machine bind ports too): then the relay says so and ends, and
    another port is tried.
    """
    for _ in range(3):
        port = spare_port()
        run = ["run", "--isolation", "chroot", "--env", f"PUENTE_PORT={port}", container, "--"]
        relay = subprocess.Popen(
            ["buildah", *run, "puente-relay", "serve"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert relay.stdout is not None and relay.stderr is not None
        first = relay.stdout.readline()
        if first:
            assert re.search(r"listening on http://0\.0\.0\.0:\d+", first)
            return relay, port, run
        log = relay.stderr.read()
        status = relay.wait(10)
        if "already in use" not in log:
            pytest.fail(f"the relay in the image ended at start (status {status}): {log[-3000:]}")
    pytest.fail("three spare ports were taken before the relay in the image could listen")


def test_the_image_answers_healthz_and_pairs_an_agent_with_a_technician(
    image: str, tmp_path: Path
) -> None:
    container = buildah("from", "--name", f"puente-test-{secrets.token_hex(4)}", image).strip()
    relay, port, run = serve_in(container)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as reply:
            assert json.loads(reply.read()) == {"status": "ok"}
        # The image's own healthcheck command, inside the container.
        assert "healthy" in buildah(*run, "puente-relay", "health")
        # The cluster and PostgreSQL modules find their libraries (requirements.txt).
        buildah(*run, "python3", "-c", "import relay.cluster, relay.postgres, redis.asyncio")
        # It runs as the unprivileged user, and the store is in the data volume.
        [server] = [
            p
            for p in psutil.Process(relay.pid).children(recursive=True)
            if p.cmdline()[-1:] == ["serve"] and "python" in p.cmdline()[0]
        ]
        assert server.uids().real == 10001
        token = buildah(*run, "puente-relay", "technician", "add", "Ana Technician")
        token = token.strip().splitlines()[-1]

        out = tmp_path / "diag.json"
        relay_url = f"ws://127.0.0.1:{port}"
        tech = technician(relay_url, token, "diagnostics", "--ticket", "HD-1", "--out", str(out))
        code = tech.expect(r"^code: (\d{3,9}-\d{3}-\d{3})$").group(1)
        customer = ScriptedCustomer(
            relay_url, code, tmp_path / "logs", answers={"Diagnostics": "y"}
        )
        assert tech.wait(60) == 0, tech.output + tech.stderr
        assert customer.wait(30) == 0, customer.output + customer.stderr
        assert "Technician: Ana Technician" in customer.output
        assert json.loads(out.read_text())["hostname"]
        assert "relay.sqlite3" in buildah(*run, "ls", "/var/lib/puente")

        # SIGTERM (the image's STOPSIGNAL) stops the relay cleanly.
        server.send_signal(signal.SIGTERM)
        _, log = relay.communicate(timeout=scaled(30))
        assert "session paired" in log and "relay stopped" in log
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.communicate()
        buildah("rm", container)


def test_the_image_has_the_locked_versions(image: str) -> None:
    """The image installs installers/relay/requirements.txt, the lock: same versions any day."""
    container = buildah("from", "--name", f"puente-test-{secrets.token_hex(4)}", image).strip()
    try:
        names = ["websockets", "cryptography", "jsonschema", "redis", "psycopg"]
        script = "import importlib.metadata as m, sys; print(*(m.version(n) for n in sys.argv[1:]))"
        found = buildah(
            "run", "--isolation", "chroot", container, "--", "python3", "-c", script, *names
        )
        locked = locked_versions(ROOT / "installers" / "relay" / "requirements.txt")
        assert dict(zip(names, found.split(), strict=True)) == {n: locked[n] for n in names}
    finally:
        buildah("rm", container)


FAKE_DEBOOTSTRAP = """#!/bin/sh
# Stands in for debootstrap and fails midway the way a real one can: after it has made
# the root file system and mounted /proc and /sys inside it (its second stage does).
for target; do :; done
mkdir -p "$target/proc" "$target/sys" "$target/usr/bin"
echo partial > "$target/usr/bin/half-installed"
mount -t proc proc "$target/proc" || exit 3
mount -t sysfs sysfs "$target/sys" || exit 3
echo "E: Tried to extract package, but file already exists" >&2
exit 1
"""


def test_a_build_that_fails_midway_leaves_nothing_mounted_or_behind(tmp_path: Path) -> None:
    needs_root_and_buildah()
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "debootstrap").write_text(FAKE_DEBOOTSTRAP)
    (fake_bin / "debootstrap").chmod(0o755)
    work = tmp_path / "work"
    build = subprocess.run(
        [str(ROOT / "installers" / "relay" / "build-image.sh")],
        env={
            **os.environ,
            "PATH": f"{fake_bin}:{os.environ['PATH']}",
            "PYTHON": sys.executable,
            "WORK_DIR": str(work),
            "REBUILD_BASE": "1",
            "BASE_IMAGE": f"localhost/puente-test-base-{secrets.token_hex(4)}",
            "IMAGE": f"localhost/puente-test-{secrets.token_hex(4)}",
        },
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert build.returncode != 0
    assert "debootstrap failed" in build.stderr and "debootstrap.log" in build.stderr
    assert "what it had mounted and made is removed" in build.stderr
    mounts = Path("/proc/self/mounts").read_text()
    assert str(work) not in mounts, mounts
    # The root file system is gone; only the log (named in the message) and the lock stay.
    assert sorted(p.name for p in work.iterdir()) == [".lock", "debootstrap.log"]
    assert "file already exists" in (work / "debootstrap.log").read_text()


def test_a_build_killed_outright_is_cleaned_up_by_the_next(tmp_path: Path) -> None:
    """SIGKILL gives the script no chance to clean up: the next build does it first."""
    needs_root_and_buildah()
    work = tmp_path / "work"
    (work / "rootfs" / "proc").mkdir(parents=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(work / "rootfs" / "proc")], check=True)
    try:
        fake_bin = tmp_path / "bin"
        fake_bin.mkdir()
        (fake_bin / "debootstrap").write_text("#!/bin/sh\nexit 1\n")
        (fake_bin / "debootstrap").chmod(0o755)
        build = subprocess.run(
            [str(ROOT / "installers" / "relay" / "build-image.sh")],
            env={
                **os.environ,
                "PATH": f"{fake_bin}:{os.environ['PATH']}",
                "PYTHON": sys.executable,
                "WORK_DIR": str(work),
                "REBUILD_BASE": "1",
                "BASE_IMAGE": f"localhost/puente-test-base-{secrets.token_hex(4)}",
            },
            capture_output=True,
            text=True,
            timeout=scaled(120),
        )
        assert build.returncode != 0
        assert str(work) not in Path("/proc/self/mounts").read_text()
        assert not (work / "rootfs").exists()
    finally:
        subprocess.run(["umount", str(work / "rootfs" / "proc")], capture_output=True)
