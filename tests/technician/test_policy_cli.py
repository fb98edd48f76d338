"""``puente-tech policy sign|show``: a bad policy file gets a sentence and nothing is
signed; a signed one reads back in plain words."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.trust_fixtures import make_organisation, tech_cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "device-policy.toml"


def test_sign_and_show_the_example_policy(tmp_path: Path) -> None:
    acme = make_organisation(tmp_path / "org", "Acme IT")
    out = tmp_path / "acme.policy"
    done = tech_cli("policy", "sign", str(EXAMPLE), "--org-key", str(acme.key), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "Policy number 1 of Acme IT" in done.stdout and "ask-deny" in done.stdout
    again = tech_cli("policy", "sign", str(EXAMPLE), "--org-key", str(acme.key), "--out", str(out))
    assert again.returncode == 1 and "already exists; nothing was overwritten" in again.stderr

    shown = tech_cli("policy", "show", str(out), "--org-key", str(acme.public))
    assert shown.returncode == 0, shown.stderr
    assert "no answer in 60 s means no" in shown.stdout
    assert "check disk-system (disk_free, every 15 min, warning after 3 failures" in shown.stdout
    assert "maintenance: sun from 02:00 UTC for 120 min" in shown.stdout
    as_json = tech_cli("--json", "policy", "show", str(out), "--org-key", str(acme.public))
    assert json.loads(as_json.stdout)["policy"]["organisation"] == "Acme IT"

    other = make_organisation(tmp_path / "other", "Other Org")
    refused = tech_cli("policy", "show", str(out), "--org-key", str(other.public))
    assert refused.returncode == 1 and "another organisation's key" in refused.stderr


def test_a_bad_policy_file_is_not_signed(tmp_path: Path) -> None:
    acme = make_organisation(tmp_path / "org", "Acme IT")
    source = tmp_path / "bad.toml"
    source.write_text('[[checks]]\nid = "x"\nkind = "gpu_temperature"\n', encoding="utf-8")
    out = tmp_path / "bad.policy"
    done = tech_cli("policy", "sign", str(source), "--org-key", str(acme.key), "--out", str(out))
    assert done.returncode == 1
    assert "which this agent does not know" in done.stderr and "Nothing was signed" in done.stderr
    assert not out.exists()


def test_a_schedule_in_seconds_reads_back_in_seconds(tmp_path: Path) -> None:
    acme = make_organisation(tmp_path / "org", "Acme IT")
    source = tmp_path / "quick.toml"
    source.write_text(
        'repeat_comment_seconds = 10\n[[checks]]\nid = "disk"\nkind = "disk_free"\npath = "/"\n'
        "min_free_percent = 10\nevery_seconds = 5\n",
        encoding="utf-8",
    )
    out = tmp_path / "quick.policy"
    done = tech_cli("policy", "sign", str(source), "--org-key", str(acme.key), "--out", str(out))
    assert done.returncode == 0, done.stderr
    shown = tech_cli("policy", "show", str(out), "--org-key", str(acme.public))
    assert "check disk (disk_free, every 5 s, warning after 3 failures" in shown.stdout
    source.write_text(source.read_text(encoding="utf-8").replace("= 5\n", "= 2\n"))
    again = tmp_path / "too-quick.policy"
    slow = tech_cli("policy", "sign", str(source), "--org-key", str(acme.key), "--out", str(again))
    assert slow.returncode == 1 and not again.exists()
    assert "every_seconds must be a whole number from 5 to 604800" in slow.stderr
