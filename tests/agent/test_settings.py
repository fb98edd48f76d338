"""Baked organisation settings and the session code taken from the download's name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.settings import (
    BakedSettings,
    SettingsError,
    code_from_filename,
    code_with_nameplate,
    nameplate_from_filename,
)
from protocol.code import InvalidCodeError

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


@pytest.mark.parametrize(
    ("name", "nameplate"),
    [
        ("puente-agent-417", "417"),  # as the join page serves it
        ("/home/ana/Downloads/puente-agent-417.exe", "417"),
        ("C:\\Users\\ana\\Downloads\\puente-agent-417 (1).exe", "417"),
        ("puente-agent-123456789", None),  # a whole code: nothing to ask
        ("puente-agent-417862093", None),
        ("puente-agent", None),
        ("puente-agent-12", None),
    ],
)
def test_the_nameplate_alone_from_the_file_name(name: str, nameplate: str | None) -> None:
    assert nameplate_from_filename(name.replace("\\", "/")) == nameplate


def test_six_digits_complete_the_nameplate_and_a_whole_code_still_works() -> None:
    assert str(code_with_nameplate("862093", "417")) == "417-862-093"
    assert str(code_with_nameplate(" 862-093 ", "417")) == "417-862-093"
    assert str(code_with_nameplate("417-862-093", "417")) == "417-862-093"
    assert str(code_with_nameplate("555-111-222", "417")) == "555-111-222"
    for wrong in ("86209", "8620931", "abcdef", ""):
        with pytest.raises(InvalidCodeError):
            code_with_nameplate(wrong, "417")
    with pytest.raises(InvalidCodeError):
        code_with_nameplate("862093", None)


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
