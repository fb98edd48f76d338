"""What the enrolled-device tests share: a small real filesystem to fill, a real
Request Tracker, and the relay's and agent's device commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.fixbundle import make_bundle
from tests.support.helpdesk import RequestTracker, rt_missing
from tests.support.relay import RelayProcess, start_relay
from tests.support.timeouts import scaled
from tests.support.trust_fixtures import Organisation, tech_cli

MiB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test, or a skip saying why this machine cannot."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8); run the tests as root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"this machine cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.fixture(scope="module")
def request_tracker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RequestTracker]:
    """A real RT 5 on loopback for the module's tests, or a skip saying what is missing."""
    missing = rt_missing()
    if missing is not None:
        pytest.skip(missing)
    server = RequestTracker(tmp_path_factory.mktemp("rt"))
    try:
        yield server
    finally:
        server.stop()


def relay_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``puente-relay ARGS`` to completion, without the caller's PUENTE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUENTE_")}
    return subprocess.run(
        [sys.executable, "-m", "relay.cli", *args],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        env=env,
    )


def enrolment_token(data_dir: Path, *extra: str) -> str:
    """A new token from ``puente-relay enrolment create`` (its last line)."""
    done = relay_cli("enrolment", "create", "--data-dir", str(data_dir), *extra)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    assert token.startswith("pe_")
    return token


def enrol_argv(relay_url: str, org_public: Path, state: Path, *extra: str) -> list[str]:
    """The command line of ``puente-agent enrol`` for a test."""
    return [
        sys.executable,
        "-m",
        "agent.cli",
        "enrol",
        "--relay",
        relay_url,
        "--org-key",
        str(org_public),
        "--state-dir",
        str(state),
        *extra,
    ]


def agent_command(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``puente-agent ARGS`` to completion, in English, with extra environment ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        env={**os.environ, "PUENTE_LANG": "en", **env},
    )


def relay_with_rt(directory: Path, rt: RequestTracker, *extra: str) -> RelayProcess:
    """A real relay process whose alerts become tickets in ``rt`` (its root account;
    password from the environment)."""
    return start_relay(
        directory,
        "--rt-url",
        rt.url,
        "--rt-user",
        rt.user,
        *extra,
        env={"PUENTE_RT_PASSWORD": rt.password},
    )


def signed_policy(organisation: Organisation, directory: Path, source: str) -> Path:
    """``source`` (policy TOML) signed with ``puente-tech policy sign``; the signed file."""
    toml = directory / "policy.toml"
    toml.write_text(source, encoding="utf-8")
    signed = directory / "acme.policy"
    done = tech_cli(
        "policy", "sign", str(toml), "--org-key", str(organisation.key), "--out", str(signed)
    )
    assert done.returncode == 0, done.stderr
    return signed


#: A test fix that removes one file (its default target), for failure actions.
FREE_SPACE_MANIFEST = """\
id = "free-space"
version = "1.0.0"
title = "Free disk space"
description = "Removes the big file the test made."
platforms = ["linux", "macos"]
interpreter = "sh"
script = "fix.sh"
timeout = 30
needs_admin = false
risk = "low"

[parameters.target]
type = "string"
description = "The file to remove"
default = "{target}"
max_length = 1000
"""
FREE_SPACE_SCRIPT = '#!/bin/sh\nrm -f "$PUENTE_PARAM_TARGET"\necho "removed $PUENTE_PARAM_TARGET"\n'


def free_space_fix(organisation: Organisation, target: Path, out: Path) -> Path:
    """The free-space fix for ``target``, signed by ``organisation`` for a day."""
    now = int(time.time())
    out.write_bytes(
        make_bundle(
            FREE_SPACE_MANIFEST.format(target=target).encode(),
            FREE_SPACE_SCRIPT.encode(),
            signer=organisation.secret(),
            signed_at=now,
            expires_at=now + 86400,
        )
    )
    return out


def enrol_in_foreground(argv: list[str], token: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``puente-agent enrol ... --no-service`` (``argv``) with ``token``, in English,
    and read its output up to the "Online:" line; the process and what it showed."""
    agent = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PUENTE_ENROL_TOKEN": token, "PUENTE_LANG": "en"},
    )
    assert agent.stdout is not None
    shown: list[str] = []
    while not shown or not shown[-1].startswith("Online:"):
        line = agent.stdout.readline()
        if not line:
            agent.kill()
            agent.communicate()
            raise AssertionError("the agent stopped: " + "".join(shown))
        shown.append(line)
    return agent, "".join(shown)


def enrolled_agent(
    relay_url: str, org_public: Path, state: Path, token: str
) -> tuple[subprocess.Popen[str], str]:
    """A real ``puente-agent enrol --no-service --yes`` (in English) until it is online;
    the process and what it said until then (including the "Online:" line)."""
    return enrol_in_foreground(
        enrol_argv(relay_url, org_public, state, "--no-service", "--yes"), token
    )
