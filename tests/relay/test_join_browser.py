"""The join page in a real headless Chromium (acceptances 1 and 4 of issue 19).

A real relay process with a Linux and a Windows agent added by ``puente-relay
downloads add``; a real technician console makes the session (its code's secret stays
with it); Chromium opens the join link from the console. In Spanish (``--accept-lang
es``) on Linux the page speaks Spanish and offers the Linux agent first; the browser
downloads it and the file's SHA-256 is the one the page shows, under a name that holds
the nameplate and not the secret. In English the switch leads to the Spanish page, and
a Windows browser is offered the ``.exe`` first. Screenshots at desktop and phone
widths in both languages are saved in the test's folder (``screenshots/``). The
technician's name and the ticket carry markup that must stay text.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.browser import Browser, chromium, chromium_or_skip
from tests.support.customer import Process
from tests.support.relay import RelayProcess, start_relay
from tests.support.timeouts import scaled

TECHNICIAN = 'Ana <b onclick="x()">Lopez</b>'
TICKET = "HD-7 <script>alert(1)</script>"
WINDOWS_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/156.0 Safari"

pytestmark = pytest.mark.timeout(300)


def add_agent(relay: RelayProcess, path: Path, system: str, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(hashlib.sha256(system.encode()).digest() * (size // 32))
    subprocess.run(
        [sys.executable, "-m", "relay.cli", "downloads", "add", str(path), "--os", system]
        + ["--data-dir", str(relay.data_dir)],
        check=True,
        capture_output=True,
        timeout=scaled(30),
    )


def offered(html: str) -> list[tuple[str, str, str, str]]:
    """(system, href, file name, SHA-256) of each download, in page order."""
    return re.findall(
        r'data-os="(\w+)"><p><a class="download" href="([^"]+)" download="([^"]+)">'
        r'.*?<code class="sha256">([0-9a-f]{64})</code>',
        html,
    )


def test_a_real_browser_gets_the_agent_in_the_customers_language(tmp_path: Path) -> None:
    chromium_or_skip()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    relay = start_relay(tmp_path / "relay")
    tech: Process | None = None
    try:
        add_agent(relay, tmp_path / "build" / "linux" / "puente-agent", "linux", 3_000_000)
        add_agent(relay, tmp_path / "build" / "win" / "puente-agent.exe", "windows", 2_000_000)
        token = relay.add_technician(TECHNICIAN)
        tech = Process(
            [sys.executable, "-m", "technician.cli", "--relay", relay.ws_url, "--token", token]
            + ["session", "--ticket", TICKET, "--wait", "120"],
            stdin=True,
        )
        code = tech.expect(r"^code: (\S+)$").group(1)
        link = tech.expect(r"^Join page for the customer.*: (http\S+)$").group(1)
        nameplate, secret = code.split("-")[0], "".join(code.split("-")[1:])
        with urllib.request.urlopen(link, timeout=scaled(10)) as page:
            policy = page.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy

        asyncio.run(spanish_on_linux(tmp_path, link, nameplate, secret, shots))
        asyncio.run(english_then_the_switch(tmp_path, link, nameplate, shots))
    finally:
        if tech is not None:
            tech.kill()
            tech.close()
        relay.stop()
    for name in ("es-desktop", "es-phone", "en-desktop", "en-phone"):
        assert (shots / f"join-{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshots of the join page: {shots}")


async def spanish_on_linux(
    tmp_path: Path, link: str, nameplate: str, secret: str, shots: Path
) -> None:
    async with chromium(tmp_path / "chromium-es", "--lang=es", "--accept-lang=es") as browser:
        html = await browser.open(link)
        assert '<html lang="es">' in html
        assert "Su técnico le está esperando" in html
        assert "Escriba las 6 cifras que le lee su técnico, tras " + nameplate in html
        await check_markup_stays_text(browser, html)
        downloads = offered(html)
        assert [system for system, *_ in downloads] == ["linux", "windows"]  # Linux first
        system, href, shown_name, shown_sha = downloads[0]
        assert href.endswith("/agent/linux") and shown_name == f"puente-agent-{nameplate}"
        assert "chmod +x puente-agent-" + nameplate in html
        await browser.screenshot(shots / "join-es-desktop.png", 1280, mobile=False)
        await browser.screenshot(shots / "join-es-phone.png", 390, mobile=True)
        await browser.command(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=800,
            deviceScaleFactor=1,
            mobile=False,
        )
        saved = await download_first(browser, tmp_path / "Downloads")
        assert saved.name == f"puente-agent-{nameplate}"
        assert secret not in saved.name
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == shown_sha


async def english_then_the_switch(tmp_path: Path, link: str, nameplate: str, shots: Path) -> None:
    async with chromium(tmp_path / "chromium-en", "--lang=en-US", "--accept-lang=en-US") as browser:
        html = await browser.open(link)
        assert '<html lang="en">' in html and "Your technician is waiting for you" in html
        await browser.screenshot(shots / "join-en-desktop.png", 1280, mobile=False)
        await browser.screenshot(shots / "join-en-phone.png", 390, mobile=True)
        await browser.click(".lang a")
        await browser.event("Page.loadEventFired")
        switched = await browser.html()
        assert '<html lang="es">' in switched and "Descargar para Linux" in switched
        # A Windows browser gets the .exe first.
        await browser.command("Network.setUserAgentOverride", userAgent=WINDOWS_UA)
        windows = offered(await browser.open(link))
        assert windows[0][0] == "windows" and windows[0][2] == f"puente-agent-{nameplate}.exe"


async def check_markup_stays_text(browser: Browser, html: str) -> None:
    document = await browser.command("DOM.getDocument", depth=-1)
    root = document["root"]["nodeId"]
    for selector in ("script", "b", "[onclick]", "img:not([src^='/join/assets/'])"):
        found = await browser.command("DOM.querySelector", nodeId=root, selector=selector)
        assert found["nodeId"] == 0, f"{selector} became markup"
    assert "Ana &lt;b onclick=" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def download_first(browser: Browser, folder: Path) -> Path:
    """Click the first download button and wait for Chromium to finish saving it."""
    folder.mkdir()
    await browser.command(
        "Browser.setDownloadBehavior",
        page=False,
        behavior="allow",
        downloadPath=str(folder),
        eventsEnabled=True,
    )
    await browser.click(".os.mine a.download")
    began = await browser.event("Browser.downloadWillBegin")
    while True:
        progress = await browser.event("Browser.downloadProgress", timeout=60)
        if progress["guid"] == began["guid"] and progress["state"] in ("completed", "canceled"):
            break
    assert progress["state"] == "completed"
    return folder / began["suggestedFilename"]
