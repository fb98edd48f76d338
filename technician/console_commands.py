"""Every command of the session console: importing this module registers them all.

:mod:`technician.console` holds the registry, :class:`~technician.console.SessionConsole`
and the built-in commands; each feature module registers its own commands with
:func:`technician.console.command` when it is imported. The feature modules import the
console, so the console cannot import them back; this module imports each of them by
name instead (kept apart from the CLI's start-up, which does not need ssh or numpy).
"""

from __future__ import annotations

from . import fix_commands, queue_commands, screen_commands, ssh_commands
from .console import COMMANDS, ConsoleCommand

#: The feature modules whose commands join the console's built-ins.
FEATURE_MODULES = (fix_commands, queue_commands, screen_commands, ssh_commands)


def load_commands() -> dict[str, ConsoleCommand]:
    """Every console command by name, built-in and feature (imports registered them)."""
    return COMMANDS
