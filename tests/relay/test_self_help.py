"""Self-help and past cases at the relay: publishing signed fixes and rule books, the
outcome store and its figures, the agents' and technicians' routes, and ranking from
the relay's figures."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.categories import Category, issue_category_list
from protocol.fixbundle import make_bundle
from protocol.identity import OrganisationSecret
from protocol.past_cases import parse_history
from protocol.rulebook import issue_rule_book
from protocol.triage import load_rules, rank, triage
from relay.errors import ConfigError
from relay.self_help import figures_json, publish_bundle, publish_rules
from relay.self_help_sql import FixOutcome
from relay.server import RelayServer
from relay.sqlite_store import SQLiteStore
from relay.store import RelayStore
from relay.testing import add_technician, create_session, http_request
from tests.relay.test_postgres import database_url, store  # noqa: F401  (fixtures)
from tests.relay.test_rest import run_with_relay
from tests.support.services import postgres_server  # noqa: F401  (fixture)

ORG = OrganisationSecret("Example Org", Ed25519PrivateKey.generate())
OTHER = OrganisationSecret("Other Org", Ed25519PrivateKey.generate())
MANIFEST = """\
id = "{id}"
version = "{version}"
title = "Free disk space"
description = "Removes temporary files."
platforms = ["linux"]
interpreter = "sh"
script = "fix.sh"
timeout = 30
needs_admin = false
risk = "low"
"""
RULES = """\
[[rule]]
problem = "printer-queue-stuck"
title = "The printer queue is stuck"
severity = "medium"
when = { path = "printing.stuck", op = "==", value = true }
evidence = "{printing.stuck}"
advice = "Clear the queue."
fixes = ["clear-print-queue"]
"""


def bundle(
    fix_id: str = "disk-cleanup",
    version: str = "1.0.0",
    signer: OrganisationSecret | None = ORG,
    expires_in: int = 86400,
) -> bytes:
    now = int(time.time())
    manifest = MANIFEST.format(id=fix_id, version=version).encode()
    return make_bundle(
        manifest, b"echo cleaned\n", signer=signer, signed_at=now - 60, expires_at=now + expires_in
    )


def outcome(problem: str, fix: str, solved: bool, **kw: str) -> FixOutcome:
    return FixOutcome(
        kw.get("organisation_key", ORG.key_id),
        kw.get("source", "customer"),
        kw.get("reporter", "r1"),
        kw.get("session_id", "r1"),
        "T-1",
        kw.get("category", "storage"),
        problem,
        fix,
        "1.0.0",
        0 if solved else 1,
        solved,
    )


# Publishing ---------------------------------------------------------------------------


def test_publishing_keeps_signed_fixes_and_refuses_what_agents_would_refuse(
    tmp_path: Path,
) -> None:
    db = SQLiteStore(tmp_path)
    now = time.time()
    kept = publish_bundle(db, bundle(), now)
    assert (kept.fix_id, kept.version, kept.platforms) == ("disk-cleanup", "1.0.0", ("linux",))
    # A newer version replaces it; going back is refused.
    publish_bundle(db, bundle(version="1.1.0"), now)
    assert [f.version for f in db.published_fixes(ORG.key_id)] == ["1.1.0"]
    with pytest.raises(ConfigError, match="already offers disk-cleanup 1.1.0"):
        publish_bundle(db, bundle(version="1.0.5"), now)
    with pytest.raises(ConfigError, match="not signed.*puente-tech fix sign"):
        publish_bundle(db, bundle(signer=None), now)
    with pytest.raises(ConfigError, match="expired"):
        publish_bundle(db, bundle(expires_in=-10), now)
    with pytest.raises(ConfigError, match="not a Puente fix bundle"):
        publish_bundle(db, b"{}", now)
    # Once the organisation's key is known (its category list), an altered bundle is
    # refused at once rather than only by every agent.
    db.set_categories(
        ORG.key_id, issue_category_list(ORG, 1, 0, [Category("storage", "Storage")]).decode(), now
    )
    document = json.loads(bundle(version="1.2.0"))
    document["script"] = base64.b64encode(b"rm -rf ~\n").decode()
    altered = json.dumps(document).encode()
    with pytest.raises(ConfigError, match="agents would refuse this fix"):
        publish_bundle(db, altered, now)
    assert [f.version for f in db.published_fixes()] == ["1.1.0"]


def test_rule_books_are_kept_by_number(tmp_path: Path) -> None:
    db = SQLiteStore(tmp_path)
    publish_rules(db, issue_rule_book(ORG, 2, 0, RULES), 1.0)
    assert db.rule_book(ORG.key_id)[0] == 2  # type: ignore[index]
    with pytest.raises(ConfigError, match="number 2 .* newer than number 1"):
        publish_rules(db, issue_rule_book(ORG, 1, 0, RULES), 2.0)
    with pytest.raises(ConfigError, match="not a signed rule book"):
        publish_rules(db, bundle(), 3.0)


# The outcome db and its figures ------------------------------------------------------


def test_figures_count_per_problem_fix_and_category_and_per_organisation(tmp_path: Path) -> None:
    db = SQLiteStore(tmp_path)
    db.record_outcomes(
        [
            outcome("disk-nearly-full", "disk-cleanup", True),
            outcome("disk-nearly-full", "disk-cleanup", True, category="other"),
            outcome("disk-nearly-full", "disk-cleanup", False),
            outcome("disk-nearly-full", "empty-trash", True, organisation_key=OTHER.key_id),
            # A technician's run (no organisation known): counts for every organisation.
            outcome(
                "disk-nearly-full",
                "empty-trash",
                True,
                organisation_key="",
                source="technician",
                reporter="tech",
                session_id="s1",
            ),
        ],
        now=1.0,
    )
    mine = figures_json(db.outcome_figures(ORG.key_id))
    assert mine["problems"] == {
        "disk-nearly-full": {
            "disk-cleanup": {"solved": 2, "runs": 3},
            "empty-trash": {"solved": 1, "runs": 1},
        }
    }
    assert mine["categories"]["storage"]["disk-nearly-full"]["disk-cleanup"] == {
        "solved": 1,
        "runs": 2,
    }
    everyone = figures_json(db.outcome_figures())
    assert everyone["problems"]["disk-nearly-full"]["empty-trash"] == {"solved": 2, "runs": 2}
    # A later triage of the technician's session still finds the problem: not solved.
    assert db.unsolve_outcomes("s1", "tech", ["disk-nearly-full"]) == 1
    assert db.unsolve_outcomes("s1", "someone-else", ["disk-nearly-full"]) == 0
    everyone = figures_json(db.outcome_figures())
    assert everyone["problems"]["disk-nearly-full"]["empty-trash"] == {"solved": 1, "runs": 2}


def test_ranking_reads_the_relays_figures() -> None:
    """Triage offers a problem's fixes best first by the organisation's past cases,
    as the relay serves them; nonsense in an answer is dropped, never trusted."""
    snapshot = {"network": {"dns": [{"name": "example.org", "ok": False, "error": "timeout"}]}}
    findings = triage(snapshot, load_rules())
    assert [s.fix_id for s in findings[0].suggestions] == ["flush-dns", "renew-network"]
    served = {
        "dns-failing": {
            "flush-dns": {"solved": 1, "runs": 6},
            "renew-network": {"solved": 5, "runs": 6},
            "Bad Fix": {"solved": 9, "runs": 9},
        },
        "other": {"x-fix": {"solved": 7, "runs": 3}},  # more solved than runs: dropped
    }
    history = parse_history(served)
    assert history == {
        "dns-failing": {"flush-dns": (1, 6), "renew-network": (5, 6)},
        "other": {},
    }
    ranked = rank(findings, history)[0].suggestions
    assert [(s.fix_id, s.solved, s.runs) for s in ranked] == [
        ("renew-network", 5, 6),
        ("flush-dns", 1, 6),
    ]


# The routes -------------------------------------------------------------------------------


async def _filed(relay: RelayServer) -> tuple[str, dict[str, str]]:
    """A help request filed over HTTP: its id and the customer's Authorization header."""
    document = issue_category_list(ORG, 1, 0, [Category("storage", "Storage")]).decode()
    relay.store.set_categories(ORG.key_id, document, relay.config.clock())
    filed = await http_request(
        relay,
        "POST",
        "/help/requests",
        json_body={
            "organisation_key": ORG.key_id,
            "description": "My disk is full",
            "category": "storage",
        },
    )
    assert filed.status == 201, filed.body
    view = filed.json()
    return view["request_id"], {"Authorization": f"Bearer {view['token']}"}


