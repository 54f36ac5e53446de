"""Ctrl+C and SIGTERM as ``KeyboardInterrupt``, held back while a message crosses a pipe.

Python raises ``KeyboardInterrupt`` between any two bytecodes; raised inside
``multiprocessing.Queue.get`` after a reply's length was read but before its body, it leaves the
body in the pipe, and every later reply is misread (seen: ``EOFError`` after ~130 interrupts of
a busy writer; a garbage length blocks the reader for good). :func:`install` makes both
signals raise ``KeyboardInterrupt`` through a handler that, inside :func:`held`, only notes
the signal; the interrupt is raised when the outermost ``held`` block ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_state = threading.local()
_pending: list[int] = []
#: Every signal the handler took, as (count, last signal number).
_taken = [0, 0]


def _handler(signum: int, frame: object) -> None:
    _taken[0] += 1
    _taken[1] = signum
    if getattr(_state, "depth", 0):
        _pending.append(signum)
        return
    raise KeyboardInterrupt(f"signal {signum}")


def install() -> None:
    """Make Ctrl+C and SIGTERM raise ``KeyboardInterrupt``, held back inside :func:`held`.

    Only the main thread can set signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is threading.main_thread():
        for stop in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop, _handler)


@contextmanager
def held() -> Iterator[None]:
    """A block no interrupt lands in: one that arrives meanwhile is raised as it ends."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
        if not _state.depth and _pending and threading.current_thread() is threading.main_thread():
            signum = _pending[-1]
            _pending.clear()
            raise KeyboardInterrupt(f"signal {signum}")


def signals_taken() -> int:
    """How many Ctrl+C or SIGTERM the handler has taken; compare with an earlier reading."""
    return _taken[0]


def interrupt_behind(error: BaseException, taken_before: int) -> KeyboardInterrupt | None:
    """The interrupt that ``error`` hides, if a signal came since ``taken_before``; else None.

    A library may catch the ``KeyboardInterrupt`` a signal raised in its code and raise an error
    of its own; the work was still interrupted, and a worker must stop rather than count an
    ordinary failure and go on. ``error`` that is already an interrupt or exit is left as is.

    Example:
        >>> interrupt_behind(RuntimeError("commit failed"), signals_taken()) is None
        True
    """
    if isinstance(error, (KeyboardInterrupt, SystemExit)) or _taken[0] <= taken_before:
        return None
    return KeyboardInterrupt(f"signal {_taken[1]}")
