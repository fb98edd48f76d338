"""The join page over real HTTP (relay.joinpage): language, downloads, pictures, problems.

The page in a real browser is tests/relay/test_join_browser.py; escaping of what the
technician and the ticket carry is tests/relay/test_events.py.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from protocol.customer_words import PAGE_WORDS
from relay.config import RelayConfig
from relay.downloads import DownloadShelf
from relay.joinpage import page_language
from relay.server import RelayServer
from relay.testing import FakeClock, add_technician, create_session, http_request
from tests.support.timeouts import scaled

LINUX_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"


@pytest.mark.parametrize(
    ("accept", "chosen", "language"),
    [
        ("es-ES,es;q=0.9,en;q=0.8", None, "es"),
        ("en-US,en;q=0.9,es;q=0.8", None, "en"),
        ("fr-FR, es;q=0.5", None, "es"),
        ("fr, de", None, "en"),
        ("es;q=0, en;q=0.1", None, "en"),
        ("es;q=banana", None, "en"),
        ("", None, "en"),
        (None, None, "en"),
        ("en", "es", "es"),  # the page's own switch wins
        ("es", "fr", "es"),  # an unknown choice is ignored
    ],
)
def test_page_language(accept: str | None, chosen: str | None, language: str) -> None:
    assert page_language(accept, chosen) == language


def run(tmp_path: Path, scenario: Any, with_agents: bool = True, **settings: Any) -> None:
    if with_agents:
        shelf = DownloadShelf(tmp_path / "relay")
        for system in ("linux", "windows"):
            source = tmp_path / f"agent-{system}"
            source.write_bytes(system.encode() * 100_000)
            shelf.add(source, system, 0.0)

    async def main() -> None:
        config = RelayConfig(
            data_dir=tmp_path / "relay", port=0, close_timeout=scaled(1), **settings
        )
        async with RelayServer(config) as relay:
            token = add_technician(relay, "Ana")
            session = await create_session(relay, token, "HD-7")
            await scenario(relay, session)

    asyncio.run(asyncio.wait_for(main(), scaled(30)))


def join(session: dict[str, Any]) -> str:
    return f"/join/{session['session_id']}"


def test_spanish_from_accept_language_and_from_the_switch(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer, session: dict[str, Any]) -> None:
        spanish = await http_request(
            relay, "GET", join(session), headers={"Accept-Language": "es-MX,es;q=0.9"}
        )
        switched = await http_request(relay, "GET", join(session) + "?lang=es")
        english = await http_request(relay, "GET", join(session))
        for reply in (spanish, switched):
            page = reply.body.decode()
            assert '<html lang="es">' in page and "Su técnico le está esperando" in page
            assert 'href="?lang=en"' in page
            # Nothing of the page is left in English.
            for key, texts in PAGE_WORDS.items():
                english_text = texts["en"].split("{")[0].strip()
                if len(english_text) > 12 and key.startswith("join."):
                    assert english_text not in page, key
        page = english.body.decode()
        assert '<html lang="en">' in page and 'href="?lang=es"' in page
        bad = await http_request(relay, "GET", join(session) + "?lang=es&lang=en")
        assert bad.status == 400

    run(tmp_path, scenario)


def test_the_visitors_system_first_with_size_and_sha256(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer, session: dict[str, Any]) -> None:
        page = (
            await http_request(relay, "GET", join(session), headers={"User-Agent": LINUX_UA})
        ).body.decode()
        linux_sha = hashlib.sha256(b"linux" * 100_000).hexdigest()
        windows_sha = hashlib.sha256(b"windows" * 100_000).hexdigest()
        assert page.index(linux_sha) < page.index("<details>") < page.index(windows_sha)
        assert "Download for Linux (this computer)" in page
        assert f'download="puente-agent-{session["nameplate"]}"' in page
        assert f'download="puente-agent-{session["nameplate"]}.exe"' in page
        assert "0.5 MB" in page and "0.7 MB" in page
        assert f"chmod +x puente-agent-{session['nameplate']}" in page
        other = await http_request(
            relay, "GET", join(session), headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0)"}
        )
        assert other.body.decode().index(windows_sha) < other.body.decode().index(linux_sha)

    run(tmp_path, scenario)


def test_without_agents_the_page_says_who_gives_it(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer, session: dict[str, Any]) -> None:
        page = (await http_request(relay, "GET", join(session))).body.decode()
        assert "Your help desk will give you the Puente agent" in page
        assert 'class="download"' not in page

    run(tmp_path, scenario, with_agents=False)


def test_the_pictures_of_the_agent_are_served_and_allowed_by_the_policy(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer, session: dict[str, Any]) -> None:
        reply = await http_request(relay, "GET", join(session) + "?lang=es")
        policy = reply.headers["content-security-policy"]
        assert "img-src 'self'" in policy and "default-src 'none'" in policy
        assert "script-src" not in policy
        for name in ("agent-digits-es.png", "agent-session-es.png"):
            assert f'src="/join/assets/{name}"' in reply.body.decode()
            picture = await http_request(relay, "GET", f"/join/assets/{name}")
            assert picture.status == 200 and picture.headers["content-type"] == "image/png"
            assert picture.body[:8] == b"\x89PNG\r\n\x1a\n"
        missing = await http_request(relay, "GET", "/join/assets/nothing.png")
        assert missing.status == 404

    run(tmp_path, scenario, with_agents=False)


def test_problem_pages_speak_the_visitors_language(tmp_path: Path) -> None:
    clock = FakeClock()

    async def scenario(relay: RelayServer, session: dict[str, Any]) -> None:
        spanish = {"Accept-Language": "es"}
        unknown = await http_request(relay, "GET", f"/join/{'0' * 32}", headers=spanish)
        assert unknown.status == 404 and "Esa sesión no existe" in unknown.body.decode()
        clock.advance(601)
        gone = await http_request(relay, "GET", join(session), headers=spanish)
        assert gone.status == 410 and "ya no sirve" in gone.body.decode()
        english = await http_request(relay, "GET", join(session))
        assert "This session code no longer works" in english.body.decode()

    run(tmp_path, scenario, with_agents=False, clock=clock)
