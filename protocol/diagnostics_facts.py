"""A digest of a diagnostics document: a few one-line facts a person can read.

:func:`summarize` turns the document the agent's ``diagnostics`` capability collected
into facts such as "Disk / is 93% full (2.1 GB free)". The technician's client puts
them in ticket summaries; the knowledge base reads the same document.

The document comes from a remote agent, so it is untrusted: missing or malformed
parts are skipped, never raised on, and every value quoted from it is cut to one
short line. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["summarize"]


def summarize(diagnostics: Mapping[str, Any]) -> list[str]:
    """Turn a diagnostics dict into a few one-line, human-readable facts.

    Meant for ticket summaries and the knowledge base. The input may come from a
    remote agent, so it is treated as untrusted: missing or malformed parts are
    skipped, never raised on. Sizes use binary units (1 GB = 2**30 bytes), as
    most desktop systems show them.
    """
    facts: list[str] = []
    for describe in _FACT_FINDERS:
        try:
            facts.extend(describe(diagnostics))
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError):
            continue
    return facts


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _human_bytes(count: float) -> str:
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def _human_duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    if days:
        return f"{days} day{'s' if days != 1 else ''}"
    hours = rest // 3600
    if hours:
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{rest // 60} minutes"


def _text(value: Any, limit: int = 64) -> str:
    """A short, single-line rendering of an untrusted value."""
    return _truncate(" ".join(str(value).split()), limit)


def _section(diagnostics: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    value = diagnostics.get(name)
    return value if isinstance(value, Mapping) and "error" not in value else None


def _facts_os(d: Mapping[str, Any]) -> list[str]:
    system = _section(d, "os")
    if system is None:
        return []
    name = system.get("pretty_name") or f"{system.get('system', '')} {system.get('release', '')}"
    fact = f"{_text(name)} on {_text(system.get('machine') or 'unknown hardware')}"
    uptime = _section(d, "uptime")
    if uptime is not None and isinstance(uptime.get("seconds"), int | float):
        fact += f", up {_human_duration(uptime['seconds'])}"
    return [fact]


def _facts_uptime(d: Mapping[str, Any]) -> list[str]:
    uptime = _section(d, "uptime")
    if uptime is not None and float(uptime["seconds"]) >= 30 * 86400:
        return [f"Not restarted for {_human_duration(uptime['seconds'])}"]
    return []


_OPTICAL = frozenset({"iso9660", "udf", "cdfs", "squashfs"})


def _facts_disks(d: Mapping[str, Any]) -> list[str]:
    disks = d.get("disks")
    if not isinstance(disks, list):
        return []
    facts = []
    for disk in disks:
        if not isinstance(disk, Mapping) or disk.get("fstype") in _OPTICAL:
            continue
        percent, free = float(disk["percent"]), float(disk["free"])
        if percent >= 90 or (free < 1024**3 and float(disk["total"]) > 4 * 1024**3):
            mount = _text(disk.get("mountpoint"))
            facts.append(f"Disk {mount} is {percent:.0f}% full ({_human_bytes(free)} free)")
    return facts


def _facts_memory(d: Mapping[str, Any]) -> list[str]:
    memory = _section(d, "memory")
    if memory is None:
        return []
    facts = []
    percent = float(memory["percent"])
    if percent >= 80:
        available = _human_bytes(float(memory["available"]))
        facts.append(f"Memory {percent:.0f}% used ({available} available)")
    swap_total, swap_used = float(memory["swap_total"]), float(memory["swap_used"])
    if swap_total > 0 and swap_used / swap_total >= 0.5:
        facts.append(f"Swap {swap_used / swap_total:.0%} used ({_human_bytes(swap_used)})")
    return facts


def _facts_cpu(d: Mapping[str, Any]) -> list[str]:
    cpu = _section(d, "cpu")
    if cpu is None:
        return []
    facts = []
    if isinstance(cpu.get("percent"), int | float) and cpu["percent"] >= 90:
        facts.append(f"Processor {cpu['percent']:.0f}% busy")
    load, count = cpu.get("load_average"), cpu.get("logical_count")
    if isinstance(load, list) and load and isinstance(count, int) and count > 0:
        if float(load[0]) >= 2 * count:
            facts.append(f"Load average {float(load[0]):.1f} on {count} processors")
    return facts


def _facts_processes(d: Mapping[str, Any]) -> list[str]:
    processes = _section(d, "processes")
    if processes is None or not isinstance(processes.get("top_cpu"), list):
        return []
    facts = []
    for entry in processes["top_cpu"][:3]:
        if isinstance(entry, Mapping) and float(entry["cpu_percent"]) >= 80:
            name, pid = _text(entry.get("name")), _text(entry.get("pid"))
            facts.append(
                f"Program {name} (pid {pid}) uses {float(entry['cpu_percent']):.0f}% of a processor"
            )
    return facts


def _facts_network(d: Mapping[str, Any]) -> list[str]:
    network = _section(d, "network")
    if network is None:
        return []
    facts = []
    interfaces = network.get("interfaces")
    if isinstance(interfaces, list) and interfaces:
        up = [
            i
            for i in interfaces
            if isinstance(i, Mapping)
            and i.get("is_up")
            and not str(i.get("name", "")).lower().startswith(("lo", "loopback"))
        ]
        if not up:
            facts.append("No network connection is up")
    system = _section(d, "os")
    if system is not None and system.get("system") == "Linux" and "default_gateway" in network:
        if network["default_gateway"] is None:
            facts.append("No default gateway (this computer may not reach the internet)")
    dns = network.get("dns")
    for answer in dns if isinstance(dns, list) else []:
        if isinstance(answer, Mapping) and answer.get("ok") is False:
            fact = f"DNS lookup of {_text(answer.get('name'))} failed"
            if answer.get("error"):
                fact += f" ({_text(answer['error'], 80)})"
            facts.append(fact)
    return facts


def _facts_clock(d: Mapping[str, Any]) -> list[str]:
    clock = _section(d, "clock")
    if clock is not None and clock.get("synchronized") is False:
        return ["Clock is not synchronized with a time server"]
    return []


def _facts_reboot(d: Mapping[str, Any]) -> list[str]:
    reboot = _section(d, "pending_reboot")
    if reboot is None or reboot.get("detected") is not True:
        return []
    reasons = reboot.get("reasons")
    if isinstance(reasons, list) and reasons:
        return [f"Reboot pending: {_text(reasons[0], 120)}"]
    return ["Reboot pending"]


def _facts_errors(d: Mapping[str, Any]) -> list[str]:
    return [
        f"Could not collect {_text(name)}"
        for name, value in d.items()
        if isinstance(value, Mapping) and set(value) == {"error"}
    ]


_FACT_FINDERS: tuple[Callable[[Mapping[str, Any]], list[str]], ...] = (
    _facts_os,
    _facts_uptime,
    _facts_disks,
    _facts_memory,
    _facts_cpu,
    _facts_processes,
    _facts_network,
    _facts_clock,
    _facts_reboot,
    _facts_errors,
)
