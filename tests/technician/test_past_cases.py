"""The technician's past cases (technician.past_cases): the relay's figures first, the
local outcomes file as the cache of them and the fallback, against a real in-process
relay and a relay address where nothing listens."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from relay.server import RelayServer
from relay.testing import add_technician, create_session
from technician.client import RelayAPI
from technician.outcomes import OutcomeStore
from technician.past_cases import PastCases
from tests.relay.test_rest import run_with_relay


def _nowhere() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"ws://127.0.0.1:{s.getsockname()[1]}"


def test_the_relay_first_then_its_cached_figures_then_own_runs(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay, "Ana")
        session = await create_session(relay, token, "T-9")
        api = RelayAPI(f"ws://127.0.0.1:{relay.port}", token)
        local = OutcomeStore(tmp_path / "outcomes.sqlite3")
        past = PastCases(api, local)

        def record(exit_status: int) -> str | None:
            return past.record(
                session_id=session["session_id"],
                ticket_id="T-9",
                problems=["dns-failing"],
                fix_id="flush-dns",
                version="1.0.0",
                exit_status=exit_status,
                now=1.0,
            )

        assert await asyncio.to_thread(record, 0) is None
        assert await asyncio.to_thread(record, 1) is None
        history = await asyncio.to_thread(past.history, ["dns-failing", "other"], 2.0)
        assert (past.source, history) == (
            "relay",
            {"dns-failing": {"flush-dns": (1, 2)}, "other": {}},
        )
        # A later triage still finds the problem: neither run solved it.
        await asyncio.to_thread(past.recheck, session["session_id"], ["dns-failing"])
        assert (await asyncio.to_thread(past.history, ["dns-failing"], 3.0)) == {
            "dns-failing": {"flush-dns": (0, 2)}
        }
        # The relay cannot be reached: its figures kept last time still rank.
        offline = PastCases(RelayAPI(_nowhere(), token), local)
        assert offline.history(["dns-failing"], 4.0) == {"dns-failing": {"flush-dns": (0, 2)}}
        assert offline.source == "cache"
        problem = offline.record(
            session_id=session["session_id"], ticket_id="T-9", problems=["dns-failing"],
            fix_id="renew-network", version="1.0.0", exit_status=0, now=5.0,
        )  # fmt: skip
        assert problem is not None and "noted on this computer only" in problem
        local.close()
        # Never any figures from the relay: this technician's own runs are the fallback.
        fresh = OutcomeStore(tmp_path / "fresh.sqlite3")
        fresh.record(
            session_id="s", ticket_id="T", problems=["dns-failing"], fix_id="flush-dns",
            fix_version="1.0.0", exit_status=0, now=1.0,
        )  # fmt: skip
        alone = PastCases(RelayAPI(_nowhere(), token), fresh)
        assert alone.history(["dns-failing"], 6.0) == {"dns-failing": {"flush-dns": (1, 1)}}
        assert alone.source == "local"
        fresh.close()

    run_with_relay(tmp_path, scenario)
