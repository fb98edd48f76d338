"""The checks an enrolled device runs on itself, one function per kind of the policy.

Each check reads this computer (``psutil`` where it fits) and returns a
:class:`CheckResult`: a status (``ok``, ``failing``, or ``error`` when it could not
tell), the policy's severity, a sentence for the owner in English and Spanish (a
catalog key of :mod:`agent.i18n` and its values), the details (numbers, paths, the
matching log lines...) and, where a trend makes sense, one measurement with the
limit it is heading for (:mod:`agent.monitoring.forecast` uses both).

The details never leave the device with the summary: :meth:`CheckResult.summary` is
what the relay may see (which check, which kind, which status, which severity).

A check never raises for what it finds on the machine: a missing file, a refused
permission or an unreachable time source is an ``error`` result whose sentence says
what to do.
"""

from __future__ import annotations

import email.utils
import glob
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from cryptography import x509

from agent.i18n import DEFAULT_LANGUAGE, Translator
from protocol.device_policy import CheckDefinition

OK, FAILING, ERROR = "ok", "failing", "error"
MiB = 1024 * 1024
#: Most matching log lines kept in a result's details.
MAX_LOG_LINES = 20
#: How long a time source may take to answer, in seconds.
TIME_SOURCE_TIMEOUT = 10.0


@dataclass(frozen=True)
class Measurement:
    """A number with a history (disk used, memory used, error lines) and the value at
    which it becomes a problem (:mod:`agent.monitoring.forecast`)."""

    value: float
    limit: float
    unit: str


@dataclass(frozen=True)
class CheckResult:
    """What one check found. ``message`` is a key of :mod:`agent.i18n`."""

    check: str
    kind: str
    severity: str
    status: str
    message: str
    values: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    measurement: Measurement | None = None

    @property
    def failing(self) -> bool:
        return self.status != OK

    def text(self, translator: Translator | None = None) -> str:
        """The owner's sentence, in the translator's language (English by default)."""
        return (translator or Translator(DEFAULT_LANGUAGE))(self.message, **self.values)

    def summary(self) -> dict[str, str]:
        """All the relay may see of this result (unless the policy shares details)."""
        return {
            "check": self.check,
            "kind": self.kind,
            "status": self.status,
            "severity": self.severity,
        }

    def as_dict(self, translator: Translator | None = None) -> dict[str, Any]:
        return {
            **self.summary(),
            "text": self.text(translator),
            "details": self.details,
        }


@dataclass(frozen=True)
class Probes:
    """What the checks read besides the machine itself: the wall clock (certificate
    and backup ages are measured against it). Time sources are real HTTP servers
    named by the policy; tests run one on loopback."""

    now: Callable[[], float] = time.time


def run_check(check: CheckDefinition, probes: Probes | None = None) -> CheckResult:
    """Run one check of the policy now."""
    probes = probes or Probes()
    runner = _RUNNERS[check.kind]
    try:
        return runner(check, probes)
    except (OSError, psutil.Error, ValueError) as exc:
        return _result(
            check,
            ERROR,
            "check.error",
            {"check": check.id, "reason": _reason(exc)},
            {"error": _reason(exc)},
        )


