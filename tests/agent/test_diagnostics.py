"""Tests of agent.capabilities.diagnostics.collection on the real machine: real psutil, real DNS, real files."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent.capabilities.diagnostics import collection as diagnostics
from agent.capabilities.diagnostics.collection import CAPABILITY_DESCRIPTION, collect
from protocol.diagnostics_facts import summarize
from tests.agent.test_redaction import PRIVATE_KEY
from tests.support.timeouts import scaled

PLANTED_SECRET = "hunter2-very-secret-value"


@pytest.fixture(scope="module")
def collected() -> Iterator[tuple[dict[str, Any], float]]:
    """One real collection (with a secret planted in the environment) and its duration."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PUENTE_TEST_SECRET", PLANTED_SECRET)
        started = time.monotonic()
        result = collect(sample_seconds=0.5)
        yield result, time.monotonic() - started


@pytest.fixture
def result(collected: tuple[dict[str, Any], float]) -> dict[str, Any]:
    return collected[0]


def _quiet_context(check: diagnostics.Check = lambda: None) -> diagnostics._Context:
    return diagnostics._new_context(
        check=check, sample_seconds=0.0, dns_names=(), dns_timeout=1.0, log_lines=10
    )


# The shape of the result ----------------------------------------------------------------


def test_result_has_every_section_and_no_errors(result: dict[str, Any]) -> None:
    assert list(result) == [
        "schema", "collected_at", "os", "hostname", "uptime", "cpu", "memory", "disks",
        "network", "clock", "processes", "system_log", "pending_reboot", "redactions",
    ]  # fmt: skip
    assert result["schema"] == 1
    errors = {k: v for k, v in result.items() if isinstance(v, dict) and "error" in v}
    assert errors == {}


def test_result_is_plain_json(result: dict[str, Any]) -> None:
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_collection_is_fast(collected: tuple[dict[str, Any], float]) -> None:
    assert collected[1] < scaled(2.0)


def test_values_match_the_machine(result: dict[str, Any]) -> None:
    assert result["hostname"] == socket.gethostname()
    assert result["cpu"]["logical_count"] == os.cpu_count()
    assert result["memory"]["total"] == psutil.virtual_memory().total
    assert result["uptime"]["seconds"] > 0
    assert result["cpu"]["sample_seconds"] >= 0.5
    assert result["os"]["system"]


def test_disks_include_the_root_file_system(result: dict[str, Any]) -> None:
    root = os.path.abspath(os.sep)
    mountpoints = [disk["mountpoint"] for disk in result["disks"]]
    assert root in mountpoints
    disk = result["disks"][mountpoints.index(root)]
    assert disk["total"] == psutil.disk_usage(root).total


def test_network_lists_loopback_and_resolves_localhost(result: dict[str, Any]) -> None:
    addresses = [
        address["address"]
        for interface in result["network"]["interfaces"]
        for address in interface["addresses"]
    ]
    assert "127.0.0.1" in addresses or "::1" in addresses
    assert [answer["name"] for answer in result["network"]["dns"]] == ["localhost"]
    assert result["network"]["dns"][0]["ok"] is True


def test_default_gateway_matches_the_routing_table(result: dict[str, Any]) -> None:
    gateway = result["network"]["default_gateway"]
    if not Path("/proc/net/route").exists():
        assert gateway is None
        return
    routes = Path("/proc/net/route").read_text().splitlines()[1:]
    has_default = any(
        line.split()[1] == "00000000" and int(line.split()[3], 16) & 2 for line in routes
    )
    assert (gateway is not None) == has_default
    if gateway is not None:
        socket.inet_aton(gateway["address"])


def test_clock_is_consistent(result: dict[str, Any]) -> None:
    clock = result["clock"]
    offset = clock["utc_offset_seconds"]
    assert offset == int(time.localtime().tm_gmtoff)
    assert clock["synchronized"] in (True, False, None)
    assert clock["timezone"]


