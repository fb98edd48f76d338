"""The ``diagnostics`` capability: its handler and its factory.

What is collected lives in :mod:`agent.capabilities.diagnostics.collection`; this
module runs the collection with consent, lets the customer review the result, and
strikes what they held back before anything leaves.
"""

from __future__ import annotations

import asyncio
from typing import Any

from agent.capabilities.base import Capability, CapabilityCall
from agent.capabilities.diagnostics.collection import CAPABILITY_DESCRIPTION, collect
from agent.review import path_text, strike


async def _diagnostics_handler(call: CapabilityCall) -> dict[str, Any]:
    args = call.args
    sample = float(args.get("sample_seconds", 0.5))
    dns_names = args.get("dns_names") or ["localhost"]
    if not isinstance(dns_names, list) or not all(isinstance(n, str) for n in dns_names):
        raise ValueError("dns_names must be a list of host names")
    sample = min(max(sample, 0.0), 30.0)
    await call.progress({"stage": "collecting"})
    # Collection blocks (psutil sampling), so it runs in a thread; check() is called
    # between steps there and raises once consent is withdrawn, so the thread stops
    # too, while this coroutine is cancelled at once by the session.
    result: dict[str, Any] = await asyncio.to_thread(
        collect,
        check=call.authorization.check,
        sample_seconds=sample,
        dns_names=dns_names[:5],
    )
    if call.review is not None:
        call.authorization.check()
        await call.progress({"stage": "customer reviewing"})
        struck = await call.review("diagnostics", result)
        call.authorization.check()
        if struck:
            result = strike(result, struck)
            call.log.write(
                "You held back from the diagnostics: "
                + ", ".join(sorted(path_text(p) for p in struck))
                + "."
            )
    return result


def diagnostics_capability() -> Capability:
    return Capability(
        name="diagnostics",
        title="Diagnostics",
        description=CAPABILITY_DESCRIPTION,
        handler=_diagnostics_handler,
        actions=("collect",),
    )