def test_a_waiting_customer_gets_its_organisations_fixes_and_closes_it_as_solved(
    tmp_path: Path,
) -> None:
    async def scenario(relay: RelayServer) -> None:
        now = relay.config.clock()
        publish_bundle(relay.store, bundle(), now)
        publish_bundle(relay.store, bundle("empty-trash", signer=OTHER), now)
        publish_rules(relay.store, issue_rule_book(ORG, 1, 0, RULES), now)
        relay.store.record_outcomes([outcome("disk-nearly-full", "disk-cleanup", True)], now)
        request_id, customer = await _filed(relay)
        path = f"/help/requests/{request_id}"
        stranger = await http_request(
            relay, "GET", path + "/self-help", headers={"Authorization": "Bearer guess"}
        )
        assert stranger.status == 404
        offer = await http_request(relay, "GET", path + "/self-help", headers=customer)
        assert offer.status == 200, offer.body
        served = offer.json()
        assert [f["fix"] for f in served["fixes"]] == ["disk-cleanup"]  # not the other org's
        assert served["rules"] and "printer-queue-stuck" in served["rules"]
        assert served["past_cases"]["problems"]["disk-nearly-full"]["disk-cleanup"] == {
            "solved": 1,
            "runs": 1,
        }
        assert served["category"] == "storage"

        def run(fix: str = "disk-cleanup", fixed: bool = False, **kw: object) -> dict[str, object]:
            return {
                "problem": "disk-nearly-full",
                "fix": fix,
                "version": "1.0.0",
                "exit_status": 0,
                "fixed": fixed,
                **kw,
            }

        # Bad input is refused with a sentence, and records nothing.
        unknown = await http_request(
            relay, "POST", path + "/outcomes", headers=customer, json_body=run("empty-trash")
        )
        assert (
            unknown.status == 400
            and "not a fix your organisation published" in unknown.json()["message"]
        )
        extra = await http_request(
            relay, "POST", path + "/outcomes", headers=customer, json_body=run(extra=1)
        )
        assert extra.status == 400 and "exactly these fields" in extra.json()["message"]
        # "Still broken": recorded, and the customer keeps their place.
        broken = await http_request(
            relay, "POST", path + "/outcomes", headers=customer, json_body=run()
        )
        assert broken.status == 201, broken.body
        assert (broken.json()["state"], broken.json()["position"]) == ("waiting", 1)
        # "That fixed it": solved, and the help desk hears of it.
        fixed = await http_request(
            relay, "POST", path + "/outcomes", headers=customer, json_body=run(fixed=True)
        )
        assert fixed.status == 201 and fixed.json()["state"] == "solved"
        events = [e for e in relay.store.audit_entries() if e.session_id == request_id]
        solved = [e for e in events if e.type == "request.solved"]
        assert len(solved) == 1
        assert json.loads(solved[0].data)["outcome"]["fix"] == "disk-cleanup"
        figures = figures_json(relay.store.outcome_figures(ORG.key_id))
        assert figures["problems"]["disk-nearly-full"]["disk-cleanup"] == {"solved": 2, "runs": 3}
        # The request no longer waits: no more self-help.
        closed = await http_request(relay, "GET", path + "/self-help", headers=customer)
        assert closed.status == 409 and "solved" in closed.json()["message"]

    run_with_relay(tmp_path, scenario)


