"""Runs created and ended in bulk read back through MLflow like runs made by its client."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Param, Run

from storage import StoreSpec, open_store
from storage.bulk_runs import BulkRunWriter, NewRun, run_artifact_uri
from storage.errors import StoreError
from storage.tracking import BULK_ENV, InlineTracking, ProcessTracking, RunEnd
from sweeps.tracking import trial_artifacts

pytestmark = pytest.mark.versions

TAGS = {"mlflow.parentRunId": "abc", "onecycle.sweep": "s", "onecycle.trial_number": "3"}
PARAMS = {"cycle_max_lr": 0.1, "cycle_first_step_size": 40, "long": "x" * 7000}


def _view(run: Run) -> tuple[object, ...]:
    info = run.info
    return (
        info.run_name,
        info.status,
        info.lifecycle_stage,
        info.user_id,
        info.experiment_id,
        info.artifact_uri.rsplit("/", 2)[0],  # the experiment's location; the run id differs
        info.artifact_uri.rsplit("/", 1)[1],
        info.end_time is None,
        run.data.tags,
        run.data.params,
    )


def test_created_and_ended_runs_match_the_clients(
    new_spec: Callable[..., StoreSpec], tmp_path: Path
) -> None:
    spec = new_spec()
    with open_store(spec) as store:
        client = store.mlflow
        experiment = client.create_experiment(
            f"bulk-{time.time_ns()}", artifact_location=str(tmp_path / "artifacts")
        )
        reference = client.create_run(experiment, run_name="trial-0003", tags=TAGS).info.run_id
        client.log_batch(reference, params=[Param(k, str(v)[:6000]) for k, v in PARAMS.items()])
        writer = BulkRunWriter.for_uri(spec.mlflow_uri)
        assert writer is not None
        (ours,) = writer.create(experiment, [NewRun("trial-0003", TAGS, PARAMS)])
        assert _view(client.get_run(ours)) == _view(client.get_run(reference))
        assert client.search_runs([experiment], "tags.`onecycle.trial_number` = '3'")
        # Ending: a tag set (one replaced), the status and end time.
        client.set_tag(reference, "onecycle.sweep", "t")
        client.set_tag(reference, "pruned", "true")
        client.set_terminated(reference, "KILLED")
        writer.end({ours: ("KILLED", {"onecycle.sweep": "t", "pruned": "true"})})
        mine, theirs = client.get_run(ours), client.get_run(reference)
        assert _view(mine) == _view(theirs)
        assert mine.info.end_time is not None and mine.info.end_time >= mine.info.start_time
        # Artifacts land where MLflow looks for them.
        client.log_dict(ours, {"a": 1}, "x.json")
        assert [f.path for f in client.list_artifacts(ours)] == ["x.json"]


def test_refusals_leave_nothing_behind(new_spec: Callable[..., StoreSpec]) -> None:
    spec = new_spec()
    with open_store(spec) as store:
        client = store.mlflow
        experiment = client.create_experiment(f"bulk-{time.time_ns()}")
        writer = BulkRunWriter.for_uri(spec.mlflow_uri)
        assert writer is not None
        with pytest.raises(StoreError, match="experiment_id: no active experiment 999999"):
            writer.create("999999", [NewRun("x")])
        (run_id,) = writer.create(experiment, [NewRun("x")])
        with pytest.raises(StoreError, match="status: must be one of"):
            writer.end({run_id: ("DONE", {"a": "b"})})
        run = client.get_run(run_id)
        assert run.info.status == "RUNNING" and "a" not in run.data.tags


def test_http_uris_are_left_to_the_client() -> None:
    assert BulkRunWriter.for_uri("http://127.0.0.1:5000") is None


@pytest.mark.parametrize("bulk", ["1", "0"])
@pytest.mark.parametrize(
    "kind", [InlineTracking, pytest.param(ProcessTracking, marks=pytest.mark.slow)]
)
def test_end_runs_writes_held_metrics_finals_tags_and_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bulk: str, kind: type
) -> None:
    from storage import resolve_store

    monkeypatch.setenv(BULK_ENV, bulk)  # "0": MLflow's client, run by run
    spec = resolve_store(str(tmp_path / "store"), env={})
    open_store(spec).close()
    client = MlflowClient(tracking_uri=spec.mlflow_uri)
    experiment = client.create_experiment("e", artifact_location=str(tmp_path / "artifacts"))
    runs = [client.create_run(experiment).info.run_id for _ in range(3)]
    with kind(spec.mlflow_uri) as tracking:
        for run_id in runs:
            tracking.adopt_run(run_id, run_id)
            tracking.log_metrics(run_id, [("lr", 0.1 * s, s, 1000 + s) for s in range(5)])
        tracking.end_runs(
            {
                run_id: RunEnd(
                    status,
                    {"onecycle.trial_state": state},
                    [("objective", float(i), 4, 2000)],
                    (
                        trial_artifacts,
                        {"scheduler_block": {"type": "OneCycle"}, "plot": i == 0},
                    ),
                )
                for i, (run_id, status, state) in enumerate(
                    zip(
                        runs,
                        ["FINISHED", "KILLED", "FAILED"],
                        ["COMPLETE", "PRUNED", "FAIL"],
                        strict=True,
                    )
                )
            }
        )
        assert not tracking.sync().errors
    for i, (run_id, status) in enumerate(zip(runs, ["FINISHED", "KILLED", "FAILED"], strict=True)):
        run = client.get_run(run_id)
        assert run.info.status == status and run.info.end_time is not None
        assert run.data.metrics == {"lr": pytest.approx(0.4), "objective": float(i)}
        assert len(client.get_metric_history(run_id, "lr")) == 5
        names = sorted(f.path for f in client.list_artifacts(run_id))
        expected = (
            ["deepspeed_scheduler.json", "lr_momentum.png"]
            if i == 0
            else ["deepspeed_scheduler.json"]
        )
        assert names == expected
        local = client.download_artifacts(run_id, "deepspeed_scheduler.json", str(tmp_path))
        assert json.loads(Path(local).read_text()) == {"scheduler": {"type": "OneCycle"}}


@pytest.mark.parametrize(
    "location",
    [
        "file:///tmp/store/artifacts/sweep",
        "/tmp/a store/artifacts",
        "relative/artifacts",
        "mlflow-artifacts:/sweep",
        "mlflow-artifacts://host:5000/sweep",
        "s3://bucket/prefix?versionId=1",
        "gs://bucket",
        "file:relative/artifacts",
        "dbfs:/databricks/mlflow",
        "http://host:5000/api/2.0/artifacts#frag",
    ],
)
def test_artifact_uris_are_derived_as_mlflow_derives_them(location: str) -> None:
    from mlflow.utils.uri import append_to_uri_path

    run_id = "0123456789abcdef0123456789abcdef"
    expected = append_to_uri_path(location, run_id, "artifacts")  # type: ignore[no-untyped-call]
    assert run_artifact_uri(location, run_id) == expected