def test_processes_are_named_never_with_command_lines(result: dict[str, Any]) -> None:
    processes = result["processes"]
    assert 0 < len(processes["top_memory"]) <= diagnostics.TOP_PROCESSES
    assert len(processes["top_cpu"]) <= diagnostics.TOP_PROCESSES
    expected_keys = {"pid", "name", "username", "cpu_percent", "memory_percent", "rss"}
    for entry in processes["top_cpu"] + processes["top_memory"]:
        assert set(entry) == expected_keys
    rss = [entry["rss"] for entry in processes["top_memory"]]
    assert rss == sorted(rss, reverse=True)
    # This test run is itself a process with a command line; none of it may appear.
    own_arguments = [arg for arg in psutil.Process().cmdline()[1:] if len(arg) > 6]
    text = json.dumps(processes)
    assert not [arg for arg in own_arguments if arg in text]


def test_system_log_and_reboot_have_their_shape(result: dict[str, Any]) -> None:
    log = result["system_log"]
    assert isinstance(log["lines"], list) and len(log["lines"]) <= 50
    if log["source"] is None:
        assert log["unavailable"]
    reboot = result["pending_reboot"]
    assert reboot["detected"] in (True, False, None)
    assert all(isinstance(reason, str) for reason in reboot["reasons"])
    assert isinstance(result["redactions"], int)


def test_planted_environment_secret_is_nowhere(result: dict[str, Any]) -> None:
    assert PLANTED_SECRET not in json.dumps(result)
    assert "PUENTE_TEST_SECRET" not in json.dumps(result)


