"""The plugins: every capability this agent offers, in the order it offers them.

This is the one module that knows every capability; :mod:`agent.capabilities.base`
knows none of them. It is imported when a session starts (not when the window
opens), so the window appears before numpy and the codecs of the screen load.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.capabilities.base import Capability, CapabilityRegistry
from agent.capabilities.clipboard import clipboard_capability
from agent.capabilities.diagnostics.capability import diagnostics_capability
from agent.capabilities.fixes import fixes_capability
from agent.capabilities.screen.capability import control_capability, screen_capability
from agent.capabilities.shell.capability import files_capability, shell_capability

#: Factories of the capabilities every agent offers. A new capability adds its own here.
CAPABILITY_FACTORIES: list[Callable[[], Capability]] = [
    diagnostics_capability,
    screen_capability,
    control_capability,
    fixes_capability,
    shell_capability,
    files_capability,
    clipboard_capability,
]


def default_registry() -> CapabilityRegistry:
    registry = CapabilityRegistry()
    for factory in CAPABILITY_FACTORIES:
        registry.register(factory())
    return registry
