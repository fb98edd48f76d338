"""Console command ``transfer``: hand the customer of a help request on to another
technician or queue, with a note (sessions opened by ``puente-tech queue accept``)."""

from __future__ import annotations

from .client import transfer_request
from .console import Result, SessionConsole, command
from .errors import RelayApiError, UsageError


@command(
    "transfer",
    "transfer TECHNICIAN|QUEUE --note TEXT",
    "hand this help request on, with a note for the next technician",
)
async def _transfer(console: SessionConsole, args: list[str]) -> Result:
    queued = console.settings.get("queue_request")
    if queued is None:
        return Result(
            "error",
            "only sessions of help requests can be transferred (puente-tech queue accept)",
        )
    if len(args) != 3 or args[1] != "--note" or not args[2].strip():
        raise UsageError("name the technician or queue, then --note and the note in quotes")
    api, request_id = queued
    try:
        moved = await transfer_request(api, console.session, request_id, args[0], args[2])
    except RelayApiError as exc:
        return Result("error", str(exc))
    console.ended = True  # the relay ends this session; the customer waits for the next
    return Result(
        "ok",
        f"transferred to {args[0]}; the customer waits for them with your note",
        {"request": moved},
    )
