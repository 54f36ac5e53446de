"""Kind 3 of the failure paths: a failed trial's reason says what happened.

A metric reported under another name, or a function that reports and returns nothing, used to
fail every trial as "diverged: objective value is NaN". The reason now names the missing metric
and the names that were reported, in Optuna (``failure_reason``) and on the MLflow run alike.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from storage import StoreSpec, open_store
from sweeps.cli import main
from sweeps.runner._failure_rate import MIN_TRIALS_FOR_FAILURE_RATE
from sweeps.tracking import FAILURE_TAG
from tests.failures_tests.store_state import state_of, store_args, sweep_file

SPACE = "{cycle_max_lr: {low: 0.01, high: 0.1}, cycle_min_lr: 0.001, cycle_first_step_size: 2}"


def _sweep(entrypoint: str) -> str:
    return (
        f"name: reasons\nworkload: {{entrypoint: 'tests.failures_tests.user_code:{entrypoint}', "
        f"epochs: 1}}\nobjective: {{metric: val_accuracy}}\n"
        f"search: {{n_trials: 2, sampler: random, space: {SPACE}}}\n"
    )


def _reasons(spec: StoreSpec) -> tuple[list[str], list[str]]:
    with open_store(spec) as store:
        record = store.sweeps.get("reasons")
        study = optuna.load_study(study_name=record.study_name, storage=store.optuna_storage)
        reasons = [str(t.user_attrs.get("failure_reason")) for t in study.get_trials()]
        runs = store.mlflow.search_runs(
            [record.mlflow_experiment_id or ""],
            filter_string=f"tags.mlflow.parentRunId = '{record.mlflow_parent_run_id}'",
        )
        return reasons, [str(run.data.tags.get(FAILURE_TAG)) for run in runs]


CASES = {
    "other_names": "metric `val_accuracy` was not reported; the trial reported ['accuracy', 'loss']",
    "returns_other_names": "metric `val_accuracy` was not reported; the trial reported ['acc']",
    "nothing": "metric `val_accuracy` was not reported; the trial reported no metrics",
}


@pytest.mark.slow  # whole sweeps
@pytest.mark.parametrize("entrypoint", list(CASES))
def test_a_missing_metric_is_named_with_what_was_reported(
    entrypoint: str,
    new_spec: Callable[..., StoreSpec],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = new_spec()
    path = sweep_file(tmp_path, _sweep(entrypoint))
    assert main(["run", str(path), *store_args(spec)]) == 1  # every trial fails: stopped
    assert "trials failed, above search.max_failure_rate=0.5" in capsys.readouterr().err
    state = state_of(spec, "reasons")
    assert state.status == "failed"
    assert state.trials == ["FAIL"] * MIN_TRIALS_FOR_FAILURE_RATE
    assert state.runs == ["FAILED"] * MIN_TRIALS_FOR_FAILURE_RATE
    reasons, tags = _reasons(spec)
    for reason in reasons + tags:
        assert reason.startswith(CASES[entrypoint]), reason
        assert "NaN" not in reason and "diverged" not in reason
