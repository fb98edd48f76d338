"""The CI build workflow (installers/ci/github-build.yml) is valid YAML and lints the
service definitions ``puente-agent enrol`` installs on each system: plutil on macOS,
Task Scheduler itself on Windows, systemd-analyze on Linux. Those tools are not on
this machine; the definitions themselves are checked in tests/agent/test_service_install.py."""

from __future__ import annotations

from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / "installers" / "ci" / "github-build.yml"


def test_the_workflow_lints_the_service_definitions_on_every_system() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    job = workflow["jobs"]["agent"]
    assert set(job["strategy"]["matrix"]["os"]) >= {"windows-latest", "macos-latest"}
    (step,) = [s for s in job["steps"] if str(s.get("name", "")).startswith("Service definitions")]
    script = step["run"]
    assert "service show --os macos" in script and "plutil -lint" in script
    assert "service show --os windows" in script and "schtasks //Create //XML" in script
    assert "schtasks //Delete //TN PuenteLint" in script
    assert "systemd-analyze verify" in script
