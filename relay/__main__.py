"""``python -m relay``: the same as the ``puente-relay`` command."""

from .cli import main

raise SystemExit(main())
