"""Many MLflow runs created, and later ended, in one transaction each.

``MlflowClient.create_run`` reads the experiment, inserts the run and its tags and returns the
run read back: about 6 ms a run on SQLite here, and logging its params is another transaction.
A fused batch creates hundreds of runs at once, so this writer inserts the same rows MLflow
would (``runs`` with the artifact URI MLflow derives, ``tags`` including ``mlflow.runName``,
``params``) with one ``executemany`` per table, and ends runs (status, end time, tags) the
same way.

As with :mod:`storage.bulk_metrics`, it is used only when the tracking URI is a SQLite or
PostgreSQL database whose tables have exactly the columns it was written against (checked once);
an MLflow server over HTTP or another schema goes through ``MlflowClient``.
"""

from __future__ import annotations

import posixpath
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select

from storage.errors import StoreError
from storage.schema_guard import TableWriter

COLUMNS: dict[str, set[str]] = {
    "runs": {
        "run_uuid",
        "name",
        "source_type",
        "source_name",
        "entry_point_name",
        "user_id",
        "status",
        "start_time",
        "end_time",
        "source_version",
        "lifecycle_stage",
        "artifact_uri",
        "experiment_id",
        "deleted_time",
    },
    "tags": {"key", "value", "run_uuid"},
    "params": {"key", "value", "run_uuid"},
    "experiments": {"experiment_id", "artifact_location", "lifecycle_stage"},
}
#: MLflow's limits on what one param or tag value may hold.
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
RUN_NAME_TAG = "mlflow.runName"
END_STATUSES = ("FINISHED", "FAILED", "KILLED")


@dataclass(frozen=True)
class NewRun:
    """A run to create: its name, tags and params."""

    name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, object] = field(default_factory=dict)


class BulkRunWriter(TableWriter):
    """Creates and ends many runs of one experiment at once; see the module docstring."""

    LIBRARY = "mlflow"
    COLUMNS = COLUMNS
    READ_ONLY = frozenset({"experiments"})  # read for artifact locations; never written

    def create(
        self, experiment_id: str, runs: Sequence[NewRun], ids: Sequence[str] | None = None
    ) -> list[str]:
        """Create ``runs`` as RUNNING in ``experiment_id``; their run ids, in order.

        ``ids``: the run ids to give them (new ones otherwise), as :func:`plan_run_id` makes.
        """
        if not runs:
            return []
        t = self.tables
        experiments = t["experiments"]
        now = int(time.time() * 1000)
        with self.engine.begin() as connection:
            found = connection.execute(
                select(experiments.c.artifact_location, experiments.c.lifecycle_stage).where(
                    experiments.c.experiment_id == int(experiment_id)
                )
            ).first()
            if found is None or found.lifecycle_stage != "active":
                raise StoreError(f"experiment_id: no active experiment {experiment_id}")
            ids = list(ids) if ids is not None else [plan_run_id() for _ in runs]
            rows, tags, params = [], [], []
            for run_id, run in zip(ids, runs, strict=True):
                rows.append(
                    {
                        "run_uuid": run_id,
                        "name": run.name,
                        "source_type": "UNKNOWN",
                        "source_name": "",
                        "entry_point_name": "",
                        "user_id": run.tags.get("mlflow.user", "unknown"),
                        "status": "RUNNING",
                        "start_time": now,
                        "end_time": None,
                        "source_version": "",
                        "lifecycle_stage": "active",
                        "artifact_uri": run_artifact_uri(found.artifact_location, run_id),
                        "experiment_id": int(experiment_id),
                        "deleted_time": None,
                    }
                )
                named = {**run.tags, RUN_NAME_TAG: run.name}
                tags.extend(_pairs(run_id, named, MAX_TAG_VALUE))
                params.extend(_pairs(run_id, run.params, MAX_PARAM_VALUE))
            connection.execute(t["runs"].insert(), rows)
            connection.execute(t["tags"].insert(), tags)
            if params:
                connection.execute(t["params"].insert(), params)
        return ids

    def artifact_uris(self, run_ids: Sequence[str]) -> dict[str, str]:
        """Each run's artifact URI, read in one query."""
        runs = self.tables["runs"]
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(runs.c.run_uuid, runs.c.artifact_uri).where(runs.c.run_uuid.in_(run_ids))
            )
            return {str(run_id): str(uri) for run_id, uri in rows}

    def end(self, ended: Mapping[str, tuple[str, Mapping[str, str]]]) -> None:
        """End runs: ``{run_id: (status, tags)}``; tags are set (replacing a value) first."""
        if not ended:
            return
        for status, _ in ended.values():
            if status not in END_STATUSES:
                raise StoreError(f"status: must be one of {', '.join(END_STATUSES)}, got {status}")
        t = self.tables
        now = int(time.time() * 1000)
        tags = [
            row
            for run_id, (_, found) in ended.items()
            for row in _pairs(run_id, found, MAX_TAG_VALUE)
        ]
        with self.engine.begin() as connection:
            if tags:
                upsert = self._insert(t["tags"])
                connection.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["key", "run_uuid"], set_={"value": upsert.excluded.value}
                    ),
                    tags,
                )
            runs = t["runs"]
            connection.execute(
                runs.update()
                .where(runs.c.run_uuid == bindparam("id_"))
                .values(status=bindparam("status_"), end_time=now),
                [{"id_": run_id, "status_": status} for run_id, (status, _) in ended.items()],
            )


