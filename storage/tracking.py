"""MLflow writes off the training loop's critical path, with nothing lost.

MLflow's SQL store costs about 0.1 to 0.2 ms of CPU per logged value, under Python's GIL: a
writer *thread* measured here doubled the wall time of a 2,200-step trial. So the writes run in
a separate process (:class:`ProcessTracking`) that owns its own ``MlflowClient``; the trial
hands it commands (adopt a run, params, tags, metric batches, artifacts, end the run) through
a queue and never waits, except at :meth:`sync`, which returns once everything sent so far is
written, with each run's id and any errors. :class:`InlineTracking` runs the same commands in
the caller, for tests and for tools that log little.

Runs are named by a caller-chosen *handle* (the run id of a run its owner created and adopted).
Metric values are gathered per run and sent with ``log_batch``, up to 1000 values a call.
A command that fails is retried on transient errors and then recorded against its handle; the
run is still ended. If the process that owns the writer dies, the writer ends every run it had
open as FAILED with the reason, so no run is left RUNNING.
"""

from __future__ import annotations

__all__ = [
    "BULK_ENV",
    "MAX_METRICS_PER_CALL",
    "MAX_PARAMS_PER_CALL",
    "MAX_PARAM_LENGTH",
    "ClientCall",
    "InlineTracking",
    "Point",
    "ProcessTracking",
    "RunCall",
    "RunEnd",
    "SyncReport",
    "Tracking",
    "start_writer",
]

import atexit
import contextlib
import multiprocessing
import os
import queue
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from typing import Any

from storage.bulk_runs import NewRun
from storage.errors import StoreUnavailable
from storage.interrupts import held
from storage.tracking_executor import (
    BATCH_HANDLE,
    BULK_ENV,
    MAX_METRICS_PER_CALL,
    MAX_PARAM_LENGTH,
    MAX_PARAMS_PER_CALL,
    UNENDED_REASON,
    ClientCall,
    Executor,
    Point,
    RunCall,
    RunEnd,
    SyncReport,
)
from storage.tracking_writer import serve_and_exit


