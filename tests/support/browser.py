"""A real headless Chromium (Debian's ``chromium``) driven over the DevTools protocol.

No selenium: Chromium is started with ``--remote-debugging-port=0`` and a fresh profile,
the port is read from the ``DevToolsActivePort`` file it writes, and commands go over
one WebSocket (the ``websockets`` dependency) with flat sessions, as DevTools does.
The browser runs the way the issue asks: headless, no sandbox (root in CI), no GPU, no
QUIC, nothing fetched in the background.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support.timeouts import scaled

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
]


def chromium_or_skip() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("Debian's chromium is not installed; run .ci/system-packages as root")
    return found


class Browser:
    """One Chromium process and one page in it (:meth:`command` sends to the page)."""

    def __init__(self, socket: ClientConnection, session: str) -> None:
        self._socket = socket
        self._session = session
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        async for text in self._socket:
            message = json.loads(text)
            if "id" in message and message["id"] in self._waiting:
                self._waiting.pop(message["id"]).set_result(message)
            else:
                self.events.put_nowait(message)

    async def command(self, method: str, page: bool = True, **params: Any) -> dict[str, Any]:
        """Send one DevTools command (to the page, or the browser) and return its result."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if page:
            message["sessionId"] = self._session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[number] = future
        await self._socket.send(json.dumps(message))
        reply = await asyncio.wait_for(future, scaled(30))
        if "error" in reply:
            raise AssertionError(f"{method} failed: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        """The next event named ``method`` (others before it are dropped)."""
        async with asyncio.timeout(scaled(timeout)):
            while True:
                message = await self.events.get()
                if message.get("method") == method:
                    params: dict[str, Any] = message.get("params", {})
                    return params

    async def open(self, url: str) -> str:
        """Load ``url`` and return the page's HTML as the browser holds it."""
        await self.command("Page.navigate", url=url)
        await self.event("Page.loadEventFired")
        return await self.html()

    async def html(self) -> str:
        document = await self.command("DOM.getDocument", depth=0)
        outer = await self.command("DOM.getOuterHTML", nodeId=document["root"]["nodeId"])
        return str(outer["outerHTML"])

    async def click(self, selector: str) -> None:
        """Click the first element matching ``selector`` with the mouse, as a person does."""
        document = await self.command("DOM.getDocument", depth=0)
        found = await self.command(
            "DOM.querySelector", nodeId=document["root"]["nodeId"], selector=selector
        )
        assert found["nodeId"], f"nothing on the page matches {selector}"
        await self.command("DOM.scrollIntoViewIfNeeded", nodeId=found["nodeId"])
        box = await self.command("DOM.getBoxModel", nodeId=found["nodeId"])
        quad = box["model"]["content"]
        x, y = (quad[0] + quad[4]) / 2, (quad[1] + quad[5]) / 2
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.command(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
            )

    async def screenshot(self, path: Path, width: int, mobile: bool) -> Path:
        """The whole page at ``width`` CSS pixels (a phone: ``mobile``), as PNG."""
        await self.command(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=800,
            deviceScaleFactor=1,
            mobile=mobile,
        )
        metrics = await self.command("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        shot = await self.command(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1},
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@contextlib.asynccontextmanager
async def chromium(profile: Path, *extra_flags: str) -> AsyncIterator[Browser]:
    """A fresh headless Chromium with one blank page; killed on the way out."""
    binary = chromium_or_skip()
    profile.mkdir(parents=True)
    with (profile.parent / f"{profile.name}.stderr.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", *extra_flags, "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        port_file = profile / "DevToolsActivePort"
        async with asyncio.timeout(scaled(30)):
            while not port_file.exists() or len(port_file.read_text().split()) < 2:
                assert process.poll() is None, "chromium stopped at start"
                await asyncio.sleep(0.05)
        port, path = port_file.read_text().split()[:2]
        async with connect(f"ws://127.0.0.1:{port}{path}", max_size=None) as socket:
            browser = Browser(socket, "")
            reader = asyncio.create_task(browser._read())
            try:
                targets = await browser.command("Target.getTargets", page=False)
                page = next(t for t in targets["targetInfos"] if t["type"] == "page")
                attached = await browser.command(
                    "Target.attachToTarget", page=False, targetId=page["targetId"], flatten=True
                )
                browser._session = attached["sessionId"]
                for domain in ("Page", "DOM"):
                    await browser.command(f"{domain}.enable")
                yield browser
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
    finally:
        process.kill()
        process.wait(timeout=scaled(10))
