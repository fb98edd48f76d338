"""The customer's HTTP calls to the relay's ``/help/`` routes (no account: a help
request's token), shared by filing and following a request (:mod:`agent.help_request`)
and self-help (:mod:`agent.self_help`). Blocking calls; :func:`in_daemon_thread` runs
one so that a call in flight never keeps the agent from exiting.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from agent.i18n import t

T = TypeVar("T")


class HelpRequestError(Exception):
    """Filing or following the request failed; the message is for the customer."""


def call(
    base: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    token: str | None,
    ssl_context: ssl.SSLContext | None,
    timeout: float = 20.0,
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=ssl_context) as answer:
            raw = answer.read()
            return int(answer.status), (
                raw if path.startswith("/help/categories/") else json.loads(raw)
            )
    except urllib.error.HTTPError as exc:
        with exc:
            try:
                detail = json.loads(exc.read())
            except ValueError:
                detail = {}
        return int(exc.code), detail
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise HelpRequestError(
            t("request.unreachable", detail=getattr(exc, "reason", exc))
        ) from None


async def in_daemon_thread(function: Callable[[], T]) -> T:
    """Run a blocking call in a daemon thread: a long-poll in flight must never keep
    the agent from exiting when the customer closes it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result = function()
        except BaseException as exc:  # handed to the waiting coroutine
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=work, name="puente-help-request", daemon=True).start()
    return await future
