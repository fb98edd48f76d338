"""The ``diagnostics`` capability: a snapshot of this computer for the technician.

The agent runs :func:`collect` only after the customer consented; the technician
receives the returned dict as JSON. Everything here is stdlib plus ``psutil``.

Contract of :func:`collect`
---------------------------

* ``check()`` is called before every section and between slow steps (each slice of
  the CPU sample, each DNS wait, each disk, each subprocess poll). It raises when
  the customer revoked consent; that exception leaves :func:`collect` at once,
  unchanged, and nothing more is collected. Programs started for the collection
  are killed on the way out.
* Any other failure inside a section becomes ``{"error": "..."}`` for that section;
  the other sections are still collected.
* The result holds only JSON types (dict, list, str, int, float, bool, None).

Privacy rules
-------------

* Environment variables are never read into the result, and as a second line of
  defence the values of secret-looking variables of this process are masked
  wherever they would appear.
* Processes are reported by name only: never their command lines or arguments.
* Every system log line (and every process name and error text) goes through
  :func:`~agent.capabilities.diagnostics.redaction.redact`, which masks passwords,
  tokens, keys, cookies, credentials in URLs and long token-like strings with
  ``[redacted]``. ``redactions`` in the result counts what was masked.

The digest a technician reads (a few one-line facts) is
:func:`protocol.diagnostics_facts.summarize`; it takes the result as untrusted input.

Sections of the result (``schema`` 1): ``collected_at``, ``os``, ``hostname``,
``uptime``, ``cpu``, ``memory``, ``disks``, ``network``, ``clock``, ``processes``,
``system_log``, ``pending_reboot``, ``redactions``. Linux is covered fully; macOS
and Windows on a best-effort basis (fields that cannot be read are ``None``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from agent.capabilities.diagnostics.redaction import redact, scrub_environment_values

__all__ = ["CAPABILITY_DESCRIPTION", "NAME", "SCHEMA_VERSION", "collect"]

NAME = "diagnostics"
"""The capability name the consent gate and the technician use."""

CAPABILITY_DESCRIPTION = (
    "See basic facts about this computer: system version, computer name, processor, "
    "memory, disks, network settings, clock, the busiest programs, whether a restart is "
    "pending and recent system messages. Passwords, files and personal documents are "
    "not collected."
)
"""What the customer is asked to allow, in plain language."""

SCHEMA_VERSION = 1

#: Upper bounds on what a technician may ask for, so a request cannot make the
#: collection run for long or return a huge document.
MAX_SAMPLE_SECONDS = 10.0
MAX_DNS_TIMEOUT = 10.0
MAX_DNS_NAMES = 16
MAX_LOG_LINES = 1000
MAX_LINE_CHARS = 1000
TOP_PROCESSES = 10

_SLICE = 0.05  # how long we ever wait without calling check()
_COMMAND_TIMEOUT = 2.0
_SLOW_COMMAND_TIMEOUT = 5.0
_TAIL_BYTES = 256 * 1024

Check = Callable[[], None]
Section = Callable[["_Context"], Any]


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def collect(
    *,
    check: Check = lambda: None,
    sample_seconds: float = 0.5,
    dns_names: Sequence[str] = ("localhost",),
    dns_timeout: float = 2.0,
    log_lines: int = 50,
) -> dict[str, Any]:
    """Collect a diagnostics snapshot of this computer.

    ``check`` raises (any exception) when consent is revoked; that exception
    propagates immediately and collection stops. ``sample_seconds`` is the least
    time over which processor use is measured (the window overlaps the other
    sections, so it rarely adds to the total). ``dns_names`` are resolved in
    worker threads, all within ``dns_timeout`` seconds in total. ``log_lines`` is
    how many recent system log lines to include. Numbers are clamped to
    ``0..MAX_*``; at most ``MAX_DNS_NAMES`` names are looked up.

    Returns a JSON-serializable dict; see the module docstring for its sections.
    A failing section is reported as ``{"error": "..."}`` and never stops the rest.
    """
    context = _new_context(
        check=check,
        sample_seconds=sample_seconds,
        dns_names=dns_names,
        dns_timeout=dns_timeout,
        log_lines=log_lines,
    )
    collected_at = _iso(time.time())
    gathered = _run_sections(context, _SECTIONS)
    result: dict[str, Any] = {"schema": SCHEMA_VERSION, "collected_at": collected_at}
    result.update((name, gathered[name]) for name in _RESULT_ORDER)
    scrubbed, masked = scrub_environment_values(result)
    scrubbed["redactions"] = context.redactions + masked
    return scrubbed


def pending_reboot() -> dict[str, Any]:
    """The ``pending_reboot`` section on its own (an enrolled device's check uses it):
    ``{"detected": bool | None, "reasons": [...], "checked": [...]}``."""
    context = _new_context(
        check=lambda: None, sample_seconds=0.0, dns_names=(), dns_timeout=0.0, log_lines=0
    )
    return _gather_pending_reboot(context)


# ---------------------------------------------------------------------------
# Running sections under the consent check
# ---------------------------------------------------------------------------


class _Checkpoint:
    """The consent check, remembering what it raised.

    Section guards catch ``Exception`` to record failures; once the check has
    raised, they re-raise instead, so revocation always leaves :func:`collect`.
    """

    def __init__(self, check: Check) -> None:
        self._check = check
        self.revoked: BaseException | None = None

    def __call__(self) -> None:
        if self.revoked is not None:
            raise self.revoked
        try:
            self._check()
        except BaseException as exc:
            self.revoked = exc
            raise


@dataclass
class _Context:
    """What every section may use: the checkpoint, the options, the CPU sampler."""

    checkpoint: _Checkpoint
    sampler: _CpuSampler
    dns_names: tuple[str, ...]
    dns_timeout: float
    log_lines: int
    redactions: int = 0

    def redact(self, text: str) -> str:
        """Redact ``text`` and count what was masked."""
        masked, count = redact(text)
        self.redactions += count
        return masked


def _new_context(
    *,
    check: Check,
    sample_seconds: float,
    dns_names: Sequence[str],
    dns_timeout: float,
    log_lines: int,
) -> _Context:
    """Validate the options, call ``check`` once and start the CPU sample."""
    checkpoint = _Checkpoint(check)
    checkpoint()
    names = tuple(dns_names)[:MAX_DNS_NAMES] if not isinstance(dns_names, str) else (dns_names,)
    return _Context(
        checkpoint=checkpoint,
        sampler=_CpuSampler(_clamp(sample_seconds, 0.0, MAX_SAMPLE_SECONDS)),
        dns_names=names,
        dns_timeout=_clamp(dns_timeout, 0.0, MAX_DNS_TIMEOUT),
        log_lines=int(_clamp(log_lines, 0, MAX_LOG_LINES)),
    )


def _run_section(context: _Context, gather: Section) -> Any:
    """Call ``check()``, then ``gather``; a failure becomes ``{"error": ...}``.

    The consent check's exception is never turned into an error entry: it
    propagates, whether it came from the check before the section or from a
    check inside it.
    """
    context.checkpoint()
    try:
        return gather(context)
    except Exception as exc:
        if context.checkpoint.revoked is not None:
            raise
        return {"error": _describe_error(context, exc)}


def _run_sections(context: _Context, sections: Iterable[tuple[str, Section]]) -> dict[str, Any]:
    """Run each named section in order with :func:`_run_section`."""
    return {name: _run_section(context, gather) for name, gather in sections}


def _describe_error(context: _Context, exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return _truncate(context.redact(_truncate(text, 2000)), 300)


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


def _gather_os(context: _Context) -> dict[str, Any]:
    info: dict[str, Any] = {
        "system": platform.system(),
        "release": platform.release(),
        "version": platform.version(),
        "machine": platform.machine(),
        "distribution": None,
        "distribution_version": None,
        "pretty_name": None,
    }
    if sys.platform.startswith("linux"):
        try:
            release = platform.freedesktop_os_release()
        except OSError:
            release = {}
        info["distribution"] = release.get("NAME") or release.get("ID")
        info["distribution_version"] = release.get("VERSION_ID")
        info["pretty_name"] = release.get("PRETTY_NAME")
    elif sys.platform == "darwin":
        version = platform.mac_ver()[0]
        info["distribution"] = "macOS"
        info["distribution_version"] = version or None
        info["pretty_name"] = f"macOS {version}".strip()
    elif sys.platform == "win32":
        release, version, _, _ = platform.win32_ver()
        edition = platform.win32_edition() or ""
        info["distribution"] = "Windows"
        info["distribution_version"] = version or None
        info["pretty_name"] = " ".join(part for part in ("Windows", release, edition) if part)
    return info


def _gather_hostname(context: _Context) -> str:
    return socket.gethostname()


def _gather_uptime(context: _Context) -> dict[str, Any]:
    boot = psutil.boot_time()
    return {"boot_time": _iso(boot), "seconds": max(0, int(time.time() - boot))}


def _gather_cpu(context: _Context) -> dict[str, Any]:
    reading = context.sampler.finish(context.checkpoint)
    load: list[float] | None = None
    if hasattr(os, "getloadavg"):
        try:
            load = [round(value, 2) for value in os.getloadavg()]
        except OSError:
            load = None
    return {
        "model": _cpu_model(context),
        "logical_count": os.cpu_count() or psutil.cpu_count(logical=True),
        "physical_count": psutil.cpu_count(logical=False),
        "load_average": load,
        "percent": reading.system_percent,
        "sample_seconds": reading.seconds,
    }


def _gather_memory(context: _Context) -> dict[str, Any]:
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    return {
        "total": int(memory.total),
        "available": int(memory.available),
        "used": int(memory.used),
        "percent": float(memory.percent),
        "swap_total": int(swap.total),
        "swap_used": int(swap.used),
    }


# Read-only images that are always "100 % full" and say nothing about free space.
_SKIPPED_FILESYSTEMS = frozenset({"squashfs"})


def _gather_disks(context: _Context) -> list[dict[str, Any]]:
    disks: list[dict[str, Any]] = []
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        context.checkpoint()
        if part.fstype in _SKIPPED_FILESYSTEMS or part.mountpoint in seen:
            continue
        entry = _disk_entry(part.device, part.mountpoint, part.fstype)
        if entry is not None:
            seen.add(part.mountpoint)
            disks.append(entry)
    if os.name == "posix" and "/" not in seen:
        # In containers "/" is often an overlay that all=False leaves out.
        context.checkpoint()
        root = next((p for p in psutil.disk_partitions(all=True) if p.mountpoint == "/"), None)
        entry = _disk_entry(root.device if root else None, "/", root.fstype if root else None)
        if entry is not None:
            disks.insert(0, entry)
    return disks


def _disk_entry(device: str | None, mountpoint: str, fstype: str | None) -> dict[str, Any] | None:
    """Usage of one mounted file system, or None when it cannot be read."""
    try:
        usage = psutil.disk_usage(mountpoint)
    except (OSError, psutil.Error):
        return None
    return {
        "device": device,
        "mountpoint": mountpoint,
        "fstype": fstype,
        "total": int(usage.total),
        "used": int(usage.used),
        "free": int(usage.free),
        "percent": float(usage.percent),
    }


def _gather_network(context: _Context) -> dict[str, Any]:
    return {
        "interfaces": _network_interfaces(),
        "default_gateway": _run_part(context, _default_gateway),
        "dns_servers": _run_part(context, _dns_servers),
        "dns": _resolve_all(context.dns_names, context.dns_timeout, context.checkpoint),
    }


def _run_part(context: _Context, gather: Callable[[], Any]) -> Any:
    """Like :func:`_run_section` for one field, so it cannot spoil its neighbours."""
    try:
        return gather()
    except Exception as exc:
        if context.checkpoint.revoked is not None:
            raise
        return {"error": _describe_error(context, exc)}


def _network_interfaces() -> list[dict[str, Any]]:
    stats = psutil.net_if_stats()
    interfaces = []
    for name, entries in psutil.net_if_addrs().items():
        mac = None
        addresses = []
        for entry in entries:
            if entry.family == psutil.AF_LINK:
                mac = entry.address
            elif entry.family in (socket.AF_INET, socket.AF_INET6):
                family = "ipv4" if entry.family == socket.AF_INET else "ipv6"
                addresses.append(
                    {"family": family, "address": entry.address, "netmask": entry.netmask}
                )
        stat = stats.get(name)
        interfaces.append(
            {
                "name": name,
                "is_up": stat.isup if stat else None,
                "mac": mac,
                "mtu": stat.mtu if stat else None,
                "speed_mbps": stat.speed if stat else None,
                "addresses": addresses,
            }
        )
    return interfaces


_RTF_UP = 0x1
_RTF_GATEWAY = 0x2


def _default_gateway() -> dict[str, str] | None:
    """The IPv4 default route from ``/proc/net/route`` (Linux); None elsewhere or if absent."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        lines = Path("/proc/net/route").read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    best: tuple[int, str, str] | None = None
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[1] != "00000000" or fields[7] != "00000000":
            continue
        flags = int(fields[3], 16)
        if not (flags & _RTF_UP and flags & _RTF_GATEWAY):
            continue
        # The kernel prints the address as a native-endian 32-bit number.
        address = socket.inet_ntoa(struct.pack("=I", int(fields[2], 16)))
        metric = int(fields[6])
        if best is None or metric < best[0]:
            best = (metric, address, fields[0])
    return None if best is None else {"address": best[1], "interface": best[2]}


def _dns_servers() -> list[str] | None:
    """Name servers from ``/etc/resolv.conf`` (Linux, macOS); None where there is none."""
    try:
        text = Path("/etc/resolv.conf").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    servers = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append(fields[1])
    return servers


def _resolve_all(names: Sequence[str], timeout: float, checkpoint: Check) -> list[dict[str, Any]]:
    """Resolve every name in its own daemon thread; give up on all after ``timeout`` s.

    A lookup still running at the deadline is reported as failed; its thread is
    left to finish on its own (``getaddrinfo`` cannot be cancelled) and its
    answer is dropped. ``checkpoint`` is called at least every ``_SLICE`` seconds.
    """
    answers: dict[int, dict[str, Any]] = {}

    def lookup(index: int, name: str) -> None:
        started = time.monotonic()
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
            ok, error = True, None
        except (OSError, UnicodeError) as exc:
            addresses, ok, error = [], False, str(exc) or type(exc).__name__
        answers[index] = _dns_answer(name, ok, addresses, error, time.monotonic() - started)

    started = time.monotonic()
    deadline = started + timeout
    threads = []
    for index, name in enumerate(names):
        if not _is_host_name(name):
            answers[index] = _dns_answer(str(name)[:80], False, [], "not a valid host name", 0.0)
            continue
        thread = threading.Thread(
            target=lookup, args=(index, name), name=f"puente-dns-{index}", daemon=True
        )
        thread.start()
        threads.append(thread)
    for thread in threads:
        while thread.is_alive() and time.monotonic() < deadline:
            checkpoint()
            thread.join(min(_SLICE, max(0.0, deadline - time.monotonic())))
    checkpoint()
    results = []
    for index, name in enumerate(names):
        answer = answers.get(index)
        if answer is None:
            answer = _dns_answer(name, False, [], f"no answer within {timeout:g} s", timeout)
        results.append(answer)
    return results


def _dns_answer(
    name: str, ok: bool, addresses: list[str], error: str | None, seconds: float
) -> dict[str, Any]:
    return {
        "name": name,
        "ok": ok,
        "addresses": addresses,
        "error": error,
        "seconds": round(seconds, 3),
    }


def _is_host_name(name: object) -> bool:
    return isinstance(name, str) and 0 < len(name) <= 253 and not any(c.isspace() for c in name)


def _gather_clock(context: _Context) -> dict[str, Any]:
    utc = datetime.now(UTC)
    local = utc.astimezone()
    offset = local.utcoffset()
    synchronized = _ntp_synchronized(context.checkpoint)
    return {
        "utc": utc.isoformat(timespec="seconds"),
        "local": local.isoformat(timespec="seconds"),
        "timezone": _timezone_name(),
        "abbreviation": local.tzname(),
        "utc_offset_seconds": int(offset.total_seconds()) if offset is not None else 0,
        "synchronized": synchronized,
        "synchronized_source": "timedatectl" if synchronized is not None else None,
    }


def _timezone_name() -> str | None:
    """The IANA zone name (``Europe/Madrid``) when the system says it, else ``time.tzname``."""
    try:
        target = os.readlink("/etc/localtime")
    except (OSError, AttributeError):
        target = ""
    if "zoneinfo/" in target:
        return target.split("zoneinfo/", 1)[1]
    try:
        name = Path("/etc/timezone").read_text(encoding="utf-8").strip()
    except OSError:
        name = ""
    if name:
        return name
    return time.tzname[1 if time.localtime().tm_isdst > 0 else 0] or None


def _ntp_synchronized(checkpoint: Check) -> bool | None:
    """``timedatectl``'s NTPSynchronized (systemd), or None when it cannot tell."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        done = _run_command(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"], 1.0, checkpoint
        )
    except (OSError, TimeoutError):
        return None
    if done is None or done.returncode != 0:
        return None
    value = done.stdout.strip().rpartition("=")[2]
    return {"yes": True, "no": False}.get(value)


def _gather_system_log(context: _Context) -> dict[str, Any]:
    count = context.log_lines
    if count == 0:
        return {"source": None, "lines": [], "unavailable": "no log lines were asked for"}
    problems: list[str] = []
    if sys.platform.startswith("linux"):
        command = ["journalctl", "-n", str(count), "--no-pager", "-o", "short-iso"]
        try:
            done = _run_command(command, _COMMAND_TIMEOUT, context.checkpoint)
        except (OSError, TimeoutError) as exc:
            problems.append(f"journalctl could not run ({exc})")
            done = None
        else:
            if done is None:
                problems.append("journalctl is not installed")
        if done is not None:
            lines = [line for line in done.stdout.splitlines() if line != "-- No entries --"]
            if done.returncode == 0 and lines:
                return {"source": "journalctl", "lines": _clean_lines(context, lines, count)}
            reason = _first_line(done.stderr) or "the journal has no entries"
            problems.append(f"journalctl: {reason}")
    for path in ("/var/log/syslog", "/var/log/messages", "/var/log/system.log"):
        context.checkpoint()
        if not os.path.isfile(path):
            continue
        try:
            lines = _tail_lines(Path(path), count)
        except OSError as exc:
            problems.append(f"{path} could not be read ({exc.strerror or type(exc).__name__})")
            continue
        return {"source": path, "lines": _clean_lines(context, lines, count)}
    if sys.platform == "win32":
        problems.append("the Windows event log is not collected yet")
    unavailable = context.redact("; ".join(problems) or "no system log was found")
    return {"source": None, "lines": [], "unavailable": unavailable}


def _tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines among the last ``_TAIL_BYTES`` bytes of a text file."""
    with path.open("rb") as file:
        file.seek(0, os.SEEK_END)
        start = max(0, file.tell() - _TAIL_BYTES)
        file.seek(start)
        data = file.read()
    lines = data.decode("utf-8", errors="replace").splitlines()
    if start > 0 and lines:
        lines = lines[1:]  # the first one was cut in the middle
    return lines[-count:]


def _clean_lines(context: _Context, lines: list[str], count: int) -> list[str]:
    """Redact the block as a whole (a private key spans lines), then trim each line.

    Lines are cut to a generous length first so redaction time stays bounded, and
    to ``MAX_LINE_CHARS`` after, so a secret is never cut before it is recognised.
    """
    raw = (_truncate(line.rstrip(), 4 * MAX_LINE_CHARS) for line in lines[-count:])
    masked = context.redact("\n".join(raw))
    return [_truncate(line, MAX_LINE_CHARS) for line in masked.split("\n")]


def _gather_pending_reboot(context: _Context) -> dict[str, Any]:
    if sys.platform == "win32":
        return _windows_pending_reboot()
    verdicts: list[bool] = []
    reasons: list[str] = []
    checked: list[str] = []
    if sys.platform.startswith("linux"):
        flag = Path("/var/run/reboot-required")
        if flag.exists() or Path("/var/lib/dpkg").is_dir():
            checked.append(str(flag))
            verdicts.append(flag.exists())
            if flag.exists():
                packages = _read_package_list(Path("/var/run/reboot-required.pkgs"))
                reason = "Installed updates asked for a restart"
                if packages:
                    reason += f" ({', '.join(packages[:10])})"
                reasons.append(context.redact(reason))
        if shutil.which("needs-restarting"):
            checked.append("needs-restarting -r")
            try:
                done = _run_command(
                    ["needs-restarting", "-r"], _SLOW_COMMAND_TIMEOUT, context.checkpoint
                )
            except (OSError, TimeoutError):
                done = None
            # needs-restarting -r: exit 1 means a reboot is needed, 0 means not.
            if done is not None and done.returncode in (0, 1):
                verdicts.append(done.returncode == 1)
                if done.returncode == 1:
                    detail = _first_line(done.stdout) or "needs-restarting says so"
                    reasons.append(context.redact(_truncate(detail, 200)))
    return {
        "detected": any(verdicts) if verdicts else None,
        "reasons": reasons,
        "checked": checked,
    }


def _read_package_list(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))


