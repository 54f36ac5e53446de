"""A short sweep, one trial at a time and fused, records every trial and run on the installed
Optuna and MLflow, taking the bulk path on the schema revisions CI has tested.

`.ci/run` runs the `versions` tests on the newest libraries that resolve and again in a second
venv on the oldest that ``pyproject.toml`` allows (docs/storage.md#library-versions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from storage import StoreSpec, open_store
from sweeps.cli import main
from tests.conftest import store_args
from tests.fixtures import CONTINUOUS_SPACE, digits_sweep, write_sweep

pytestmark = [pytest.mark.versions, pytest.mark.slow]
SPACE = {key: CONTINUOUS_SPACE[key] for key in ("cycle_min_lr", "cycle_max_lr")}


@pytest.mark.parametrize("fused", [0, 2], ids=["single", "fused"])
def test_a_short_sweep_records_every_trial_and_run(
    new_spec: Callable[..., StoreSpec],
    fused: int,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = new_spec()
    path = write_sweep(tmp_path, digits_sweep("versions", 4, space=SPACE, batch_size=256))
    command = ["run", str(path), *store_args(spec)] + (["--fused", str(fused)] if fused else [])
    with caplog.at_level(logging.WARNING, logger="storage.schema_revisions"):
        assert main(command) == 0
    assert not [r for r in caplog.records if r.name == "storage.schema_revisions"]  # bulk path
    with open_store(spec) as store:
        record = store.sweeps.get("versions")
        assert record.status == "finished"
        study = optuna.load_study(study_name=record.study_name, storage=store.optuna_storage)
        trials = study.get_trials()
        assert [t.number for t in trials] == [0, 1, 2, 3]
        assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
        client = store.mlflow
        for trial in trials:
            run = client.get_run(trial.user_attrs["mlflow_run_id"])
            assert run.info.status == "FINISHED"
            assert float(run.data.params["cycle_max_lr"]) == pytest.approx(
                trial.params["cycle_max_lr"]
            )
            assert run.data.metrics["val_accuracy"] == pytest.approx(trial.value)
            assert len(client.get_metric_history(run.info.run_id, "lr")) > 1
        parent = client.get_run(record.mlflow_parent_run_id or "")
        assert parent.info.status == "FINISHED"