class Tracking:
    """The command interface; see the module docstring. Subclasses decide where it runs."""

    def _send(self, command: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def adopt_run(self, handle: str, run_id: str) -> None:
        """Write to a run created elsewhere (its id known at once); ended here like the rest."""
        self._send(("adopt", handle, run_id))

    def log_params(self, handle: str, params: Mapping[str, object]) -> None:
        """Log params (values stringified, 100 per call)."""
        self._send(("params", handle, dict(params)))

    def set_tags(self, handle: str, tags: Mapping[str, object]) -> None:
        """Set tags on the run."""
        self._send(("tags", handle, dict(tags)))

    def log_metrics(self, handle: str, points: list[Point]) -> None:
        """Queue metric values ``(key, value, step, timestamp_ms)``; written in batches."""
        if points:
            self._send(("metrics", handle, points))

    def store_ready(self) -> None:
        """The store exists now: the writer may open its client ahead of the first write."""
        self._send(("open", "open"))

    def warm(self, *modules: str) -> None:
        """Import ``modules`` there while quiet, not once asked for (sync and close skip them)."""
        self._send(("warm", "warm", modules))

    def call(self, handle: str, target: RunCall, **kwargs: Any) -> None:
        """Run ``target(client, run_id, **kwargs)`` where the writes happen.

        ``target`` is a module-level function: it travels to the writer process by name, as
        pickle sends functions, and the caller's imports (not a string) say where it lives.
        """
        self._send(("call", handle, target, kwargs))

    def call_when_idle(self, handle: str, target: RunCall, **kwargs: Any) -> None:
        """Like :meth:`call`, but the writer may defer it until it has nothing else to do.

        For work nothing waits for (a trial's PNG): it does not hold up :meth:`mark` /
        :meth:`wait_for`, and it is done before a :meth:`sync` or :meth:`close` returns.
        """
        self._send(("idle_call", handle, target, kwargs))

    def ask(self, function: ClientCall, *args: Any, **kwargs: Any) -> Any:
        """``function(client, *args, **kwargs)`` run where the writes happen; what it returns.

        For MLflow work besides a run's writes (an experiment, a parent run, a sweep's summary),
        so that the process that trains need not import MLflow. It runs after every command
        sent before it (deferred work aside), and its answer must be plain data: an MLflow
        entity would import MLflow where it arrives. A failure raises :class:`StoreUnavailable`.
        """
        raise NotImplementedError

    def create_runs(self, experiment_id: str, runs: Mapping[str, NewRun]) -> dict[str, str]:
        """Create ``{handle: run}`` (RUNNING, tags only) where the writes happen; run ids.

        For a tracking server, where MLflow chooses the ids. Each run is adopted there at once
        under its handle, not once the answer arrives, so an interrupt while the owner waits
        for it leaves no run RUNNING.
        """
        raise NotImplementedError

    def post(self, function: ClientCall, *args: Any, **kwargs: Any) -> None:
        """Like :meth:`ask`, without waiting: a failure is reported at the next sync."""
        self._send(("post", getattr(function, "__name__", "post"), function, args, kwargs))

    @property
    def can_ask(self) -> bool:
        """Whether :meth:`ask` can still be answered (the writer is open and alive)."""
        return True

    def end_run(self, handle: str, status: str) -> None:
        """Terminate the run: FINISHED, KILLED or FAILED."""
        self._send(("end", handle, status))

    def end_runs(self, ends: Mapping[str, RunEnd]) -> None:
        """End many runs at once: final metrics, tags, an artifact call, status per handle.

        The artifact call is given ``artifact_uri=`` (the run's, or None where not known).

        Carried out as one transaction for the metrics and one for tags and statuses where the
        tracking URI is a database (``storage.bulk_runs``); otherwise run by run.
        """
        if ends:
            # A single run's errors are reported under its own handle.
            handle = next(iter(ends)) if len(ends) == 1 else BATCH_HANDLE
            self._send(("end_many", handle, dict(ends)))

    def sync(self, timeout_s: float = 300.0) -> SyncReport:
        """Block until every command sent so far is carried out."""
        raise NotImplementedError

    def mark(self) -> str:
        """A point in the command stream that :meth:`wait_for` can wait for, without waiting now.

        Lets a caller overlap its work with the writer's and wait only for what it sent before
        the mark (the fused runner waits for the previous batch's writes, not its own).
        """
        return ""

    def wait_for(self, mark: str, timeout_s: float = 300.0) -> SyncReport:
        """Block until every command sent before ``mark`` is carried out."""
        return self.sync(timeout_s)

    def close(self) -> SyncReport:
        """Finish every pending write and stop."""
        raise NotImplementedError

    def __enter__(self) -> Tracking:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class InlineTracking(Tracking):
    """Commands carried out at once in the calling thread."""

    def __init__(self, tracking_uri: str) -> None:
        self._executor = Executor(tracking_uri)

    def _send(self, command: tuple[Any, ...]) -> None:
        self._executor.execute(command)

    def ask(self, function: ClientCall, *args: Any, **kwargs: Any) -> Any:
        """Run ``function`` here, with this tracking's client."""
        return _answer(self._executor.ask(function, args, kwargs))

    def create_runs(self, experiment_id: str, runs: Mapping[str, NewRun]) -> dict[str, str]:
        """Create and adopt the runs here."""
        ids = _answer(self._executor.create_runs(experiment_id, dict(runs)))
        return dict(zip(runs, ids, strict=True))

    def sync(self, timeout_s: float = 300.0) -> SyncReport:
        """Nothing is pending; report run ids and errors."""
        return self._executor.report()

    def close(self) -> SyncReport:
        """End any run still open as FAILED (see ``UNENDED_REASON``), then report."""
        self._executor.fail_open_runs(UNENDED_REASON)
        return self._executor.report()


class ProcessTracking(Tracking):
    """Commands carried out by a separate writer process with its own ``MlflowClient``."""

    def __init__(self, tracking_uri: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._commands: multiprocessing.Queue[tuple[Any, ...]] = context.Queue()
        self._replies: multiprocessing.Queue[tuple[str, SyncReport]] = context.Queue()
        self._process = context.Process(
            target=serve_and_exit,
            args=(tracking_uri, self._commands, self._replies, os.getpid()),
            name="onecycle-tracking",
            daemon=True,
        )
        self._process.start()
        # Never let interpreter exit block on a queue whose reader is gone (a writer that was
        # terminated or died): what it could not deliver is reported by sync/close instead.
        self._commands.cancel_join_thread()
        self._replies.cancel_join_thread()
        self._closed = False
        self._used = False
        self._seen: dict[str, SyncReport] = {}
        self._reading = threading.Lock()  # one thread reads replies at a time
        _LIVE.add(self)
        if not _EXIT_HOOK:  # registered after multiprocessing's own, so it runs before it
            atexit.register(_stop_writers)
            _EXIT_HOOK.append(True)

    @classmethod
    def for_uri(cls, tracking_uri: str) -> ProcessTracking:
        """The writer :func:`start_writer` started for ``tracking_uri``, or a new one."""
        waiting = _WAITING.pop(tracking_uri, None)
        return waiting if waiting is not None else cls(tracking_uri)

    def _send(self, command: tuple[Any, ...]) -> None:
        if self._closed:
            raise StoreUnavailable("the tracking writer is closed")
        self._used = True
        with held():
            self._commands.put(command)

    def discard(self) -> None:
        """Stop a writer that was never sent a command (nothing of it can be lost)."""
        self._closed = True
        if self._process.is_alive():
            self._process.kill()
        self._process.join(timeout=5)

    def ask(self, function: ClientCall, *args: Any, **kwargs: Any) -> Any:
        """Run ``function`` in the writer process, after what was sent before; its answer."""
        token = uuid.uuid4().hex
        self._send(("ask", token, function, args, kwargs))
        return _answer(self._await(token, 300.0))

    def create_runs(self, experiment_id: str, runs: Mapping[str, NewRun]) -> dict[str, str]:
        """Create and adopt the runs in the writer, after what was sent before; their ids."""
        token = uuid.uuid4().hex
        self._send(("create", token, experiment_id, dict(runs)))
        return dict(zip(runs, _answer(self._await(token, 300.0)), strict=True))

    @property
    def can_ask(self) -> bool:
        """Open, and its process alive."""
        return not self._closed and self._process.is_alive()

    def mark(self) -> str:
        """Send a sync marker now; :meth:`wait_for` it later."""
        token = uuid.uuid4().hex
        self._send(("mark", token))
        return token

    def wait_for(self, mark: str, timeout_s: float = 300.0) -> SyncReport:
        """Wait for the reply to ``mark`` (replies to other markers are kept for their waiters)."""
        return self._await(mark, timeout_s)

    def _barrier(self, kind: str, timeout_s: float) -> SyncReport:
        token = uuid.uuid4().hex
        self._used = True
        with held():
            self._commands.put((kind, token))
        return self._await(token, timeout_s)

    def _await(self, token: str, timeout_s: float) -> SyncReport:
        """The reply to ``token``; a reply for another waiter (another thread) is kept for it."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with self._reading:
                    if token in self._seen:
                        return self._seen.pop(token)
                    with held():  # an interrupt half-way through a reply would garble the rest
                        reply_token, report = self._replies.get(timeout=0.1)
            except queue.Empty:
                if not self._process.is_alive():
                    raise StoreUnavailable(
                        f"the tracking writer process died (exit code {self._process.exitcode})"
                    ) from None
                if time.monotonic() > deadline:
                    raise StoreUnavailable(
                        f"the tracking writer did not catch up within {timeout_s:.0f} s"
                    ) from None
                continue
            if reply_token == token:
                return report
            self._seen[reply_token] = report

    def sync(self, timeout_s: float = 300.0) -> SyncReport:
        """Wait until the writer has carried out everything sent so far."""
        return self._barrier("sync", timeout_s)

    def close(self) -> SyncReport:
        """Drain, stop the writer, and report."""
        if self._closed:
            return SyncReport()
        try:
            report = self._barrier("close", 600.0)
        except StoreUnavailable:
            if self._process.exitcode != 0:
                raise
            report = SyncReport()  # it left after SIGTERM, having written what it was sent
        self._closed = True
        self._process.join(timeout=30)
        _LIVE.discard(self)
        return report

    def stop_at_exit(self) -> None:
        """At exit: close a writer still open (its commands get written), else kill it."""
        if self._closed or not self._process.is_alive():
            return
        if self._used:
            with contextlib.suppress(Exception):
                self._barrier("close", 30.0)
        self.discard()  # whatever is still running of it


def _answer(report: SyncReport) -> Any:
    if report.failure:
        raise StoreUnavailable(f"MLflow: {report.failure}")
    return report.answer


#: Writers started ahead of need, by tracking URI, until a :meth:`ProcessTracking.for_uri` takes
#: them.
_WAITING: dict[str, ProcessTracking] = {}


def start_writer(tracking_uri: str) -> ProcessTracking:
    """Start the writer process for ``tracking_uri`` now; the next ``for_uri`` takes it.

    Starting a writer costs its MLflow import (seconds), paid on another core while this process
    loads torch and the workload instead of after. It does not touch the store before its first
    command or :meth:`Tracking.store_ready`, so it may start before a new store is created. One
    that nothing takes is stopped when this process exits.
    """
    waiting = _WAITING.get(tracking_uri)
    if waiting is None:
        waiting = _WAITING[tracking_uri] = ProcessTracking(tracking_uri)
    return waiting


def discard_waiting() -> None:
    """Stop the writers :func:`start_writer` started that nothing took (none was sent a command).

    A command that fails before it opens its store leaves its early writer waiting; in a process
    that runs many commands (``sweeps.cli.main`` called from Python), each would otherwise hold
    its MLflow import's memory until the process exits.
    """
    while _WAITING:
        _, writer = _WAITING.popitem()
        writer.discard()


#: Every writer this process started: those still open are stopped at exit.
_LIVE: weakref.WeakSet[ProcessTracking] = weakref.WeakSet()
_EXIT_HOOK: list[bool] = []


def _stop_writers() -> None:
    """Writers left open as the process exits: closed, or killed if nothing was sent to them.

    Multiprocessing's own exit handler would SIGTERM them and wait the writer's grace for each
    (see :func:`~storage.tracking_writer.serve_and_exit`); one that was sent commands gets them
    written here first.
    """
    _WAITING.clear()
    for writer in list(_LIVE):
        writer.stop_at_exit()
