"""Entry point of the one-file agent built by installers/build.py."""

import sys

from agent.cli import main

if __name__ == "__main__":
    sys.exit(main())
