"""Benchmark: enrolled devices' storage on PostgreSQL (a cluster's shared database)
against SQLite (one relay's file), with the relay's own books, in one run.

Each store gets the same work, in this process, one connection per book as the relay
uses them:

- enrol: N devices redeemed from one token, one at a time (the compare-and-set on the
  token's row, the device's insert);
- results ok: a results message of three passing checks per device, three times, as
  the relay takes them (``AlertBook.observe_results``: one read of the device's pairs
  that are not clear, nothing written). Most results are these;
- results failing: three failing results per device with failures_before_alert = 2
  (counted, the alert opened, a repeat), each a transaction (the pair's row made if
  missing and locked, the state and any action written together);
- presence pass: one pass writing ``last_seen`` for all N devices (the presence book's
  worker thread, every 5 s in the relay);
- connect: what each device is owed when it connects (``UpdateBook.owed``), with one
  published policy waiting for all of them;
- delivery lease: taking the lease (each node tries every few seconds).

It prints milliseconds per operation for each store and the ratio PostgreSQL/SQLite.
PostgreSQL is started for the run (initdb into a temporary folder, with fsync as in
production, on loopback); SQLite is the relay's file in a temporary folder on the same
disk, in WAL mode as the relay opens it. Without PostgreSQL installed the run says so
and measures SQLite only.

    python bench/device_store.py                # 2,000 devices, about a minute on 2 cores
    python bench/device_store.py --quick        # 100 devices, a few seconds
    python bench/device_store.py --json         # figures as JSON on stdout
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from protocol.device_policy import POLICY_FORMAT  # noqa: E402
from relay.alert_book import AlertBook  # noqa: E402
from relay.alerts import Action, Observation  # noqa: E402
from relay.device_sql import DeviceDatabase, Lease  # noqa: E402
from relay.device_updates import UpdateBook  # noqa: E402
from relay.enrolment import EnrolmentBook  # noqa: E402
from relay.presence import PresenceBook  # noqa: E402

OPERATIONS = ("enrol", "results ok", "results failing", "presence pass", "connect", "lease")


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def fake_policy() -> bytes:
    """A document that reads as a signed policy (the relay never verifies one)."""
    body = {
        "format": POLICY_FORMAT,
        "organisation": "Bench IT",
        "organisation_key": "0" * 64,
        "number": 2,
        "checks": [],
    }
    return json.dumps({"policy": body, "signature": "A" * 86 + "=="}).encode()


def measure(database: DeviceDatabase, devices: int) -> dict[str, float]:
    """Milliseconds per operation on ``database`` (see the module doc)."""
    keys = [Ed25519PrivateKey.generate().public_key().public_bytes_raw() for _ in range(devices)]
    enrolment, alerts, updates = (
        EnrolmentBook(database),
        AlertBook(database),
        UpdateBook(database),
    )
    lease_db = database.connect()
    try:
        now = time.time()
        token, record = enrolment.create_token(now, devices, 1)
        ids: list[str] = []
        seconds = timed(lambda: ids.extend(enrolment.redeem(token, k, now).device_id for k in keys))
        figures = {"enrol": seconds * 1000 / devices}

        def passing() -> None:
            for reported in (1, 2, 3):
                for device in ids:
                    alerts.observe_results(
                        [
                            Observation(device, check, "ok", "warning", now, 2, False, reported)
                            for check in ("memory", "reboot", "backup")
                        ]
                    )

        figures["results ok"] = timed(passing) * 1000 / (3 * 3 * devices)

        def failing() -> None:
            for reported in (1, 2, 3):
                for device in ids:
                    alerts.observe_results(
                        [
                            Observation(
                                device, "disk", "failing", "critical", now, 2, False, reported
                            )
                        ]
                    )

        figures["results failing"] = timed(failing) * 1000 / (3 * devices)
        opened = [a for a in alerts.pending() if a.kind is Action.OPEN]
        assert len(opened) == devices, f"{len(opened)} alerts opened for {devices} devices"

        presence = PresenceBook(database, clock=time.time)
        for device in ids:
            presence.heard(device)
        figures["presence pass"] = timed(lambda: asyncio.run(presence.flush())) * 1000

        updates.publish([record.token_id], now, fake_policy())
        owed = [0]
        figures["connect"] = (
            timed(lambda: owed.__setitem__(0, sum(len(updates.owed(d)) for d in ids)))
            * 1000
            / devices
        )
        assert owed[0] == devices

        lease = Lease(lease_db, "alert-delivery", "bench")
        figures["lease"] = timed(lambda: [lease.take(now + i, 10) for i in range(200)]) * 1000 / 200
        return figures
    finally:
        for book in (enrolment, alerts, updates, lease_db):
            book.close()


@contextmanager
def postgres_database() -> Iterator[DeviceDatabase | str]:
    """A fresh PostgreSQL database, or why there is none."""
    from tests.support.services import postgres_missing, running_postgres

    missing = postgres_missing()
    if missing is not None:
        yield missing
        return
    with running_postgres(durable=True) as server:
        yield DeviceDatabase(url=server.new_database("puente_bench_devices"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Enrolled devices' storage: PostgreSQL (a cluster's shared database) "
        "against SQLite (one relay's file), with the relay's own books, milliseconds per "
        "operation and their ratio.",
    )
    parser.add_argument("--devices", type=int, default=2000, help="devices (default 2000)")
    parser.add_argument("--quick", action="store_true", help="100 devices: a smoke run")
    parser.add_argument("--json", action="store_true", help="figures as JSON on stdout")
    args = parser.parse_args(argv)
    devices = 100 if args.quick else args.devices
    results: dict[str, Any] = {"devices": devices}
    with tempfile.TemporaryDirectory(prefix="puente-bench-") as folder:
        print(f"SQLite: {devices} devices ...", file=sys.stderr, flush=True)
        results["sqlite"] = measure(DeviceDatabase(path=Path(folder) / "relay.sqlite3"), devices)
    with postgres_database() as database:
        if isinstance(database, str):
            results["postgresql"] = None
            results["note"] = f"PostgreSQL not measured: {database}."
        else:
            print(f"PostgreSQL: {devices} devices ...", file=sys.stderr, flush=True)
            results["postgresql"] = measure(database, devices)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"Enrolled devices' storage, {devices} devices (milliseconds per operation)")
    print(f"{'operation':<16}{'SQLite':>10}{'PostgreSQL':>12}{'ratio':>8}")
    for name in OPERATIONS:
        lite = results["sqlite"][name]
        pg = results["postgresql"][name] if results["postgresql"] else None
        ratio = f"{pg / lite:>7.1f}x" if pg is not None and lite > 0 else "      -"
        shown = f"{pg:>12.3f}" if pg is not None else f"{'-':>12}"
        print(f"{name:<16}{lite:>10.3f}{shown}{ratio}")
    print("presence pass: one pass for all devices; the others: per device or result.")
    if "note" in results:
        print(results["note"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