def test_log_lines_are_redacted_as_a_block_then_trimmed(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    long_line = "x " * diagnostics.MAX_LINE_CHARS
    log.write_text("\n".join(["old", "first", f"leak {PRIVATE_KEY}", long_line, "password=1"]))
    context = _quiet_context()
    lines = diagnostics._clean_lines(context, diagnostics._tail_lines(log, 10), 10)
    assert lines[:2] == ["old", "first"]
    assert lines[2] == "leak [redacted]"
    assert len(lines[3]) == diagnostics.MAX_LINE_CHARS
    assert lines[4] == "password=[redacted]"
    assert context.redactions == 2
    assert diagnostics._tail_lines(log, 2) == [long_line, "password=1"]


def _install_program(folder: Path, name: str, script: str) -> None:
    program = folder / name
    program.write_text(f"#!/bin/sh\n{script}\n")
    program.chmod(0o755)


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux tools")
posix_only = pytest.mark.skipif(os.name != "posix", reason="uses the sleep program")


@linux_only
def test_system_log_comes_from_journalctl_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in journalctl on PATH: a real program printing what journalctl prints.
    _install_program(
        tmp_path,
        "journalctl",
        'echo "2026-01-02T03:04:05+0000 vm app[1]: started"\n'
        'echo "2026-01-02T03:04:06+0000 vm app[1]: login with password=hunter2"',
    )
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    context = _quiet_context()
    log = diagnostics._gather_system_log(context)
    assert log == {
        "source": "journalctl",
        "lines": [
            "2026-01-02T03:04:05+0000 vm app[1]: started",
            "2026-01-02T03:04:06+0000 vm app[1]: login with password=[redacted]",
        ],
    }
    assert context.redactions == 1


@linux_only
def test_clock_sync_and_reboot_come_from_the_system_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_program(tmp_path, "timedatectl", "echo yes")
    _install_program(
        tmp_path,
        "needs-restarting",
        'echo "Core libraries have been updated since boot-up"\nexit 1',
    )
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    context = _quiet_context()
    assert diagnostics._gather_clock(context)["synchronized"] is True
    reboot = diagnostics._gather_pending_reboot(context)
    assert reboot["detected"] is True
    assert "Core libraries have been updated since boot-up" in reboot["reasons"]


# Consent and failure handling -----------------------------------------------------------


class Revoked(Exception):
    """What a consent gate raises when the customer presses Stop."""


def test_revoked_consent_stops_collection_at_once() -> None:
    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise Revoked

    started = time.monotonic()
    with pytest.raises(Revoked):
        collect(check=check, sample_seconds=5.0)
    assert calls == 3  # nothing asked again after the refusal
    assert time.monotonic() - started < scaled(1.0)  # the 5 s sample never ran


def test_revocation_during_the_processor_sample_stops_within_a_slice() -> None:
    started = time.monotonic()
    revoked_at: list[float] = []

    def check() -> None:
        if time.monotonic() - started > 0.3:
            revoked_at.append(time.monotonic())
            raise Revoked

    with pytest.raises(Revoked):
        collect(check=check, sample_seconds=8.0)
    assert len(revoked_at) == 1
    assert time.monotonic() - started < scaled(1.5)


def test_check_is_called_before_every_section() -> None:
    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1

    collect(check=check, sample_seconds=0.0, log_lines=0)
    assert calls >= len(diagnostics._SECTIONS) + 1


def test_failing_section_is_recorded_and_the_others_still_run() -> None:
    def broken(context: diagnostics._Context) -> Any:
        raise RuntimeError("the disk caught fire")

    context = _quiet_context()
    out = diagnostics._run_sections(
        context,
        [("memory", diagnostics._gather_memory), ("broken", broken),
         ("hostname", diagnostics._gather_hostname)],
    )  # fmt: skip
    assert out["broken"] == {"error": "RuntimeError: the disk caught fire"}
    assert out["hostname"] == socket.gethostname()
    assert out["memory"]["total"] == psutil.virtual_memory().total


def test_failing_section_errors_are_redacted() -> None:
    def broken(context: diagnostics._Context) -> Any:
        raise OSError("cannot open https://bob:opensesame@files.example/x")

    out = diagnostics._run_sections(_quiet_context(), [("broken", broken)])
    assert "opensesame" not in out["broken"]["error"]


def test_revocation_inside_a_section_is_not_turned_into_an_error() -> None:
    revoked = False

    def check() -> None:
        if revoked:
            raise Revoked

    def slow_section(context: diagnostics._Context) -> Any:
        nonlocal revoked
        revoked = True
        context.checkpoint()  # between two slow steps
        return "not reached"

    reached: list[str] = []

    def later(context: diagnostics._Context) -> Any:
        reached.append("later")

    with pytest.raises(Revoked):
        diagnostics._run_sections(_quiet_context(check), [("slow", slow_section), ("x", later)])
    assert reached == []


@posix_only
def test_revocation_kills_a_running_program() -> None:
    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1
        if calls > 2:
            raise Revoked

    started = time.monotonic()
    with pytest.raises(Revoked):
        diagnostics._run_command(["sleep", "30"], 30.0, check)
    assert time.monotonic() - started < scaled(1.0)


@posix_only
def test_slow_program_times_out() -> None:
    with pytest.raises(TimeoutError):
        diagnostics._run_command(["sleep", "30"], 0.2, lambda: None)
    assert diagnostics._run_command(["puente-no-such-program"], 1.0, lambda: None) is None


# DNS --------------------------------------------------------------------------------------


def test_dns_answers_good_and_bad_names_within_the_timeout() -> None:
    started = time.monotonic()
    answers = diagnostics._resolve_all(
        ["localhost", "nonexistent.invalid", "bad name"], 2.0, lambda: None
    )
    assert time.monotonic() - started < 2.0 + scaled(0.5)
    localhost, missing, bad = answers
    assert localhost["ok"] is True and localhost["addresses"]
    assert localhost["error"] is None
    assert missing["ok"] is False and missing["addresses"] == [] and missing["error"]
    assert bad == {"name": "bad name", "ok": False, "addresses": [],
                   "error": "not a valid host name", "seconds": 0.0}  # fmt: skip
    assert missing["seconds"] <= 2.0 + scaled(0.5)


def test_dns_gives_up_at_the_deadline() -> None:
    started = time.monotonic()
    (answer,) = diagnostics._resolve_all(["nonexistent.invalid"], 0.0, lambda: None)
    assert time.monotonic() - started < scaled(0.5)
    assert answer["ok"] is False


# Digest and description --------------------------------------------------------------


def test_summarize_real_result_gives_strings(result: dict[str, Any]) -> None:
    facts = summarize(result)
    assert facts and all(isinstance(fact, str) and "\n" not in fact for fact in facts)


def test_capability_description_is_plain_language() -> None:
    assert diagnostics.NAME == "diagnostics"
    assert CAPABILITY_DESCRIPTION.endswith(".")
    assert "Passwords" in CAPABILITY_DESCRIPTION
    assert "not collected" in CAPABILITY_DESCRIPTION