def _result(
    check: CheckDefinition,
    status: str,
    message: str,
    values: dict[str, Any],
    details: dict[str, Any] | None = None,
    measurement: Measurement | None = None,
) -> CheckResult:
    return CheckResult(
        check=check.id,
        kind=check.kind,
        severity=check.severity,
        status=status,
        message=message,
        values=values,
        details=details if details is not None else dict(values),
        measurement=measurement,
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


def _size(count: float) -> str:
    """``1.5 GiB``: a byte count for people."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


# ---------------------------------------------------------------------------
# One function per kind
# ---------------------------------------------------------------------------


def disk_free(check: CheckDefinition, probes: Probes) -> CheckResult:
    params = check.params
    path = str(params["path"])
    usage = psutil.disk_usage(path)
    percent_free = 100.0 * usage.free / usage.total if usage.total else 0.0
    wanted: list[str] = []
    too_low = False
    if "min_free_percent" in params:
        wanted.append(f"{params['min_free_percent']}%")
        too_low |= percent_free < params["min_free_percent"]
    if "min_free_mb" in params:
        wanted.append(_size(params["min_free_mb"] * MiB))
        too_low |= usage.free < params["min_free_mb"] * MiB
    values = {
        "path": path,
        "free": _size(usage.free),
        "total": _size(usage.total),
        "percent": f"{percent_free:.0f}",
    }
    details = {
        "path": path,
        "free_bytes": usage.free,
        "used_bytes": usage.used,
        "total_bytes": usage.total,
        "free_percent": round(percent_free, 2),
    }
    # The trend runs towards a full disk: "full in about N days".
    measurement = Measurement(float(usage.total - usage.free), float(usage.total), "bytes")
    if too_low:
        values["wanted"] = " / ".join(wanted)
        return _result(check, FAILING, "check.disk_free.failing", values, details, measurement)
    return _result(check, OK, "check.disk_free.ok", values, details, measurement)


def memory_pressure(check: CheckDefinition, probes: Probes) -> CheckResult:
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    limit_used = check.params["max_used_percent"]
    limit_swap = check.params["max_swap_percent"]
    values = {
        "used": f"{memory.percent:.0f}",
        "swap": f"{swap.percent:.0f}",
        "max_used": str(limit_used),
        "max_swap": str(limit_swap),
    }
    details = {
        "used_percent": memory.percent,
        "available_bytes": memory.available,
        "total_bytes": memory.total,
        "swap_percent": swap.percent,
        "swap_total_bytes": swap.total,
    }
    measurement = Measurement(float(memory.percent), float(limit_used), "percent")
    # Swap alone is not pressure (a machine may keep idle pages there); both together are.
    if memory.percent > limit_used or (
        memory.percent > limit_used * 0.8 and swap.percent > limit_swap
    ):
        return _result(check, FAILING, "check.memory.failing", values, details, measurement)
    return _result(check, OK, "check.memory.ok", values, details, measurement)


def process_running(check: CheckDefinition, probes: Probes) -> CheckResult:
    name = str(check.params["name"])
    found = []
    for process in psutil.process_iter(["name", "pid"]):
        if process.info["name"] == name:
            found.append(process.info["pid"])
    values = {"name": name, "count": str(len(found))}
    details = {"name": name, "pids": found[:50]}
    if not found:
        return _result(check, FAILING, "check.process.failing", values, details)
    return _result(check, OK, "check.process.ok", values, details)


def service_state(name: str) -> str:
    """The service manager's word for ``name``'s state (``active``, ``running``,
    ``inactive``, ``failed``...). Raises OSError where no service manager answers."""
    if sys.platform == "win32":
        try:
            return str(psutil.win_service_get(name).status())  # type: ignore[attr-defined]
        except psutil.NoSuchProcess:
            return "not installed"
    if sys.platform == "darwin":
        done = subprocess.run(
            ["launchctl", "list", name], capture_output=True, text=True, timeout=10, check=False
        )
        return "running" if done.returncode == 0 and '"PID"' in done.stdout else "not running"
    systemctl = shutil.which("systemctl")
    if systemctl is None or not Path("/run/systemd/system").is_dir():
        raise OSError(0, "this computer has no systemd to ask about services")
    done = subprocess.run(
        [systemctl, "is-active", name], capture_output=True, text=True, timeout=10, check=False
    )
    return done.stdout.strip() or "unknown"


def service_running(check: CheckDefinition, probes: Probes) -> CheckResult:
    name = str(check.params["name"])
    state = service_state(name)
    values = {"name": name, "state": state}
    if state in ("active", "running"):
        return _result(check, OK, "check.service.ok", values)
    return _result(check, FAILING, "check.service.failing", values)


def pending_reboot(check: CheckDefinition, probes: Probes) -> CheckResult:
    from agent.capabilities.diagnostics.collection import pending_reboot as read_pending

    found = read_pending()
    details = {"reasons": found.get("reasons", []), "checked": found.get("checked", [])}
    if found.get("detected") is None:
        return _result(check, ERROR, "check.reboot.unknown", {}, details)
    if found["detected"]:
        return _result(check, FAILING, "check.reboot.failing", {}, details)
    return _result(check, OK, "check.reboot.ok", {}, details)


def clock_offset(sent: float, header: str | None, received: float, where: str) -> float:
    """How far this clock is ahead (+) of a server's HTTP ``Date``, in seconds.

    The server stamped its Date somewhere during the round trip from ``sent`` to
    ``received``; HTTP dates are whole seconds, so the midpoint against the middle of
    that second is honest to within half the round trip and half a second.
    """
    if not header:
        raise ValueError(f"{where} answered without a Date header; name another time source")
    try:
        server = email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        raise ValueError(f"{where} answered with a Date header that is not a date") from None
    return (sent + received) / 2 - (server + 0.5)


def fetch_http_date(url: str) -> tuple[float, float]:
    """Ask ``url`` for its HTTP ``Date``: ``(this clock's offset, round trip)``.

    A HEAD request (the relay's ``/healthz`` is a good source); any answer with a Date
    header counts, even an error status, since only the header is wanted.
    """
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "puente-agent"})
    sent = time.time()
    try:
        with urllib.request.urlopen(request, timeout=TIME_SOURCE_TIMEOUT) as response:
            header = response.headers.get("Date")
    except urllib.error.HTTPError as exc:
        header = exc.headers.get("Date")
    received = time.time()
    return clock_offset(sent, header, received, url), received - sent


def clock_drift(check: CheckDefinition, probes: Probes) -> CheckResult:
    source = str(check.params["source"])
    try:
        offset, round_trip = fetch_http_date(source)
    except urllib.error.URLError as exc:
        reason = f"{source} did not answer ({getattr(exc, 'reason', exc)})"
        return _result(check, ERROR, "check.error", {"check": check.id, "reason": reason})
    shown = abs(round(offset))
    values = {"seconds": str(shown), "source": source}
    details = {
        "source": source,
        "offset_seconds": round(offset, 3),
        "round_trip_seconds": round(round_trip, 3),
    }
    if abs(offset) > check.params["max_seconds"] + 1 + round_trip / 2:
        return _result(check, FAILING, "check.clock.failing", values, details)
    return _result(check, OK, "check.clock.ok", values, details)


def _load_certificate(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def certificate_expiry(check: CheckDefinition, probes: Probes) -> CheckResult:
    min_days = int(check.params["min_days"])
    now = probes.now()
    found: list[dict[str, Any]] = []
    worst: dict[str, Any] | None = None
    for pattern in check.params["paths"]:
        paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        for name in paths:
            certificate = _load_certificate(Path(name))
            expires = certificate.not_valid_after_utc.timestamp()
            entry = {
                "path": name,
                "subject": certificate.subject.rfc4514_string()[:200],
                "not_after": datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d"),
                "days_left": int((expires - now) // 86400),
            }
            found.append(entry)
            if worst is None or entry["days_left"] < worst["days_left"]:
                worst = entry
    if worst is None:
        return _result(
            check,
            ERROR,
            "check.certificate.none",
            {"paths": ", ".join(check.params["paths"])},
        )
    details = {"certificates": found}
    if worst["days_left"] < min_days:
        values = {
            "path": worst["path"],
            "date": worst["not_after"],
            "days": str(worst["days_left"]),
        }
        key = "check.certificate.expired" if worst["days_left"] < 0 else "check.certificate.failing"
        return _result(check, FAILING, key, values, details)
    values = {"count": str(len(found)), "days": str(min_days)}
    return _result(check, OK, "check.certificate.ok", values, details)


def _tail(path: Path, size: int) -> list[str]:
    with path.open("rb") as file:
        file.seek(0, os.SEEK_END)
        length = file.tell()
        file.seek(max(0, length - size))
        data = file.read(size)
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[1:] if length > size else lines  # the first may be cut


def log_pattern(check: CheckDefinition, probes: Probes) -> CheckResult:
    path = Path(str(check.params["path"]))
    pattern = re.compile(str(check.params["pattern"]))
    limit = int(check.params["max_matches"])
    lines = [
        line for line in _tail(path, int(check.params["tail_kb"]) * 1024) if pattern.search(line)
    ]
    values = {"path": str(path), "count": str(len(lines)), "limit": str(limit)}
    details = {
        **values,
        "pattern": pattern.pattern,
        "lines": [ln[:300] for ln in lines[-MAX_LOG_LINES:]],
    }
    measurement = Measurement(float(len(lines)), float(limit), "lines")
    if len(lines) > limit:
        return _result(check, FAILING, "check.log.failing", values, details, measurement)
    return _result(check, OK, "check.log.ok", values, details, measurement)


def backup_age(check: CheckDefinition, probes: Probes) -> CheckResult:
    pattern = str(check.params["path"])
    limit = int(check.params["max_hours"])
    paths = glob.glob(pattern) if glob.has_magic(pattern) else [pattern]
    newest: tuple[float, str] | None = None
    for name in paths:
        try:
            stamp = os.stat(name).st_mtime
        except FileNotFoundError:
            continue
        if newest is None or stamp > newest[0]:
            newest = (stamp, name)
    if newest is None:
        return _result(check, FAILING, "check.backup.none", {"path": pattern})
    hours = max(0.0, probes.now() - newest[0]) / 3600
    values = {"path": newest[1], "hours": f"{hours:.0f}", "limit": str(limit)}
    details = {"path": newest[1], "age_hours": round(hours, 2), "max_hours": limit}
    if hours > limit:
        return _result(check, FAILING, "check.backup.failing", values, details)
    return _result(check, OK, "check.backup.ok", values, details)


_RUNNERS: dict[str, Callable[[CheckDefinition, Probes], CheckResult]] = {
    "disk_free": disk_free,
    "memory_pressure": memory_pressure,
    "process_running": process_running,
    "service_running": service_running,
    "pending_reboot": pending_reboot,
    "clock_drift": clock_drift,
    "certificate_expiry": certificate_expiry,
    "log_pattern": log_pattern,
    "backup_age": backup_age,
}
