"""Timeouts stretched for slow machines.

Set ``PUENTE_TEST_TIMEOUT_SCALE`` (a number, default 1) to stretch every timeout on
slow machines.
"""

from __future__ import annotations

import os

TIMEOUT_SCALE = float(os.environ.get("PUENTE_TEST_TIMEOUT_SCALE", "1"))


def scaled(seconds: float) -> float:
    """A timeout stretched by ``PUENTE_TEST_TIMEOUT_SCALE``."""
    return seconds * TIMEOUT_SCALE