def _windows_pending_reboot() -> dict[str, Any]:
    """Look for the registry marks Windows leaves while a restart is pending."""
    if sys.platform != "win32":
        return {"detected": None, "reasons": [], "checked": []}
    import winreg

    marks = (
        (
            r"SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending",
            None,
            "Windows component servicing is waiting for a restart",
        ),
        (
            r"SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired",
            None,
            "Windows Update is waiting for a restart",
        ),
        (
            r"SYSTEM\CurrentControlSet\Control\Session Manager",
            "PendingFileRenameOperations",
            "Files are waiting to be replaced at the next restart",
        ),
    )
    reasons = []
    checked = []
    for key_path, value_name, reason in marks:
        checked.append(key_path + (f"\\{value_name}" if value_name else ""))
        try:
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key_path) as key:
                if value_name is not None:
                    value, _ = winreg.QueryValueEx(key, value_name)
                    if not value:
                        continue
        except OSError:
            continue
        reasons.append(reason)
    return {"detected": bool(reasons), "reasons": reasons, "checked": checked}


# ---------------------------------------------------------------------------
# Processor sampling (shared by the cpu and processes sections)
# ---------------------------------------------------------------------------


@dataclass
class _CpuReading:
    system_percent: float | None
    seconds: float
    processes: list[dict[str, Any]] = field(default_factory=list)
    process_count: int = 0


