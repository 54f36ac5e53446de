"""``sys.exit`` in a trial's code ends that trial, not the sweep.

A user's training function or task method that calls ``sys.exit(3)`` raises ``SystemExit``,
which Python lets through every ``except Exception``; the sweep loop then stopped, and the
whole ``onecycle run`` exited 3 without a word. The trial runners call user code under
:func:`exits_fail_the_trial`, which turns it into :class:`TrialExited` (an ordinary
exception, recorded as the trial's failure with the exit code in the reason). Ctrl+C and
SIGTERM arrive as ``KeyboardInterrupt`` and still stop the sweep.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["TrialExited", "exits_fail_the_trial"]

P = ParamSpec("P")
R = TypeVar("R")


class TrialExited(Exception):
    """The trial's own code raised ``SystemExit``; that trial fails, the sweep goes on."""

    def __init__(self, code: object) -> None:
        super().__init__(f"SystemExit({code!r}): the trial's code called sys.exit({code!r})")
        self.code = code


def exits_fail_the_trial(function: Callable[P, R]) -> Callable[P, R]:
    """Wrap a call into user code so that its ``SystemExit`` becomes :class:`TrialExited`."""

    @functools.wraps(function)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except SystemExit as error:
            raise TrialExited(error.code) from error

    return call