def test_a_customer_reports_a_few_runs_at_most(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        publish_bundle(relay.store, bundle(), relay.config.clock())
        request_id, customer = await _filed(relay)
        body = {
            "problem": "disk-nearly-full",
            "fix": "disk-cleanup",
            "version": "1.0.0",
            "exit_status": 1,
            "fixed": False,
        }
        path = f"/help/requests/{request_id}/outcomes"
        statuses = [
            (await http_request(relay, "POST", path, headers=customer, json_body=body)).status
            for _ in range(6)
        ]
        assert statuses == [201] * 5 + [429]

    run_with_relay(tmp_path, scenario)


def test_technicians_report_runs_of_their_own_sessions_and_read_the_figures(
    tmp_path: Path,
) -> None:
    async def scenario(relay: RelayServer) -> None:
        ana, bo = add_technician(relay, "Ana"), add_technician(relay, "Bo")
        session = await create_session(relay, ana, "T-7")
        as_ana = {"Authorization": f"Bearer {ana}"}
        body = {
            "session_id": session["session_id"],
            "problems": ["disk-nearly-full", "disk-nearly-full"],
            "fix": "disk-cleanup",
            "version": "1.0.0",
            "exit_status": 0,
        }
        stolen = await http_request(
            relay,
            "POST",
            "/api/outcomes",
            headers={"Authorization": f"Bearer {bo}"},
            json_body=body,
        )
        assert stolen.status == 404
        recorded = await http_request(
            relay, "POST", "/api/outcomes", headers=as_ana, json_body=body
        )
        assert (recorded.status, recorded.json()) == (201, {"recorded": 1})
        bad = await http_request(
            relay, "POST", "/api/outcomes", headers=as_ana, json_body={**body, "fix": "Bad Fix"}
        )
        assert bad.status == 400 and "fix and version" in bad.json()["message"]
        read = await http_request(relay, "GET", "/api/outcomes", headers=as_ana)
        assert read.json()["problems"] == {
            "disk-nearly-full": {"disk-cleanup": {"solved": 1, "runs": 1}}
        }
        again = await http_request(
            relay,
            "POST",
            "/api/outcomes/recheck",
            headers=as_ana,
            json_body={"session_id": session["session_id"], "present": ["disk-nearly-full"]},
        )
        assert (again.status, again.json()) == (200, {"changed": 1})
        read = await http_request(relay, "GET", "/api/outcomes", headers=as_ana)
        assert read.json()["problems"]["disk-nearly-full"]["disk-cleanup"] == {
            "solved": 0,
            "runs": 1,
        }
        assert (await http_request(relay, "GET", "/api/outcomes")).status == 401

    run_with_relay(tmp_path, scenario)


# The same in both stores: SQLite and a real PostgreSQL ----------------------------------


def test_published_fixes_and_past_cases_in_both_stores(store: RelayStore) -> None:  # noqa: F811
    now = time.time()
    publish_bundle(store, bundle(), now)
    publish_bundle(store, bundle(version="1.0.1"), now)  # replaces, same id and systems
    publish_rules(store, issue_rule_book(ORG, 3, 0, RULES), now)
    [kept] = store.published_fixes(ORG.key_id)
    assert (kept.fix_id, kept.version, kept.platforms) == ("disk-cleanup", "1.0.1", ("linux",))
    assert store.published_fixes(OTHER.key_id) == []
    assert store.rule_book(ORG.key_id)[0] == 3  # type: ignore[index]
    store.record_outcomes(
        [
            outcome("disk-nearly-full", "disk-cleanup", True),
            outcome("disk-nearly-full", "disk-cleanup", False, session_id="r2", reporter="r2"),
            outcome(
                "disk-nearly-full",
                "disk-cleanup",
                True,
                organisation_key=OTHER.key_id,
                session_id="r3",
                reporter="r3",
            ),
        ],
        now,
    )
    assert store.count_outcomes("r1", "customer") == 1
    assert store.outcome_figures(ORG.key_id) == [
        ("disk-nearly-full", "storage", "disk-cleanup", 1, 2)
    ]
    assert store.outcome_figures() == [("disk-nearly-full", "storage", "disk-cleanup", 2, 3)]
    assert store.unsolve_outcomes("r1", "r1", ["disk-nearly-full"]) == 1
    assert store.outcome_figures(ORG.key_id)[0][3] == 0
    assert store.withdraw_fix(ORG.key_id, "disk-cleanup") == 1
    assert store.published_fixes() == []
