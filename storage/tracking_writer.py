"""The tracking writer process: MLflow's writes, and MLflow's import, away from training.

The commands come from :class:`storage.tracking.Tracking`; :func:`_serve` is the writer process's
loop (metric values held briefly and written per run in one batch), and
:class:`~storage.tracking_executor.Executor` applies each command. It is also where the
training process's other MLflow work runs (:meth:`Tracking.ask`), so that process need not
import MLflow at all.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import time
from typing import Any

from storage.gc_freeze import imports_frozen
from storage.redact import first_line
from storage.tracking_executor import (
    BATCH_HANDLE,
    MAX_METRICS_PER_CALL,
    ORPHAN_REASON,
    UNENDED_REASON,
    Executor,
    Point,
    SyncReport,
)

#: Seconds the writer may hold metric values before writing them anyway.
HOLD_S = 2.0

#: Seconds without a command after SIGTERM before the writer leaves (its owner closes first).
TERM_GRACE_S = 3.0
_TERMINATED: list[float] = []

#: The writer's ``nice`` increment: training keeps the CPU when both want it.
WRITER_NICENESS = 10

#: Packages the writer never loads: scikit-learn would come in only with Optuna's fANOVA
#: importances (imported with ``optuna.importance``, about a second), and the sweep summary
#: uses PED-ANOVA, which does not need it.
NOT_LOADED = ("sklearn",)


def serve_and_exit(
    tracking_uri: str,
    commands: multiprocessing.Queue[tuple[Any, ...]],
    replies: multiprocessing.Queue[tuple[str, SyncReport]],
    parent: int,
) -> None:
    """The writer process: :func:`_serve`, then exit at once (MLflow's teardown took ~1 s).

    Ctrl+C and SIGTERM reach it with its owner (a terminal, SLURM's scancel): it ignores the
    first, and after SIGTERM goes on while commands come, leaving ``TERM_GRACE_S`` after the last.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: _TERMINATED.append(time.monotonic()))
    for name in NOT_LOADED:  # an import of it fails as if it were not installed
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    _serve(tracking_uri, commands, replies, parent)
    replies.close()
    replies.join_thread()  # the answer to `close` has left this process
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _serve(
    tracking_uri: str,
    commands: multiprocessing.Queue[tuple[Any, ...]],
    replies: multiprocessing.Queue[tuple[str, SyncReport]],
    parent: int,
) -> None:
    """The writer process: carry out commands in order, metric values in big batches.

    Metric values are held until a run has ``MAX_METRICS_PER_CALL`` of them, they are
    ``HOLD_S`` old, or another command for that run (or a sync) needs them written first: fewer,
    larger ``log_batch`` calls cost less CPU and fewer commits, and the training process, which
    shares the machine, slows down less (so does the writer's lower CPU priority). Deferred
    calls (:meth:`Tracking.call_when_idle`) run when no command waits, all before a sync or
    close is answered; a mark does not wait for them.
    """
    import logging

    # MLflow's import costs seconds: paid now, not at the first write (the client comes later),
    # and at full priority: its owner is loading torch meanwhile and soon waits on this process.
    with imports_frozen():
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
        from mlflow import MlflowClient  # noqa: F401

    with contextlib.suppress(OSError):
        os.nice(WRITER_NICENESS)

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    executor = Executor(tracking_uri)
    held: dict[str, list[Point]] = {}
    held_since: dict[str, float] = {}

    def write(*handles: str) -> None:
        """Write what is held for ``handles``: one transaction for all of them."""
        found = {}
        for handle in handles:
            points = held.pop(handle, None)
            held_since.pop(handle, None)
            if points:
                found[handle] = points
        if len(found) == 1:
            ((handle, points),) = found.items()
            executor.execute(("metrics", handle, points))
        elif found:
            executor.execute(("metrics_many", BATCH_HANDLE, found))

    idle: collections.deque[tuple[Any, ...]] = collections.deque()
    warm: list[bool] = []
    imports: collections.deque[str] = collections.deque()  # Tracking.warm's, when quiet

    def run_idle() -> None:
        command = idle.popleft()
        write(command[1])  # what the deferred call reads back must be written first
        executor.execute(command)

    def catch_up() -> None:
        write(*held)
        while idle:
            run_idle()

    while True:
        try:
            # With deferred work or imports waiting, look for commands without lingering: a
            # fused batch's metrics come every epoch, and waiting 10 ms for quiet before each of
            # its 16 drafted PNGs kept them from being done while it trained.
            command = commands.get(timeout=0.001 if idle or imports else 0.25)
        except queue.Empty:
            command = None
        now = time.monotonic()
        write(*[h for h, since in held_since.items() if now - since > HOLD_S])
        if command is None:
            stopped = bool(_TERMINATED) and now - _TERMINATED[-1] > TERM_GRACE_S
            if os.getppid() != parent or stopped:  # write what it sent, close its runs
                write(*held)
                executor.fail_open_runs(ORPHAN_REASON)
                return
            if not warm:  # the first quiet moment: what every plot, deferred or not, needs
                warm.append(True)
                _warm_up()
            elif idle:  # nothing else to do: one piece of deferred work
                run_idle()
            elif imports:
                _import(imports.popleft())
            continue
        kind, handle = command[0], command[1]
        if kind == "metrics":
            held.setdefault(handle, []).extend(command[2])
            held_since.setdefault(handle, now)
            if len(held[handle]) >= MAX_METRICS_PER_CALL:
                write(handle)
        elif kind == "end_many":
            ends = {
                h: end._replace(points=[*held.pop(h, []), *end.points])
                for h, end in command[2].items()
            }
            for h in ends:
                held_since.pop(h, None)
            executor.execute((kind, handle, ends))
        elif kind == "idle_call":
            idle.append(command)
        elif kind == "warm":
            imports.extend(command[2])
        elif kind == "open":  # the store is there now: open the client before it is needed
            executor.execute(command)
        elif kind == "ask":  # after everything sent before it, deferred work aside
            write(*held)
            replies.put((handle, _sendable(executor.ask(*command[2:]))))
        elif kind == "create":  # runs made by the client and adopted here; their ids
            write(*held)
            replies.put((handle, _sendable(executor.create_runs(*command[2:]))))
        elif kind == "mark":  # everything but deferred work
            write(*held)
            replies.put((handle, executor.report()))
        elif kind in ("sync", "close"):
            catch_up()
            if kind == "close":
                # No run outlives its writer as RUNNING, whatever interrupted its owner.
                executor.fail_open_runs(UNENDED_REASON)
            replies.put((handle, executor.report()))
            if kind == "close":
                return
        else:
            write(handle)
            executor.execute(command)


def _warm_up() -> None:
    """Import matplotlib (Agg) now: every trial's plot and the sweep's summary need it.

    Run at the writer's first quiet moment, before any deferred work (a fused batch's drafted
    PNGs would otherwise pay it, with the collector on): its third of a second is then off the
    path its owner waits on at the end of the first trial and of the sweep. The writer is niced
    by then, so where its owner is still loading torch on the only core, the owner goes first.
    """
    with contextlib.suppress(Exception), imports_frozen():  # a plot says what is wrong
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot


def _import(module: str) -> None:
    """Import ``module`` ahead of need; if it fails, the call that needs it will say why."""
    with contextlib.suppress(Exception), imports_frozen():
        importlib.import_module(module)


def _sendable(report: SyncReport) -> SyncReport:
    """``report`` if its answer pickles; else one that says why (the asker would wait forever)."""
    try:
        pickle.dumps(report.answer)
    except Exception as error:
        return SyncReport(failure=f"the answer cannot be sent back: {first_line(error)}")
    return report
