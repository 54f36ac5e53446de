"""The MLflow override: a tracking server over http, as in the team deployment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import open_store, resolve_store, store_info
from sweeps.cli import main
from tests.fixtures import digits_sweep, write_sweep
from tests.mlflow_server import mlflow_server

pytestmark = [
    pytest.mark.slow,  # an MLflow server; see pyproject's markers
    pytest.mark.xdist_group("mlflow-server"),  # one pytest worker starts the server once
]


@pytest.fixture(scope="module")
def server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri


def test_store_with_tracking_server_override_opens_and_tracks(
    server_uri: str, tmp_path: Path
) -> None:
    spec = resolve_store(str(tmp_path / "store"), mlflow_uri=server_uri, env={})
    with open_store(spec) as store:
        experiment = store.mlflow.create_experiment("through-the-server")
        run = store.mlflow.create_run(experiment)
        store.mlflow.log_metric(run.info.run_id, "lr", 0.1, step=0)
        store.mlflow.set_terminated(run.info.run_id)
        history = store.mlflow.get_metric_history(run.info.run_id, "lr")
        info = store_info(store)
    assert [m.value for m in history] == [0.1]
    assert info["mlflow"]["backend"] == "mlflow-server"
    assert info["optuna"]["backend"] == "sqlite"
    assert not (tmp_path / "store" / "mlflow.db").exists()


def test_train_through_the_server_ends_its_parent_and_run(server_uri: str, tmp_path: Path) -> None:
    """There MLflow chooses the ids: the writer creates the train's parent and run and ends
    both (FINISHED), the parent carrying the params file as its param."""
    sweep = write_sweep(tmp_path, digits_sweep("served-train", 1))
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"cycle_min_lr": 0.01, "cycle_max_lr": 0.1}))
    store = ["--store", str(tmp_path / "store"), "--mlflow-uri", server_uri]
    assert main(["train", str(sweep), "--params", str(params), *store]) == 0
    spec = resolve_store(str(tmp_path / "store"), mlflow_uri=server_uri, env={})
    with open_store(spec) as opened:
        experiment = opened.mlflow.get_experiment_by_name("served-train")
        assert experiment is not None
        runs = opened.mlflow.search_runs([experiment.experiment_id])
    roles = sorted((run.data.tags.get("onecycle.role", "trial"), run.info.status) for run in runs)
    assert roles == [("sweep", "FINISHED"), ("trial", "FINISHED")], roles
    parent = next(run for run in runs if run.data.tags.get("onecycle.role") == "sweep")
    assert parent.data.params == {"params_file": str(params)}
    assert not (tmp_path / "store" / "mlflow.db").exists()