class _CpuSampler:
    """Measures processor use over one window that overlaps the other sections.

    Construction primes the counters (``cpu_percent(None)``) of the system and of
    every process. :meth:`finish` waits until at least ``seconds`` have passed,
    sleeping in slices and calling the checkpoint between them, then reads the
    counters once; later calls return the same reading (or raise the same error).
    """

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._started = time.monotonic()
        self._error: Exception | None = None
        self._reading: _CpuReading | None = None
        self._processes: list[psutil.Process] = []
        try:
            psutil.cpu_percent(None)
            for process in psutil.process_iter():
                try:
                    process.cpu_percent(None)
                except psutil.Error:
                    continue
                self._processes.append(process)
        except Exception as exc:  # reported by the sections that need the reading
            self._error = exc

    def finish(self, checkpoint: Check) -> _CpuReading:
        if self._error is not None:
            raise self._error
        if self._reading is None:
            while (remaining := self._started + self._seconds - time.monotonic()) > 0:
                checkpoint()
                time.sleep(min(_SLICE, remaining))
            checkpoint()
            try:
                self._reading = self._read(checkpoint)
            except Exception as exc:
                self._error = exc
                raise
        return self._reading

    def _read(self, checkpoint: Check) -> _CpuReading:
        system_percent = float(psutil.cpu_percent(None))
        seconds = round(time.monotonic() - self._started, 3)
        processes = []
        for index, process in enumerate(self._processes):
            if index % 256 == 255:
                checkpoint()
            try:
                with process.oneshot():
                    entry = {
                        "pid": process.pid,
                        "name": process.name(),
                        "username": _process_user(process),
                        "cpu_percent": round(process.cpu_percent(None), 1),
                        "memory_percent": round(process.memory_percent(), 2),
                        "rss": int(process.memory_info().rss),
                    }
            except psutil.Error:
                continue
            processes.append(entry)
        return _CpuReading(system_percent, seconds, processes, len(processes))


