"""The MLflow writer: the same contract inline and in a writer process, on every backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from storage import open_store, resolve_store
from storage.tracking import InlineTracking, ProcessTracking, Tracking
from storage.tracking_writer import ORPHAN_REASON, UNENDED_REASON
from sweeps.tracking import trial_plot
from tests.fixtures import unique_prefix
from tests.later_drops import drop_later
from tests.mlflow_server import mlflow_server
from tests.requirements import postgres_url

WRITERS: dict[str, Callable[[str], Tracking]] = {
    "inline": InlineTracking,
    "process": ProcessTracking,
}


#: The process writer starts a Python process with MLflow in it: the quick subset skips it.
@pytest.fixture(params=["inline", pytest.param("process", marks=pytest.mark.slow)])
def writer_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    spec = resolve_store(str(tmp_path / "store"), env={})
    open_store(spec).close()
    return spec.mlflow_uri


def new_run(uri: str) -> tuple[MlflowClient, str]:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(f"e{time.monotonic_ns()}")
    return client, client.create_run(experiment).info.run_id


def test_metrics_params_tags_and_end_are_all_written(writer_kind: str, sqlite_uri: str) -> None:
    client, run_id = new_run(sqlite_uri)
    points = [
        (key, float(step) / 7, step, 1_700_000_000_000 + step)
        for step in range(2500)
        for key in ("lr", "momentum")
    ]
    with WRITERS[writer_kind](sqlite_uri) as writer:
        writer.adopt_run(run_id, run_id)
        writer.log_params(run_id, {f"p{i}": i for i in range(150)})
        for start in range(0, len(points), 300):  # many small batches, merged by the writer
            writer.log_metrics(run_id, points[start : start + 300])
        writer.set_tags(run_id, {"kind": writer_kind})
        writer.end_run(run_id, "FINISHED")
        report = writer.sync()
    assert report.errors == {} and report.run_ids[run_id] == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert len(run.data.params) == 150 and run.data.tags["kind"] == writer_kind
    lr = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "lr"))
    assert lr == [(step, float(step) / 7) for step in range(2500)]


def test_closing_the_writer_ends_a_run_its_owner_never_ended(
    writer_kind: str, sqlite_uri: str
) -> None:
    client, run_id = new_run(sqlite_uri)
    _, ended = new_run(sqlite_uri)
    writer = WRITERS[writer_kind](sqlite_uri)
    writer.adopt_run(run_id, run_id)
    writer.log_metrics(run_id, [("lr", 0.1, 0, 1_700_000_000_000)])
    writer.adopt_run(ended, ended)
    writer.end_run(ended, "FINISHED")
    writer.close()  # e.g. a signal landed between a trial's last metric and its end_run
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["onecycle.failure_reason"] == UNENDED_REASON
    assert run.data.metrics["lr"] == 0.1
    assert client.get_run(ended).info.status == "FINISHED"


@pytest.mark.slow
def test_the_writer_process_outlives_the_signals_that_stop_its_owner(sqlite_uri: str) -> None:
    """Ctrl+C in a terminal and SLURM's scancel signal the whole process group: the writer
    stays to end the run its owner then ends, and to write what it was sent."""
    client, run_id = new_run(sqlite_uri)
    writer = ProcessTracking(sqlite_uri)
    writer.adopt_run(run_id, run_id)
    writer.log_metrics(run_id, [("lr", 0.5, 0, 1_700_000_000_000)])
    writer.sync()
    pid = writer._process.pid
    assert pid is not None
    for stop in (signal.SIGINT, signal.SIGTERM):
        os.kill(pid, stop)
    time.sleep(1.0)
    assert writer._process.is_alive()
    writer.end_run(run_id, "FAILED")
    assert writer.close().errors == {}
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and run.data.metrics["lr"] == 0.5


def test_failures_are_reported_at_sync_and_the_run_still_ends(
    writer_kind: str, sqlite_uri: str
) -> None:
    client, run_id = new_run(sqlite_uri)
    with WRITERS[writer_kind](sqlite_uri) as writer:
        writer.log_metrics("never-started", [("lr", 1.0, 0, 0)])
        writer.adopt_run(run_id, run_id)
        writer.log_params(run_id, {"a": 1})
        writer.log_params(run_id, {"a": 2})  # MLflow refuses changing a param
        writer.end_run(run_id, "FAILED")
        report = writer.sync()
    assert "no run was started for handle 'never-started'" in report.errors["never-started"][0]
    assert report.errors[run_id][0].startswith("params: ")
    assert client.get_run(run_id).info.status == "FAILED"


@pytest.mark.slow  # two processes
def test_writer_process_closes_runs_its_owner_left_open(sqlite_uri: str) -> None:
    client, run_id = new_run(sqlite_uri)
    code = (
        "import os, sys, time\n"
        "from storage.tracking import ProcessTracking\n"
        "w = ProcessTracking(sys.argv[1])\n"
        "w.adopt_run(sys.argv[2], sys.argv[2])\n"
        "w.log_metrics(sys.argv[2], [('lr', 0.5, 0, 0)])\n"
        "w.sync()\n"
        "os._exit(9)  # dies without closing the run, as a SIGKILLed worker would\n"
    )
    subprocess.run([sys.executable, "-c", code, sqlite_uri, run_id], check=False, timeout=120)
    deadline = time.monotonic() + 30
    while client.get_run(run_id).info.status == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.5)
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["onecycle.failure_reason"] == ORPHAN_REASON
    assert [m.value for m in client.get_metric_history(run_id, "lr")] == [0.5]


@pytest.fixture(
    params=[
        pytest.param("postgresql", marks=pytest.mark.slow),  # a writer process
        pytest.param("mlflow-server", marks=pytest.mark.slow),  # a server and a writer process
    ]
)
def remote_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgresql":
        server = postgres_url()
        prefix = unique_prefix("writer")
        spec = resolve_store(server, db_prefix=prefix, env={})
        open_store(spec).close()
        yield spec.mlflow_uri
        drop_later(server, prefix)
    else:
        with mlflow_server(tmp_path) as uri:
            yield uri


def test_process_writer_on_postgresql_and_a_tracking_server(remote_uri: str) -> None:
    client, run_id = new_run(remote_uri)
    with ProcessTracking(remote_uri) as writer:
        writer.adopt_run(run_id, run_id)
        writer.log_metrics(run_id, [("lr", step / 10, step, 0) for step in range(1200)])
        writer.end_run(run_id, "FINISHED")
        assert writer.sync().errors == {}
    assert len(client.get_metric_history(run_id, "lr")) == 1200
    assert client.get_run(run_id).info.status == "FINISHED"


@pytest.mark.slow  # a writer process
def test_deferred_calls_run_when_idle_after_the_runs_metrics(
    sqlite_uri: str, tmp_path: Path
) -> None:
    """A deferred plot runs once the writer is idle, with the run's held metrics written first,
    and every deferred call is done before a sync returns."""
    client = MlflowClient(tracking_uri=sqlite_uri)
    experiment = client.create_experiment("idle", artifact_location=str(tmp_path / "artifacts"))
    runs = [client.create_run(experiment).info.run_id for _ in range(3)]
    with ProcessTracking(sqlite_uri) as writer:
        for run_id in runs:
            writer.adopt_run(run_id, run_id)
            writer.log_metrics(run_id, [("lr", 0.1 * s, s, 1000 + s) for s in range(20)])
        writer.call_when_idle(runs[0], trial_plot)
        # No sync: the writer is idle now, and the metrics are held (HOLD_S) when it gets here.
        deadline = time.monotonic() + 60  # as soon as it is there; a loaded machine is slow
        while not client.list_artifacts(runs[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [f.path for f in client.list_artifacts(runs[0])] == ["lr_momentum.png"]
        for run_id in runs[1:]:
            writer.call_when_idle(run_id, trial_plot)
        writer.wait_for(writer.mark()).raise_errors()
        writer.sync().raise_errors()
        for run_id in runs[1:]:
            assert [f.path for f in client.list_artifacts(run_id)] == ["lr_momentum.png"]


def modules_loaded(client: MlflowClient, names: list[str]) -> dict[str, bool]:
    """Asked of the writer: which of ``names`` it has imported."""
    return {name: sys.modules.get(name) is not None for name in names}


@pytest.mark.slow
def test_warmed_imports_happen_while_commands_keep_coming_and_leave_scikit_learn_out(
    sqlite_uri: str,
) -> None:
    """A writer that never has 0.25 s without a command (metrics every 50 ms, as a fused batch
    sends them) still imports what it was asked to warm; Optuna's importances come without
    scikit-learn, and a sweep summary's PED-ANOVA plot still works there."""
    _, run_id = new_run(sqlite_uri)
    names = ["optuna.importance", "sklearn"]
    with ProcessTracking(sqlite_uri) as writer:
        writer.adopt_run("r", run_id)
        writer.warm("optuna.importance")
        loaded = {name: False for name in names}
        deadline, step = time.monotonic() + 60, 0
        while not loaded["optuna.importance"] and time.monotonic() < deadline:
            writer.log_metrics("r", [("lr", 0.1, step, 1000 + step)])
            step += 1
            time.sleep(0.05)
            if step % 10 == 0:
                loaded = writer.ask(modules_loaded, names)
        assert loaded == {"optuna.importance": True, "sklearn": False}
        writer.sync().raise_errors()


def collector_state(client: MlflowClient) -> dict[str, Any]:
    """Asked of the writer: its garbage collector's state, and whether matplotlib is in."""
    import gc

    return {
        "enabled": gc.isenabled(),
        "frozen": gc.get_freeze_count(),
        "matplotlib": "matplotlib.pyplot" in sys.modules,
    }


@pytest.mark.slow
def test_the_writers_heavy_imports_are_frozen_out_of_the_collector(sqlite_uri: str) -> None:
    """MLflow's and matplotlib's objects are frozen, not swept again at every full collection;
    the collector stays on for what the writer makes afterwards."""
    with ProcessTracking(sqlite_uri) as writer:
        deadline = time.monotonic() + 60
        state = writer.ask(collector_state)
        while not state["matplotlib"] and time.monotonic() < deadline:
            time.sleep(0.5)  # imported at its first quiet moment (0.25 s with no command)
            state = writer.ask(collector_state)
        assert state["enabled"] and state["matplotlib"]
        assert state["frozen"] > 100_000, state  # MLflow alone brings hundreds of thousands
        writer.sync().raise_errors()
