"""The MLflow override: a tracking server over http, as in the team deployment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import open_store, resolve_store, store_info
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
