"""``puente-agent checks run --once`` on a real filesystem filled by the test (a 2 MiB
tmpfs mounted here as root), with a policy signed by the real ``puente-tech policy
sign``; and the policies an agent refuses, each with a sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from protocol.device_policy import POLICY_LABEL, default_policy
from protocol.identity import sign_document
from tests.support.timeouts import scaled
from tests.support.trust_fixtures import Organisation, make_organisation, tech_cli

MiB = 1024 * 1024


def agent_checks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "checks", "run", "--once", *args],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        env={**os.environ, "PUENTE_LANG": "en"},
    )


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Organisation:
    return make_organisation(tmp_path_factory.mktemp("acme") / "org", "Acme IT")


def signed_policy(organisation: Organisation, source: str, out: Path) -> Path:
    toml = out.with_suffix(".toml")
    toml.write_text(source, encoding="utf-8")
    done = tech_cli(
        "policy", "sign", str(toml), "--org-key", str(organisation.key), "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert f"signed: {out}" in done.stdout
    return out


def run_json(policy: Path, organisation: Organisation, state: Path) -> tuple[int, dict[str, Any]]:
    done = agent_checks(
        "--json",
        "--policy",
        str(policy),
        "--org-key",
        str(organisation.public),
        "--state-dir",
        str(state),
    )
    assert done.stderr == "", done.stderr
    return done.returncode, json.loads(done.stdout)


def test_the_disk_check_fails_when_full_and_passes_when_freed(
    small_disk: Path, acme: Organisation, tmp_path: Path
) -> None:
    source = (
        "[[checks]]\n"
        'id = "small-disk"\n'
        'kind = "disk_free"\n'
        f'path = "{small_disk}"\n'
        "min_free_percent = 40\n"
        'severity = "critical"\n'
    )
    policy = signed_policy(acme, source, tmp_path / "acme.policy")
    state = tmp_path / "state"

    status, report = run_json(policy, acme, state)
    assert status == 0
    (disk,) = report["results"]
    assert disk["status"] == "ok" and disk["details"]["total_bytes"] == 2 * MiB
    assert report["organisation"] == "Acme IT"

    filler = small_disk / "big.bin"
    filler.write_bytes(b"\0" * (MiB + MiB // 2))  # 1.5 of 2 MiB: 25 % free
    status, report = run_json(policy, acme, state)
    assert status == 3
    (disk,) = report["results"]
    assert disk["status"] == "failing" and disk["severity"] == "critical"
    assert "nearly full" in disk["text"] and "at least 40%" in disk["text"]
    # The relay's view names the check and its severity, not the path or the numbers.
    assert report["relay_sees"]["results"] == [
        {"check": "small-disk", "kind": "disk_free", "status": "failing", "severity": "critical"}
    ]

    done = agent_checks(
        "--lang",
        "es",
        "--policy",
        str(policy),
        "--org-key",
        str(acme.public),
        "--state-dir",
        str(state),
    )
    assert done.returncode == 3
    assert "FALLA" in done.stdout and "casi lleno" in done.stdout
    assert "Directiva número 1 de Acme IT" in done.stdout

    filler.unlink()
    status, report = run_json(policy, acme, state)
    assert status == 0 and report["results"][0]["status"] == "ok"
    assert (state / "measurements.sqlite3").stat().st_mode & 0o077 == 0


def test_without_a_policy_the_standard_checks_run(tmp_path: Path) -> None:
    done = agent_checks("--state-dir", str(tmp_path / "state"))
    assert done.returncode in (0, 3), done.stderr
    assert "No policy given: the standard checks" in done.stdout
    assert "disk-system" in done.stdout and "memory" in done.stdout


def test_another_organisations_policy_is_refused(acme: Organisation, tmp_path: Path) -> None:
    other = make_organisation(tmp_path / "other", "Other Org")
    policy = signed_policy(
        other, '[[checks]]\nid = "m"\nkind = "memory_pressure"\n', tmp_path / "o.policy"
    )
    done = agent_checks("--policy", str(policy), "--org-key", str(acme.public))
    assert done.returncode == 1 and done.stdout == ""
    assert "was refused and nothing was checked" in done.stderr
    assert "another organisation's key" in done.stderr


def test_a_signed_policy_with_an_unknown_check_is_refused(
    acme: Organisation, tmp_path: Path
) -> None:
    secret = acme.secret()
    body = default_policy().body() | {"organisation": secret.organisation}
    body["organisation_key"] = secret.key_id
    body["checks"].append({"id": "gpu", "kind": "gpu_temperature", "every_minutes": 5})
    policy = tmp_path / "future.policy"
    policy.write_bytes(sign_document("policy", POLICY_LABEL, body, secret.private_key))
    done = agent_checks("--policy", str(policy), "--org-key", str(acme.public))
    assert done.returncode == 1 and done.stdout == ""
    assert "'gpu_temperature', which this agent does not know" in done.stderr


def test_a_policy_needs_the_organisation_key(tmp_path: Path) -> None:
    policy = tmp_path / "any.policy"
    policy.write_text("{}", encoding="utf-8")
    env_free = {k: v for k, v in os.environ.items() if k != "PUENTE_ORG_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "checks", "run", "--once", "--policy", str(policy)],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        env={**env_free, "PUENTE_LANG": "en"},
    )
    assert done.returncode == 1
    assert "needs the organisation's public key" in done.stderr
