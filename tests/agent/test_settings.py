"""Baked organisation settings and the session code taken from the download's name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.settings import BakedSettings, SettingsError, code_from_filename

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("puente-agent-417862093", "417-862-093"),
        ("/home/ana/Downloads/puente-agent-417-862-093.exe", "417-862-093"),
        ("Puente-Agent_417862093 (1).exe", "417-862-093"),
        ("puente-agent-12345862093", "12345-862-093"),
        ("puente-agent", None),
        ("puente-agent.exe", None),
        ("puente-agent-12", None),
        ("setup-417862093.exe", None),
    ],
)
def test_code_from_the_file_name(name: str, code: str | None) -> None:
    found = code_from_filename(name)
    assert (str(found) if found else None) == code


def test_settings_hold_public_fields_only() -> None:
    parsed = BakedSettings.parse(json.dumps({"relay": "wss://r.example", "org_name": "IT"}))
    assert parsed == BakedSettings(relay="wss://r.example", org_name="IT")
    with pytest.raises(SettingsError, match="unknown fields token"):
        BakedSettings.parse(json.dumps({"relay": "wss://r.example", "token": "pt_x"}))
    with pytest.raises(SettingsError, match="PRIVATE"):
        BakedSettings.parse(json.dumps({"org_public_key": "-----BEGIN PRIVATE KEY-----"}))
    with pytest.raises(SettingsError, match="not valid JSON"):
        BakedSettings.parse("{")


def test_the_agent_uses_the_baked_relay(tmp_path: Path) -> None:
    settings = tmp_path / "puente-settings.json"
    settings.write_text(json.dumps({"relay": "ws://127.0.0.1:9"}))
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "--console", "417-862-093"],
        cwd=ROOT,
        env={"PUENTE_SETTINGS": str(settings), "PUENTE_LANG": "en", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Could not reach the relay at ws://127.0.0.1:9" in result.stderr


def test_the_build_refuses_bad_settings_before_building(tmp_path: Path) -> None:
    cases = [
        (["--relay", "ws://relay.example.org"], "not encrypted"),
        (["--org-key", str(tmp_path / "missing.pem"), "--org-name", "IT"], "cannot read"),
        (["--org-name", "IT"], "go together"),
    ]
    for args, message in cases:
        result = subprocess.run(
            [sys.executable, "installers/build.py", "agent", *args, "--dist", str(tmp_path / "d")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
    assert not (tmp_path / "d").exists()
