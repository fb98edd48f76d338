"""What a technician may ask this agent to do, each behind the consent gate.

:mod:`agent.capabilities.base` holds the types every capability shares; each capability
is a module or a sub-package of its own (diagnostics, screen, shell, fixes);
:mod:`agent.capabilities.registry` lists them (the plugins).
"""
