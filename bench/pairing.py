"""Code-less pairing (SIGMA-I with a certificate) against the code flow (SPAKE2), in one run.

Both pairings are sans-I/O (:mod:`protocol.cert_pairing`, :mod:`protocol.pairing`), so
this measures their cryptography alone, in this process, with no network: the time
from the first message made to both ends holding the session keys, for

* the code flow: SPAKE2 on the whole code, key confirmation both ways (the peer);
* code-less, anonymous agent (a help request): X25519 both ways, the technician's
  certificate checked against the pinned key, its signature, two MACs;
* code-less, with a device key (an enrolled device): one more signature and check.

It prints the median and the 90th percentile in milliseconds and each one's ratio to
the code flow measured in the same run (goal: code-less under 2x the code flow; the
relay round trips, which are the same count, dominate on a real network anyway).

Run from the checkout::

    .venv/bin/python bench/pairing.py            # about 10 s
    .venv/bin/python bench/pairing.py --quick    # under a second, rough figures
    .venv/bin/python bench/pairing.py --json     # results as JSON on stdout

Exit status 0: every pairing measured and every run ended with matching keys; 1: a
pairing failed (the sentence says which).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from protocol.cert_pairing import (  # noqa: E402
    AgentHandshake,
    Rendezvous,
    TechnicianHandshake,
    TechnicianPolicy,
    TechnicianProof,
)
from protocol.code import SessionCode  # noqa: E402
from protocol.envelope import Role  # noqa: E402
from protocol.identity import OrganisationSecret, issue_certificate  # noqa: E402
from protocol.pairing import Pairing, SessionKeys  # noqa: E402

GOAL_RATIO = 2.0
NOW = int(time.time())


def code_flow() -> tuple[SessionKeys, SessionKeys]:
    code = SessionCode.parse("417-862-093")
    agent, tech = Pairing(Role.AGENT, code, "T-1"), Pairing(Role.TECHNICIAN, code, "T-1")
    msg_a, msg_b = agent.start(), tech.start()
    tag_a, tag_b = agent.receive_pake(msg_b), tech.receive_pake(msg_a)
    return agent.receive_confirm(tag_b), tech.receive_confirm(tag_a)


def code_less(device: bool) -> Callable[[], tuple[SessionKeys, SessionKeys]]:
    org = OrganisationSecret("Acme Help Desk", Ed25519PrivateKey.generate())
    key = Ed25519PrivateKey.generate()
    proof = TechnicianProof(
        issue_certificate(org, "Ana Lopez", key.public_key(), NOW - 60, NOW + 86400), key
    )
    policy = TechnicianPolicy(org.public_key)
    device_key = Ed25519PrivateKey.generate() if device else None
    place = Rendezvous("417", "T-1")

    def pair() -> tuple[SessionKeys, SessionKeys]:
        agent = AgentHandshake(place, policy, NOW, device_key)
        tech = TechnicianHandshake(place, proof)
        finish = agent.receive_reply(tech.receive_hello(agent.start()))
        tech_keys = tech.receive_finish(finish)
        assert agent.keys is not None
        return agent.keys, tech_keys

    return pair


def measure(pair: Callable[[], tuple[SessionKeys, SessionKeys]], rounds: int) -> list[float]:
    times: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        agent, tech = pair()
        times.append((time.perf_counter() - started) * 1000)
        if agent.send_key != tech.recv_key or agent.sas != tech.sas:
            raise RuntimeError("the two ends did not agree keys")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else "",
        epilog="Figures and their discussion: docs/PERFORMANCE.md ('Pairing').",
    )
    parser.add_argument("--rounds", type=int, default=300, help="pairings per kind (300)")
    parser.add_argument("--quick", action="store_true", help="20 rounds: rough figures")
    parser.add_argument("--json", action="store_true", help="results as one JSON object")
    args = parser.parse_args(argv)
    rounds = 20 if args.quick else args.rounds
    if rounds < 5:
        print("--rounds must be at least 5 for a median and a 90th percentile.", file=sys.stderr)
        return 1
    kinds = {
        "code flow (SPAKE2)": code_flow,
        "code-less, anonymous agent": code_less(device=False),
        "code-less, device key": code_less(device=True),
    }
    results: dict[str, dict[str, float]] = {name: {} for name in kinds}
    samples: dict[str, list[float]] = {name: [] for name in kinds}
    try:
        for _ in range(3):  # alternated passes, so a busy moment hits every kind alike
            for name, pair in kinds.items():
                samples[name] += measure(pair, max(1, rounds // 3))
    except (RuntimeError, AssertionError) as exc:
        print(f"A pairing failed: {exc}", file=sys.stderr)
        return 1
    peer = statistics.median(samples["code flow (SPAKE2)"])
    for name, times in samples.items():
        median = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        results[name] = {"median_ms": median, "p90_ms": p90, "ratio": median / peer}
    if args.json:
        print(json.dumps({"rounds": rounds, "goal_ratio": GOAL_RATIO, "results": results}))
        return 0
    print(f"Pairing, {rounds} rounds each, sans-I/O (no network), this process")
    print(f"{'kind':<30} {'median ms':>10} {'p90 ms':>8} {'vs code flow':>13}")
    for name, row in results.items():
        print(f"{name:<30} {row['median_ms']:>10.2f} {row['p90_ms']:>8.2f} {row['ratio']:>12.2f}x")
    worst = max(row["ratio"] for name, row in results.items() if name.startswith("code-less"))
    verdict = "met   " if worst <= GOAL_RATIO else "MISSED"
    print(f"Goals\n  [{verdict}] code-less pairing under {GOAL_RATIO:g}x the code flow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
