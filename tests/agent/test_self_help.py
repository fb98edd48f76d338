"""Self-help in the agent (agent.self_help) with planted diagnostics snapshots, real
signed bundles, a real in-process relay and a scripted customer (a prompter that
answers as a person would and records what it was shown)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.audit import AgentLog
from agent.capabilities.base import ConsentPrompt
from agent.self_help import Offer, Published, find_offers, run_offer, run_self_help
from agent.trust import AgentTrust
from protocol.fixbundle import make_bundle
from protocol.identity import OrganisationSecret
from protocol.rulebook import issue_rule_book
from relay.self_help import publish_bundle
from relay.server import RelayServer
from relay.testing import http_request
from tests.relay.test_rest import run_with_relay
from tests.relay.test_self_help import ORG, _filed

STRANGER = OrganisationSecret("Stranger Org", Ed25519PrivateKey.generate())

#: An edited snapshot, as the triage tests use: one disk nearly full, DNS fine.
SNAPSHOT: dict[str, Any] = {
    "disks": [
        {"mountpoint": "/", "fstype": "ext4", "percent": 40.0, "free": 50 << 30, "total": 90 << 30},
        {
            "mountpoint": "/data",
            "fstype": "ext4",
            "percent": 97.0,
            "free": 1 << 20,
            "total": 9 << 30,
        },
    ],
    "network": {"dns": [{"name": "localhost", "ok": True}]},
}


def fix(fix_id: str, script: str = "print('done')\n", signer: OrganisationSecret | None = ORG,
        undo: str | None = None, expires_in: int = 86400, version: str = "1.0.0") -> bytes:  # fmt: skip
    manifest = f"""
id = "{fix_id}"
version = "{version}"
title = "Fix {fix_id}"
description = "Does {fix_id}."
platforms = ["linux", "macos", "windows"]
interpreter = "python"
script = "fix.py"
timeout = 20
needs_admin = false
risk = "low"
{'undo = "undo.py"' if undo is not None else ""}
"""
    now = int(time.time())
    return make_bundle(
        manifest.encode(),
        script.encode(),
        undo.encode() if undo is not None else None,
        signer=signer,
        signed_at=now - 60,
        expires_at=now + expires_in,
    )


def tampered(data: bytes) -> bytes:
    import base64

    document = json.loads(data)
    document["script"] = base64.b64encode(b"print('something else')\n").decode()
    return json.dumps(document).encode()


def trust() -> AgentTrust:
    return AgentTrust(organisation_key=ORG.public_key)


class Customer:
    """A scripted customer: picks ``choice`` (a fix id, or None to wait), answers each
    consent question from ``consents`` in turn (no when they run out), then ``fixed``."""

    def __init__(self, choice: str | None, consents: list[bool], fixed: bool = True) -> None:
        self.choice = choice
        self.consents = list(consents)
        self.answer_fixed = fixed
        self.shown: list[list[str]] = []
        self.prompts: list[ConsentPrompt] = []
        self.lines: list[str] = []

    async def choose(self, offers: Sequence[Offer]) -> Offer | None:
        self.shown.append([f"{o.fix_id} {o.record}" for o in offers])
        picked = next((o for o in offers if o.fix_id == self.choice), None)
        self.choice = None  # one try, then wait
        return picked

    async def confirm_run(self, offer: Offer, prompt: ConsentPrompt) -> bool:
        self.prompts.append(prompt)
        return self.consents.pop(0) if self.consents else False

    async def fixed(self, offer: Offer) -> bool:
        return self.answer_fixed

    def progress(self, text: str) -> None:
        self.lines.append(text)


def offers_for(published: Published, tmp_path: Path) -> tuple[list[Offer], str, list[str]]:
    log = AgentLog(tmp_path / "self-help.log")
    said: list[str] = []
    try:
        found = asyncio.run(find_offers(published, SNAPSHOT, trust(), log, said.append))
    finally:
        log.close()
    return found, (tmp_path / "self-help.log").read_text(), said


def test_only_fixes_the_pinned_key_vouches_for_are_offered_best_record_first(
    tmp_path: Path,
) -> None:
    rules = issue_rule_book(
        ORG,
        1,
        0,
        """
[[rule]]
problem = "disk-nearly-full"
title = "A disk is nearly full"
severity = "high"
for_each = "disks"
when = { path = "percent", op = ">=", value = 90 }
evidence = "{mountpoint} is full"
advice = "Free space."
fixes = ["unsigned-one", "foreign-one", "altered-one", "expired-one", "trash", "disk-cleanup"]
""",
    )
    published = Published(
        bundles=(
            fix("disk-cleanup"),
            fix("trash"),
            fix("unsigned-one", signer=None),
            fix("foreign-one", signer=STRANGER),
            tampered(fix("altered-one")),
            fix("expired-one", expires_in=-5),
            fix("not-suggested"),  # signed, but no finding suggests it
        ),
        rule_book=rules,
        history={"disk-nearly-full": {"trash": (1, 5), "disk-cleanup": (4, 5)}},
    )
    offers, log, said = offers_for(published, tmp_path)
    assert [(o.fix_id, o.solved, o.runs) for o in offers] == [
        ("disk-cleanup", 4, 5),
        ("trash", 1, 5),
    ]
    first = offers[0]
    assert first.problem == "disk-nearly-full"
    assert first.problem_title == "a disk is nearly full"  # the customer's words
    assert "/data is 97% full" in " ".join(first.evidence)
    assert first.record == "solved 4 of 5 past cases"
    assert first.request.self_help and first.request.fix.manifest.id == "disk-cleanup"
    for refusal in ("is not signed", "another organisation", "changed after it was signed",
                    "expired"):  # fmt: skip
        assert refusal in log, log
    assert said == []


def test_a_rule_book_the_pinned_key_did_not_sign_is_not_used(tmp_path: Path) -> None:
    foreign = issue_rule_book(
        STRANGER,
        1,
        0,
        """
