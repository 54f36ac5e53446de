"""One tracking command carried out against MLflow: retried, and nothing lost.

The tracking writer process (:mod:`storage.tracking_writer`) and :class:`InlineTracking` share
:class:`Executor`: it applies each command of :class:`storage.tracking.Tracking` with the
writer's own ``MlflowClient`` or the direct-to-table writers, retries transient errors and
records the rest against the command's handle, to be reported at the next sync.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from storage.bulk_metrics import BulkMetricWriter
from storage.bulk_runs import MAX_PARAM_VALUE, BulkRunWriter, NewRun, create_runs
from storage.errors import StoreUnavailable
from storage.pooling import unpooled_mlflow
from storage.redact import first_line

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from sqlalchemy import Engine

    from storage.schema_guard import W

#: One metric value: (key, value, step, timestamp in ms).
Point = tuple[str, float, int, int]
#: Work run where the writes happen: ``call(client, run_id, **kwargs)``, module-level.
RunCall = Callable[..., None]
#: Other MLflow work run where the writes happen: ``call(client, *args, **kwargs)``,
#: module-level; what :meth:`Tracking.ask` returns is what it returns (plain data, no entities).
ClientCall = Callable[..., Any]

MAX_METRICS_PER_CALL = 1000

MAX_PARAMS_PER_CALL = 100

MAX_PARAM_LENGTH = MAX_PARAM_VALUE  # MLflow's limit on one param value

RETRIES = 6

#: Set to 0 to send metric values through ``MlflowClient.log_batch`` only (storage/bulk_metrics).
BULK_ENV = "ONECYCLE_MLFLOW_BULK"

#: Errors of a many-run command are reported under this handle.
BATCH_HANDLE = "batch"

_TRANSIENT = ("locked", "could not connect", "connection", "terminating", "server closed")

ORPHAN_REASON = "the process that owned this run ended without closing it"

UNENDED_REASON = "the tracking writer was closed before this run was ended (interrupted)"


class RunEnd(NamedTuple):
    """How one run ends (see :meth:`Tracking.end_runs`).

    ``call`` is an optional ``(target, kwargs)`` run like :meth:`Tracking.call` before the end.
    """

    status: str
    tags: Mapping[str, str]
    points: list[Point]
    call: tuple[RunCall, dict[str, Any]] | None = None


@dataclass
class SyncReport:
    """What :meth:`sync` learned: the MLflow run id of each handle and errors per handle."""

    run_ids: dict[str, str] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    #: An ask's answer: what its call returned, or why it failed (one line).
    answer: Any = None
    failure: str = ""

    def raise_errors(self) -> None:
        """Raise :class:`StoreUnavailable` summarising every recorded error."""
        if self.errors:
            parts = [f"{handle}: {'; '.join(msgs)}" for handle, msgs in self.errors.items()]
            raise StoreUnavailable("MLflow writes failed: " + " | ".join(parts))


class Executor:
    """Carries out commands against one ``MlflowClient``; shared by both implementations."""

    def __init__(self, tracking_uri: str) -> None:
        if tracking_uri.startswith("sqlite"):
            from storage.sqlite_dir import fast_wal_commits

            fast_wal_commits()  # the writer is its own process: its engines need the hook too
        self.uri = tracking_uri
        self.run_ids: dict[str, str] = {}
        self.open: set[str] = set()
        self.errors: dict[str, list[str]] = {}
        self._engine: Engine | None = None
        self._bulk: BulkMetricWriter | None = None
        self._bulk_checked = os.environ.get(BULK_ENV, "1") == "0"  # disabled: never look
        self._runs: BulkRunWriter | None = None
        self._runs_checked = self._bulk_checked

    @functools.cached_property
    def client(self) -> MlflowClient:
        """The writer's client, made on first use, not at start.

        A writer started early (:func:`storage.tracking.start_writer`) must not touch a store
        that is still being created.
        """
        from mlflow import MlflowClient

        unpooled_mlflow(self.uri)
        return MlflowClient(tracking_uri=self.uri)

    def mlflow(self) -> MlflowClient:
        """The client, the direct writers' kept connection closed first (one connection)."""
        if self._engine is not None and self._engine.dialect.name == "postgresql":
            self._engine.dispose()
        return self.client

    def _direct(self, writer: type[W]) -> W | None:
        """A direct writer on the one engine both share; None where it cannot write."""
        if self._engine is None and self.uri.startswith(("sqlite:", "postgresql")):
            from storage.connect import engine_for

            with contextlib.suppress(Exception):  # any doubt: the library's own API
                self._engine = engine_for(self.uri, kept=True, overflow=0)
        found = None if self._engine is None else writer.for_engine(self._engine)
        if found is None and self._engine is not None:
            self._engine.dispose()  # its schema check's connection is not kept for nothing
        return found

    def bulk(self) -> BulkMetricWriter | None:
        """The direct-to-table metric writer, found on first use (MLflow's tables exist then)."""
        if not self._bulk_checked:
            self._bulk_checked = True
            self._bulk = self._direct(BulkMetricWriter)
        return self._bulk

    def execute(self, command: tuple[Any, ...]) -> None:
        """Carry out ``command``; an error is recorded against its handle, not raised."""
        kind, handle = command[0], command[1]
        try:
            self._retrying(lambda: self._dispatch(kind, handle, command[2:]))
        except Exception as error:  # recorded and reported at the next sync
            self.errors.setdefault(handle, []).append(f"{kind}: {first_line(error, self.uri)}")

    def _retrying(self, action: Callable[[], None]) -> None:
        for attempt in range(RETRIES):
            try:
                action()
                return
            except Exception as error:
                text = str(error).lower()
                transient = any(marker in text for marker in _TRANSIENT)
                if not transient or attempt == RETRIES - 1:
                    raise
                time.sleep(0.25 * 2**attempt)  # up to about 8 s in all: a database restart

    def _dispatch(self, kind: str, handle: str, args: tuple[Any, ...]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        if kind == "warm":  # inline, an import ahead of need costs the caller what it saves
            return
        if kind == "post":
            function, args, kwargs = args
            function(self.mlflow(), *args, **kwargs)
            return
        if kind == "open":
            self.mlflow()  # made now, and the direct writers' schema checks run
            self.bulk()
            self.bulk_runs()
            return
        if kind == "adopt":
            self.run_ids[handle] = args[0]
            self.open.add(handle)
            return
        if kind == "end_many":
            self._end_many(args[0])
            return
        if kind == "metrics_many":
            self._metrics_many(args[0])
            return
        run_id = self.run_ids.get(handle)
        if run_id is None:
            raise RuntimeError(f"no run was started for handle {handle!r}")
        if kind == "metrics":
            points: list[Point] = args[0]
            bulk = self.bulk()
            if bulk is not None:
                bulk.write(run_id, points)
                return
            for start in range(0, len(points), MAX_METRICS_PER_CALL):
                chunk = points[start : start + MAX_METRICS_PER_CALL]
                metrics = [Metric(key=k, value=v, timestamp=t, step=s) for k, v, s, t in chunk]
                self.mlflow().log_batch(run_id, metrics=metrics, synchronous=True)
        elif kind == "params":
            pairs = [(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in args[0].items()]
            for start in range(0, len(pairs), MAX_PARAMS_PER_CALL):
                block = pairs[start : start + MAX_PARAMS_PER_CALL]
                self.mlflow().log_batch(run_id, params=[Param(k, v) for k, v in block])
        elif kind == "tags":
            tags = [RunTag(k, str(v)) for k, v in args[0].items()]
            self.mlflow().log_batch(run_id, tags=tags)
        elif kind in ("call", "idle_call"):
            function, kwargs = args
            function(self.mlflow(), run_id, **kwargs)
        elif kind == "end":
            self.mlflow().set_terminated(run_id, status=args[0])
            self.open.discard(handle)
        else:
            raise ValueError(f"unknown tracking command {kind!r}")

    def bulk_runs(self) -> BulkRunWriter | None:
        """The direct-to-table run writer (None over HTTP, another schema, or when disabled)."""
        if not self._runs_checked:
            self._runs_checked = True
            self._runs = self._direct(BulkRunWriter)
        return self._runs

    def _ids(self, handles: Iterable[str]) -> dict[str, str]:
        ids = {}
        for handle in handles:
            run_id = self.run_ids.get(handle)
            if run_id is None:
                raise RuntimeError(f"no run was started for handle {handle!r}")
            ids[handle] = run_id
        return ids

    def _metrics_many(self, points: Mapping[str, list[Point]]) -> None:
        ids = self._ids(points)
        bulk = self.bulk()
        if bulk is not None:
            bulk.write_many({ids[h]: found for h, found in points.items() if found})
            return
        for handle, found in points.items():
            self._dispatch("metrics", handle, (found,))

    def _end_many(self, ends: Mapping[str, RunEnd]) -> None:
        ids = self._ids(ends)
        self._metrics_many({h: end.points for h, end in ends.items() if end.points})
        runs = self.bulk_runs()
        # Artifact calls get the run's artifact URI when it is known (one query for the
        # batch), so they need not read each run back to find where its files go.
        uris = runs.artifact_uris(list(ids.values())) if runs is not None else {}
        for handle, end in ends.items():
            if end.call is not None:
                target, kwargs = end.call
                found = {**kwargs, "artifact_uri": uris.get(ids[handle])}
                self._dispatch("call", handle, (target, found))
        if runs is not None:
            runs.end({ids[h]: (end.status, end.tags) for h, end in ends.items()})
        else:
            for handle, end in ends.items():
                self._dispatch("tags", handle, (end.tags,))
                self._dispatch("end", handle, (end.status,))
        self.open.difference_update(ends)

    def ask(
        self, function: ClientCall, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> SyncReport:
        """Run ``function(client, *args, **kwargs)``, retrying transient errors; its answer."""
        found: list[Any] = []
        try:
            self._retrying(lambda: found.append(function(self.mlflow(), *args, **kwargs)))
        except Exception as error:
            return SyncReport(failure=f"{function.__name__}: {first_line(error, self.uri)}")
        return SyncReport(answer=found[-1])

    def create_runs(self, experiment_id: str, named: Mapping[str, NewRun]) -> SyncReport:
        """Create ``named`` runs with the client, each adopted under its handle; their ids.

        Adopted here rather than by the owner once the ids reach it: an owner interrupted while
        it waits for them still has its runs ended (FAILED at the latest when the writer closes).
        """
        report = self.ask(create_runs, (experiment_id, list(named.values())), {})
        if not report.failure:
            for handle, run_id in zip(named, report.answer, strict=True):
                self.run_ids[handle] = run_id
                self.open.add(handle)
        return report

    def report(self) -> SyncReport:
        """Run ids so far and the errors since the last report (which it clears)."""
        errors = {h: list(m) for h, m in self.errors.items()}
        self.errors.clear()
        return SyncReport(run_ids=dict(self.run_ids), errors=errors)

    def fail_open_runs(self, reason: str) -> None:
        """End every run still open as FAILED with ``reason``: none is left RUNNING."""
        for handle in list(self.open):
            self.execute(("tags", handle, {"onecycle.failure_reason": reason}))
            self.execute(("end", handle, "FAILED"))
