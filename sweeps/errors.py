"""The errors the CLI turns into one line and an exit code.

Anything the user can fix by changing a flag or a file is a :class:`UsageError` (exit 2);
anything that went wrong while running is a :class:`SweepsError` (exit 1). Tracebacks are shown
only with ``--debug``.
"""

from __future__ import annotations


class SweepsError(Exception):
    """A runtime failure; the CLI prints the message and exits 1."""

    exit_code = 1


class UsageError(SweepsError):
    """Bad input (a flag, a file, a config value); the CLI prints the message and exits 2."""

    exit_code = 2


class TooManyFailures(SweepsError):
    """A sweep stopped because its failure rate passed ``search.max_failure_rate``."""