[[rule]]
problem = "always"
title = "Always"
severity = "critical"
when = { path = "disks", op = "exists" }
evidence = "x"
advice = "x"
fixes = ["evil"]
""",
    )
    published = Published((fix("evil"), fix("disk-cleanup")), foreign, {})
    offers, log, said = offers_for(published, tmp_path)
    # The built-in rules still find the full disk and suggest disk-cleanup.
    assert [o.fix_id for o in offers] == ["disk-cleanup"]
    assert "rule book was not used" in log
    assert said and "not signed by your organisation" in said[0]


def test_a_run_asks_first_and_a_failed_run_offers_its_undo(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    script = f"open({str(marker)!r}, 'w').write('x'); raise SystemExit(4)\n"
    undo = f"import os; os.remove({str(marker)!r}); print('undone')\n"
    published = Published((fix("disk-cleanup", script, undo=undo),), None, {})
    [offer], _, _ = offers_for(published, tmp_path)

    async def run(customer: Customer) -> Any:
        log = AgentLog(tmp_path / "run.log")
        try:
            return await run_offer(offer, trust(), customer, log)
        finally:
            log.close()

    declined = Customer("disk-cleanup", [False])
    result = asyncio.run(run(declined))
    assert (result.ran, result.succeeded) == (False, False)
    assert not marker.exists()
    assert declined.prompts[0].title == "Fix: Fix disk-cleanup"
    assert "Values found on this computer" not in declined.prompts[0].detail  # none here
    assert any(name == "script" for name, _ in declined.prompts[0].documents)

    allowed = Customer("disk-cleanup", [True, True])
    result = asyncio.run(run(allowed))
    assert (result.ran, result.exit_status, result.succeeded) == (True, 4, False)
    assert [p.title for p in allowed.prompts] == [
        "Fix: Fix disk-cleanup",
        "Undo fix: Fix disk-cleanup",
    ]
    assert not marker.exists()  # undone
    assert any("did not finish successfully" in line for line in allowed.lines)
    assert any("undone" in line for line in allowed.lines)
    log = (tmp_path / "run.log").read_text()
    assert "You allowed (this run only): Undo fix: Fix disk-cleanup" in log


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_self_help_with_the_relay_unreachable_is_skipped_and_the_request_stays(
    tmp_path: Path,
) -> None:
    async def scenario(relay: RelayServer) -> None:
        request_id, customer_header = await _filed(relay)
        token = customer_header["Authorization"].removeprefix("Bearer ")
        customer = Customer("disk-cleanup", [True])
        solved = await run_self_help(
            f"http://127.0.0.1:{_dead_port()}", request_id, token, trust(), customer,
            log_dir=tmp_path / "logs", collect=lambda: SNAPSHOT,
        )  # fmt: skip
        assert solved is False
        assert customer.shown == [] and customer.prompts == []
        assert len(customer.lines) == 1
        assert "could not be fetched" in customer.lines[0]
        assert "your request is filed and keeps its place" in customer.lines[0]
        status = await http_request(
            relay, "GET", f"/help/requests/{request_id}",
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        assert (status.json()["state"], status.json()["position"]) == ("waiting", 1)

    run_with_relay(tmp_path, scenario)


def test_self_help_through_a_real_relay_solves_the_request(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        publish_bundle(relay.store, fix("disk-cleanup"), relay.config.clock())
        request_id, customer_header = await _filed(relay)
        token = customer_header["Authorization"].removeprefix("Bearer ")
        customer = Customer("disk-cleanup", [True])
        solved = await run_self_help(
            f"http://127.0.0.1:{relay.port}", request_id, token, trust(), customer,
            log_dir=tmp_path / "logs", collect=lambda: SNAPSHOT,
        )  # fmt: skip
        assert solved is True, customer.lines
        assert customer.shown == [["disk-cleanup not tried before"]]
        assert any("Glad it is fixed" in line for line in customer.lines)
        status = await http_request(
            relay, "GET", f"/help/requests/{request_id}",
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        assert status.json()["state"] == "solved"
        [(problem, category, fix_id, solved_runs, runs)] = relay.store.outcome_figures()
        assert (problem, category, fix_id, solved_runs, runs) == (
            "disk-nearly-full", "storage", "disk-cleanup", 1, 1,
        )  # fmt: skip

    run_with_relay(tmp_path, scenario)
