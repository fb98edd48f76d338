"""Command-line entry points that keep their output for their user.

Library warnings (:func:`quiet_library_warnings`): a deprecation raised inside asyncssh
is for developers; a customer or an operator never sees it, and ``-v`` logs it.

A closed pipe (:func:`quiet_on_closed_stdout`): programs stop quietly when their
reader goes away.

``puente-tech sessions | head`` closes the pipe while the command still prints; Python
then raises BrokenPipeError at the next write, and again when it flushes at exit.
Unix tools stop silently instead (killed by SIGPIPE, status 141): so do ours. A
BrokenPipeError that did not come from standard output (a socket, a child's pipe) is
not swallowed.
"""

from __future__ import annotations

import functools
import logging
import os
import select
import sys
import warnings
from collections.abc import Callable
from typing import ParamSpec

P = ParamSpec("P")

#: What a shell reports for a program killed by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141


def quiet_library_warnings(show: bool = False) -> None:
    """Keep third-party libraries' warnings off a customer's or an operator's screen.

    cryptography 51, for one, deprecates DSA and asyncssh touches it when imported: five
    lines of Python warnings would stand above "session started". With ``show`` (the
    program's ``-v``) they go to the log instead. Whoever set ``-W`` or
    ``PYTHONWARNINGS`` asked for warnings their own way: that is left as it is.
    """
    if sys.warnoptions:
        return
    if show:
        warnings.simplefilter("default")
        logging.captureWarnings(True)
    else:
        warnings.simplefilter("ignore")


def quiet_on_closed_stdout(main: Callable[P, int]) -> Callable[P, int]:
    """Wrap a ``main``: a closed standard output ends it with status 141, no traceback."""

    @functools.wraps(main)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            status = main(*args, **kwargs)
            sys.stdout.flush()  # a reader that has gone shows here, not at interpreter exit
            return status
        except BrokenPipeError:
            if not _stdout_closed():
                raise
            # Python flushes stdout once more at exit; let that write go nowhere.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return EXIT_BROKEN_PIPE

    return wrapper


def _stdout_closed() -> bool:
    """Whether nobody reads standard output any more (its pipe or socket is closed)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return False
    if hasattr(select, "poll"):  # a write end whose reader has gone polls as an error
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return True
    return False