def run_artifact_uri(location: str, run_id: str) -> str:
    """``<location>/<run_id>/artifacts``, as MLflow derives a new run's artifact URI.

    The run's folders are joined to the path part of a URI (its scheme, host and query kept),
    or to a plain path; a test holds this to MLflow's own derivation, which would cost this
    process MLflow's import.
    """
    parts = urllib.parse.urlsplit(location)
    if len(parts.scheme) < 2:  # no scheme (or a Windows drive letter): a path
        return posixpath.join(location, run_id, "artifacts")
    path = posixpath.join(parts.path, run_id, "artifacts")
    if parts.path.startswith("/"):
        return urllib.parse.urlunsplit(parts._replace(path=path))
    # "file:relative": urlunsplit would add "//" and a "/" for such schemes; keep it as given.
    return f"{parts.scheme}:" + urllib.parse.urlunsplit(parts._replace(scheme="", path=path))


def plan_run_id() -> str:
    """A new run's id, chosen before the run is created (MLflow's form: 32 hex digits)."""
    return uuid.uuid4().hex


def create_planned(
    client: Any,
    uri: str,
    experiment: tuple[Callable[..., str], tuple[Any, ...]],
    runs: Sequence[tuple[str, NewRun]],
) -> None:
    """Create ``runs`` (``(run id, run)``) in the experiment ``experiment`` names, in one go.

    ``experiment`` is ``(function, args)``: ``function(client, *args)`` gives the experiment id
    (made if needed). Run where the writes happen (``Tracking.post``), so its caller trains while
    the writer is still starting; only for the database stores the bulk writer takes.
    """
    writer = BulkRunWriter.for_uri(uri)
    if writer is None:
        raise StoreError(f"runs with planned ids need a database tracking store, got {uri!r}")
    try:
        function, args = experiment
        writer.create(function(client, *args), [run for _, run in runs], [i for i, _ in runs])
    finally:
        writer.engine.dispose()


def create_runs(client: Any, experiment_id: str, runs: Sequence[NewRun]) -> list[str]:
    """``runs`` created one by one by MLflow's ``client`` (tags only); their run ids, in order.

    The path for a tracking server, or tables the bulk writer does not know; run where the
    client is (the tracking writer, via ``Tracking.ask``).
    """
    created = [
        client.create_run(experiment_id, run_name=run.name, tags=dict(run.tags)) for run in runs
    ]
    return [str(run.info.run_id) for run in created]


def _pairs(run_id: str, values: Mapping[str, object], limit: int) -> list[dict[str, Any]]:
    return [
        {"key": key, "value": str(value)[:limit], "run_uuid": run_id}
        for key, value in values.items()
    ]
