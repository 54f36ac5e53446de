"""The direct-to-table metric writer leaves MLflow's tables exactly as ``log_batch`` would."""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.entities import Metric
from sqlalchemy import text

from storage import StoreSpec, open_store, resolve_store
from storage.bulk_metrics import BulkMetricWriter
from storage.connect import engine_for

pytestmark = pytest.mark.versions


def _points(now: int) -> list[tuple[str, float, int, int]]:
    return [
        ("lr", 0.1, 0, now),
        ("lr", 0.2, 1, now),
        ("lr", 0.15, 3, now),
        ("lr", 0.9, 2, now + 5),  # older step, later time: not the latest
        ("loss", math.nan, 0, now),
        ("loss", math.inf, 1, now),
        ("loss", -math.inf, 2, now),
        ("loss", 1.5, 2, now),  # same step and time, larger value: latest by MLflow's rule
        ("lr", 0.1, 0, now),  # an exact duplicate
    ]


def _history(client: object, run_id: str, key: str) -> list[tuple[int, int, float]]:
    found = client.get_metric_history(run_id, key)  # type: ignore[attr-defined]
    return sorted((m.step, m.timestamp, 0.0 if math.isnan(m.value) else m.value) for m in found)


def test_same_history_and_latest_values_as_log_batch(
    new_spec: Callable[..., StoreSpec],
) -> None:
    spec = new_spec()
    with open_store(spec) as store:
        client = store.mlflow
        experiment = client.create_experiment(f"bulk-{time.time_ns()}")
        ours = client.create_run(experiment).info.run_id
        theirs = client.create_run(experiment).info.run_id
        writer = BulkMetricWriter.for_uri(spec.mlflow_uri)
        assert writer is not None
        now = int(time.time() * 1000)
        points = _points(now)
        writer.write(ours, points[:5])
        writer.write(ours, points[5:])
        writer.write(ours, points[:2])  # written again: nothing new
        client.log_batch(theirs, metrics=[Metric(k, v, t, s) for k, v, s, t in points[:5]])
        client.log_batch(theirs, metrics=[Metric(k, v, t, s) for k, v, s, t in points[5:]])
        for key in ("lr", "loss"):
            assert _history(client, ours, key) == _history(client, theirs, key)
        mine = client.get_run(ours).data.metrics
        reference = client.get_run(theirs).data.metrics
        assert mine == reference
        assert mine["lr"] == 0.15 and mine["loss"] == 1.5
        writer.close()


def test_many_runs_at_once_match_log_batch(new_spec: Callable[..., StoreSpec]) -> None:
    """A fused batch's worth: thousands of values over several runs in one call (on
    PostgreSQL this goes through COPY), duplicates and special values included."""
    spec = new_spec()
    with open_store(spec) as store:
        client = store.mlflow
        experiment = client.create_experiment(f"many-{time.time_ns()}")
        ours = [client.create_run(experiment).info.run_id for _ in range(3)]
        theirs = [client.create_run(experiment).info.run_id for _ in range(3)]
        writer = BulkMetricWriter.for_uri(spec.mlflow_uri)
        assert writer is not None
        now = int(time.time() * 1000)
        points = [("lr", 0.001 * s, s, now + s) for s in range(700)] + _points(now)
        writer.write_many({run_id: points for run_id in ours})
        writer.write_many({ours[0]: points[:50]})  # again: nothing new
        for run_id in theirs:
            for start in range(0, len(points), 1000):
                chunk = points[start : start + 1000]
                client.log_batch(run_id, metrics=[Metric(k, v, t, s) for k, v, s, t in chunk])
        for mine, reference in zip(ours, theirs, strict=True):
            for key in ("lr", "loss"):
                assert _history(client, mine, key) == _history(client, reference, key)
            assert client.get_run(mine).data.metrics == client.get_run(reference).data.metrics
        writer.close()


def test_other_uris_and_unknown_schemas_use_mlflows_own_path(tmp_path: Path) -> None:
    assert BulkMetricWriter.for_uri("http://127.0.0.1:5000") is None
    database = f"{tmp_path}/other.db"
    connection = sqlite3.connect(database)
    connection.execute("create table metrics (key text, value real)")
    connection.execute("create table latest_metrics (key text, value real)")
    connection.close()
    assert BulkMetricWriter.for_uri(f"sqlite:///{database}") is None
    assert BulkMetricWriter.for_uri(f"sqlite:///{tmp_path}/missing.db") is None


def test_sqlite_store_connections_commit_without_waiting_for_the_disk(tmp_path: Path) -> None:
    spec = resolve_store(str(tmp_path / "store"), env={})
    with open_store(spec):
        engine = engine_for(spec.optuna_url)
        with engine.connect() as connection:
            assert connection.execute(text("pragma journal_mode")).scalar() == "wal"
            assert connection.execute(text("pragma synchronous")).scalar() == 1  # NORMAL
        engine.dispose()