def _process_user(process: psutil.Process) -> str | None:
    try:
        return str(process.username())
    except (psutil.Error, KeyError, OSError):
        return None


def _gather_processes(context: _Context) -> dict[str, Any]:
    reading = context.sampler.finish(context.checkpoint)
    # pid 0 is the idle task on Windows (and the scheduler elsewhere): not a program.
    programs = [entry for entry in reading.processes if entry["pid"] != 0]

    def public(entry: dict[str, Any]) -> dict[str, Any]:
        return {**entry, "name": _truncate(context.redact(str(entry["name"])[:1000]), 256)}

    by_cpu = sorted(programs, key=lambda e: (e["cpu_percent"], e["rss"]), reverse=True)
    by_memory = sorted(programs, key=lambda e: e["rss"], reverse=True)
    return {
        "count": reading.process_count,
        "cpu_percent_scale": "100 = one processor fully busy",
        "top_cpu": [public(entry) for entry in by_cpu[:TOP_PROCESSES]],
        "top_memory": [public(entry) for entry in by_memory[:TOP_PROCESSES]],
    }


def _cpu_model(context: _Context) -> str | None:
    """The processor's marketing name, from the best source on this system."""
    if sys.platform.startswith("linux"):
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        fields: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip(), value.strip())
        # x86 says "model name"; ARM and POWER use other keys.
        for key in ("model name", "Model", "Hardware", "cpu", "Processor"):
            if fields.get(key):
                return fields[key]
    elif sys.platform == "darwin":
        try:
            done = _run_command(
                ["sysctl", "-n", "machdep.cpu.brand_string"], 1.0, context.checkpoint
            )
        except (OSError, TimeoutError):
            done = None
        if done is not None and done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    elif sys.platform == "win32":
        import winreg

        try:
            with winreg.OpenKey(
                winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
            ) as key:
                return str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip()
        except OSError:
            pass
    return platform.processor() or None


