"""Imports kept out of the cyclic garbage collector's full sweeps.

Importing MLflow, matplotlib or torch adds hundreds of thousands of objects that live as long
as the process. CPython runs a full collection each time its oldest generation has grown by a
quarter, so a process that imports them walks its whole heap again and again while doing so:
0.43 s of the tracking writer's CPU in a 16-trial fused sweep (six full collections, each
longer than the last), on the path that sweep's end waits on. Module objects are never garbage:
they are frozen out of the collector (:func:`gc.freeze`) instead of swept.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Iterator

#: Seconds a command's process runs with the collector paused (:func:`pause_for_start_up`).
START_UP_S = 5.0


@contextlib.contextmanager
def imports_frozen() -> Iterator[None]:
    """Run the block (imports) with the collector off, then freeze what it left alive.

    Only for processes this project owns (the tracking writer): freezing in a caller's process
    would also keep that process's own garbage cycles of the moment for good.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


class _Paused:
    """The start-up pause's state: whether it is still on (it ends once)."""

    on = False
    lock = threading.Lock()


def pause_for_start_up(seconds: float | None = None) -> None:
    """Pause the collector while a command's process loads its modules (``START_UP_S``).

    For the ``onecycle`` command's own processes (workers included), which load torch, Optuna,
    SQLAlchemy and the workload's modules in their first seconds, on paths too many to wrap one
    by one. A timer thread then collects once (a trial that ended meanwhile may have left
    cycles), freezes what is alive and turns the collector back on, so a long sweep collects its
    garbage as before, over a heap without the modules in it. A child forked meanwhile (a data
    loader's worker) has no timer: it gets its collector back at once. A workload that turns
    the collector off itself in its first seconds finds it on again after the pause.
    """
    with _Paused.lock:
        if _Paused.on or not gc.isenabled():
            return
        _Paused.on = True
    os.register_at_fork(after_in_child=_end_in_child)
    gc.disable()
    timer = threading.Timer(START_UP_S if seconds is None else seconds, end_start_up_pause)
    timer.daemon = True
    timer.start()


def end_start_up_pause() -> None:
    """Collect once, freeze what is alive and turn the collector back on (once)."""
    with _Paused.lock:
        if not _Paused.on:
            return
        gc.collect()  # what the pause left as garbage is freed, not frozen with the modules
        gc.freeze()
        gc.enable()
        _Paused.on = False  # last: a child forked before this line turns its collector on


def _end_in_child() -> None:
    _Paused.lock = threading.Lock()  # the parent's may have been held at the fork
    if _Paused.on:
        _Paused.on = False
        gc.enable()
