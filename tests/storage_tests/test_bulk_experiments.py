"""A sweep's experiment and parent run made in SQL read back through MLflow like the client's."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.entities import Experiment, Run

from storage import StoreSpec, open_store
from storage.bulk_experiments import BulkExperimentWriter
from storage.tracking import BULK_ENV
from sweeps.tracking import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    direct_experiment_and_parent,
    ensure_experiment,
    start_parent_run,
)
from sweeps.tracking._sweep import ensure_experiment_direct
from tests.storage_tests.test_schema_revisions import _stamp

pytestmark = pytest.mark.versions

CONFIG = {"workload": {"builtin": "digits", "epochs": 3}, "search": {"n_trials": 4}}


def _experiment_view(experiment: Experiment, root: str) -> tuple[object, ...]:
    location = experiment.artifact_location
    assert location.startswith(root)
    return (experiment.name, experiment.lifecycle_stage, experiment.tags, location[len(root) :])


def _run_view(run: Run, root: str) -> tuple[object, ...]:
    info = run.info
    assert info.artifact_uri.startswith(root)
    relative = info.artifact_uri[len(root) :].replace(info.run_id, "RUN")
    return (
        info.run_name,
        info.status,
        info.lifecycle_stage,
        info.user_id,
        info.end_time,
        run.data.tags,
        run.data.params,
        relative,
    )


def test_an_experiment_and_parent_made_in_sql_equal_the_clients(
    new_spec: Callable[..., StoreSpec], tmp_path: Path
) -> None:
    by_api = new_spec(artifacts=str(tmp_path / "api"))
    by_sql = new_spec(artifacts=str(tmp_path / "sql"))
    with open_store(by_api) as store:
        client = store.mlflow
        experiment = ensure_experiment(client, "s", by_api.artifact_location)
        parent = start_parent_run(client, experiment, "s", "s", CONFIG)
        expected = (
            _experiment_view(client.get_experiment(experiment), by_api.artifact_location),
            _run_view(client.get_run(parent), by_api.artifact_location),
        )
    with open_store(by_sql) as store:
        made = direct_experiment_and_parent(
            by_sql.mlflow_uri, "s", by_sql.artifact_location, CONFIG
        )
        assert made is not None
        ours, our_parent = made
        client = store.mlflow
        assert (
            _experiment_view(client.get_experiment(ours), by_sql.artifact_location),
            _run_view(client.get_run(our_parent), by_sql.artifact_location),
        ) == expected
        assert client.get_experiment_by_name("s").experiment_id == ours
        assert client.get_run(our_parent).info.experiment_id == ours
        # MLflow's API goes on from there: a run and a tag in the experiment made in SQL.
        run = client.create_run(ours, run_name="trial-0000")
        client.set_experiment_tag(ours, "note", "x")
        assert client.get_experiment(ours).tags["note"] == "x"
        found = {r.info.run_id for r in client.search_runs([ours])}
        assert found == {our_parent, run.info.run_id}
        # Asked again: the same experiment (not a second one), a new parent run.
        again = direct_experiment_and_parent(
            by_sql.mlflow_uri, "s", by_sql.artifact_location, CONFIG
        )
        assert again is not None and again[0] == ours and again[1] != our_parent
        assert len(client.search_experiments()) == 2  # MLflow's Default and the sweep's


def test_an_existing_experiment_is_tagged_and_a_deleted_one_left_to_the_api(
    new_spec: Callable[..., StoreSpec], tmp_path: Path
) -> None:
    spec = new_spec(artifacts=str(tmp_path / "artifacts"))
    root = spec.artifact_location
    with open_store(spec) as store:
        client = store.mlflow
        plain = client.create_experiment("plain", artifact_location=f"{root}/plain")
        gone = client.create_experiment("gone", artifact_location=f"{root}/gone")
        client.delete_experiment(gone)
        writer = BulkExperimentWriter.for_uri(spec.mlflow_uri)
        assert writer is not None
        assert ensure_experiment_direct(writer, "plain", root) == plain
        assert client.get_experiment(plain).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
        assert ensure_experiment_direct(writer, "gone", root) is None
        assert direct_experiment_and_parent(spec.mlflow_uri, "gone", root, CONFIG) is None
        # Two processes making one sweep's experiment at once: the second finds the first's.
        first = writer.create("raced", f"{root}/raced", {"onecycle.sweep": "raced"})
        assert first is not None
        assert writer.create("raced", f"{root}/raced", {}) is None
        assert ensure_experiment_direct(writer, "raced", root) == first
        assert client.get_experiment(first).tags == {
            "onecycle.sweep": "raced",
            EXPERIMENT_KIND_TAG: EXPERIMENT_KIND,
        }
        writer.engine.dispose()


def test_the_bulk_switch_and_an_untested_schema_revision_leave_both_to_the_api(
    new_spec: Callable[..., StoreSpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = new_spec(artifacts=str(tmp_path / "artifacts"))
    with open_store(spec) as store:
        store.mlflow.search_experiments()  # the schema exists
    monkeypatch.setenv(BULK_ENV, "0")  # the user's switch to MLflow's API for everything
    assert direct_experiment_and_parent(spec.mlflow_uri, "s", spec.artifact_location, {}) is None
    monkeypatch.delenv(BULK_ENV)
    assert direct_experiment_and_parent(spec.mlflow_uri, "t", spec.artifact_location, {})
    _stamp(spec.mlflow_uri, uuid.uuid4().hex[:12])
    assert direct_experiment_and_parent(spec.mlflow_uri, "s", spec.artifact_location, {}) is None


@pytest.mark.parametrize(
    ("name", "location", "env", "usable"),
    [
        ("s", "/data/artifacts/s", {}, True),
        ("s", "s3://bucket/artifacts/s", {}, True),
        ("s", "artifacts/s", {}, False),  # MLflow makes a relative path absolute
        ("s", "file:///data/artifacts/s", {}, False),  # and may rewrite a file: URI
        ("s" * 257, "/data/s", {}, False),
        ("s", "/" + "d" * 300, {}, False),
        ("s", "/data/artifacts/s", {"MLFLOW_ENABLE_WORKSPACES": "true"}, False),
        ("s", "/data/artifacts/s", {"MLFLOW_WORKSPACE": "team"}, False),
        ("s", "/data/artifacts/s", {"MLFLOW_ENABLE_WORKSPACES": "false"}, True),
        ("s", "runs:/abc/artifacts", {}, False),  # MLflow refuses it
        ("s", "/data/artifacts/s", {"MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH": "10"}, False),
        ("s", "/data/s", {"MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH": "10"}, True),
    ],
)
def test_only_what_mlflow_would_store_unchanged_is_written_in_sql(
    name: str, location: str, env: dict[str, str], usable: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in (
        "MLFLOW_ENABLE_WORKSPACES",
        "MLFLOW_WORKSPACE",
        "MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH",
    ):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    assert BulkExperimentWriter.usable(name, location, {"onecycle.sweep": name}) is usable
