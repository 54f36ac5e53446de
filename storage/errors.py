"""Errors of the storage layer, already redacted and worded for the person at the terminal.

:class:`StoreConfigError` is a setting the user must change (an unknown scheme, Optuna and
MLflow pointed at one database, a directory that cannot be written): the CLI exits 2.
:class:`StoreUnavailable` is a store that is configured right but cannot be reached or refuses
the login: the CLI exits 1, as for :class:`StoreFull`, a disk (or PostgreSQL tablespace) with no
space left. Messages never contain a password.
"""

from __future__ import annotations


class StoreError(Exception):
    """Any failure of the store; the message is safe to print."""


class StoreConfigError(StoreError, ValueError):
    """The store setting itself is wrong; fix the flag, variable or URL."""


class StoreUnavailable(StoreError):
    """The store is configured but cannot be reached, or refuses the login."""


class StoreFull(StoreUnavailable):
    """No space left on the device that holds the store; free space and run again.

    ``detail`` is the driver's own line (redacted), kept so a caller that knows more about
    what the failure left behind can say so without nesting one message in another.
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class SweepNotFound(StoreError, LookupError):
    """No sweep of that name in the store."""