_SECTIONS: tuple[tuple[str, Section], ...] = (
    ("os", _gather_os),
    ("hostname", _gather_hostname),
    ("uptime", _gather_uptime),
    ("memory", _gather_memory),
    ("disks", _gather_disks),
    ("network", _gather_network),
    ("clock", _gather_clock),
    ("system_log", _gather_system_log),
    ("pending_reboot", _gather_pending_reboot),
    # Last, so the processor sample overlaps everything above.
    ("cpu", _gather_cpu),
    ("processes", _gather_processes),
)

_RESULT_ORDER = (
    "os",
    "hostname",
    "uptime",
    "cpu",
    "memory",
    "disks",
    "network",
    "clock",
    "processes",
    "system_log",
    "pending_reboot",
)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _run_command(
    args: Sequence[str], timeout: float, checkpoint: Check
) -> subprocess.CompletedProcess[str] | None:
    """Run a program and capture its text output; None when it is not installed.

    Polls every ``_SLICE`` seconds and calls ``checkpoint`` between polls. Raises
    :class:`TimeoutError` after ``timeout`` seconds. The program is killed when
    this function leaves early for any reason, including revoked consent.
    """
    executable = shutil.which(args[0])
    if executable is None:
        return None
    deadline = time.monotonic() + timeout
    with subprocess.Popen(
        [executable, *args[1:]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
    ) as process:
        try:
            while True:
                checkpoint()
                wait = min(_SLICE, max(0.0, deadline - time.monotonic()))
                try:
                    stdout, stderr = process.communicate(timeout=wait)
                except subprocess.TimeoutExpired:
                    if time.monotonic() >= deadline:
                        raise TimeoutError(
                            f"{args[0]} gave no answer within {timeout:g} s"
                        ) from None
                    continue
                return subprocess.CompletedProcess(list(args), process.returncode, stdout, stderr)
        finally:
            if process.poll() is None:
                process.kill()


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")


def _clamp(value: float, low: float, high: float) -> float:
    number = float(value)
    if math.isnan(number):
        return low
    return min(max(number, low), high)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


if __name__ == "__main__":  # a quick look: python -m agent.capabilities.diagnostics.collection
    snapshot = collect()
    print(json.dumps(snapshot, indent=2))
    from protocol.diagnostics_facts import summarize

    print("\n".join(summarize(snapshot)))
