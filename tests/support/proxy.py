"""A recording TCP proxy: everything that crosses it is kept for inspection.

It runs its own event loop in a thread, so subprocess-based tests can put it
between a real agent and a real relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class RecordingProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.upstream = bytearray()  # client -> relay
        self.downstream = bytearray()  # relay -> client
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def recorded(self) -> bytes:
        return bytes(self.upstream) + bytes(self.downstream)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, log: bytearray
        ) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    log.extend(data)
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(
            pipe(reader, up_writer, self.upstream), pipe(up_reader, writer, self.downstream)
        )


class FaultInjectingProxy(RecordingProxy):
    """A TCP proxy that can cut the network: ``cut()`` drops every connection at once
    (as a dead Wi-Fi would, without any close handshake) and refuses new ones until
    ``restore()``. ``rate`` (bytes per second, each direction) makes it a slow link, so
    a transfer lasts long enough to be cut in the middle. Put it between an agent and a
    real relay.
    """

    def __init__(self, target_host: str, target_port: int, rate: float | None = None) -> None:
        super().__init__(target_host, target_port)
        self._cut = threading.Event()
        self.rate = rate
        self.connections = 0
        self.refused = 0

    def cut(self) -> None:
        self._cut.set()
        asyncio.run_coroutine_threadsafe(self._abort_all(), self._loop).result(10)

    def restore(self) -> None:
        self._cut.clear()

    async def _abort_all(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut.is_set():
            self.refused += 1
            writer.transport.abort()
            return
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(16384):
                    dst.write(data)
                    await dst.drain()
                    if self.rate:
                        await asyncio.sleep(len(data) / self.rate)
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


#: What the relay says about itself (its Server header, its program's name, which also
#: shows in the customer's process list): finding it in the traffic proves nothing.
RELAY_OWN_WORDS = "HTTP/1.1 Server: puente-relay"


def content_samples(value: object, *, known: str = "", limit: int = 20) -> list[str]:
    """Strings of 12 characters or more from collected ``value`` (JSON-like) to look for
    in what the relay saw: none the relay says itself, none in ``known`` (text meant for
    the help desk, such as a session summary)."""
    found: list[str] = []

    def walk(item: object) -> None:
        if isinstance(item, str):
            if len(item) >= 12 and item not in RELAY_OWN_WORDS and item not in known:
                found.append(item)
        elif isinstance(item, dict):
            for inner in item.values():
                walk(inner)
        elif isinstance(item, list):
            for inner in item:
                walk(inner)

    walk(value)
    return found[:limit]
