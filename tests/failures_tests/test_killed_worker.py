"""Kind 5 of the failure paths: ``os._exit`` in a trial kills the worker outright.

Nothing can be recorded as the process dies; the trial is left RUNNING (its MLflow run may be
ended FAILED by the tracking writer as the process goes, or left RUNNING). The heartbeat
recovery is what repairs it: when the sweep is resumed after the grace period, the trial is
failed as stale (and retried), and a run still RUNNING is ended FAILED with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from storage import StoreSpec, open_store
from sweeps.cli import main
from sweeps.runner import STALE_REASON
from sweeps.tracking import FAILURE_TAG
from tests.failures_tests.store_state import state_of, store_args, sweep_file

pytestmark = pytest.mark.slow  # a killed worker, then a resumed sweep; see pyproject's markers

SWEEP = """name: killed
workload: {{entrypoint: 'tests.failures_tests.user_code:dies_once', epochs: 1,
  options: {{marker: '{marker}'}}}}
objective: {{metric: val_accuracy}}
search: {{n_trials: 2, sampler: random, space: {{cycle_max_lr: {{low: 0.01, high: 0.1}},
  cycle_min_lr: 0.001, cycle_first_step_size: 2}}}}
"""


def test_a_killed_trial_is_failed_and_its_run_ended_on_resume(
    new_spec: Callable[..., StoreSpec],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = new_spec()
    path = sweep_file(tmp_path, SWEEP.format(marker=tmp_path / "marker"))
    env = {**os.environ, "ONECYCLE_HEARTBEAT_S": "1"}
    died = subprocess.run(
        [sys.executable, "-m", "sweeps", "run", str(path), *store_args(spec)],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert died.returncode == 5
    left = state_of(spec, "killed")
    assert left.status == "running" and left.trials == ["RUNNING"]
    assert left.runs in (["RUNNING"], ["FAILED"])  # the tracking writer may end it as it dies

    time.sleep(3)  # past the grace of 1 s heartbeats
    monkeypatch.setenv("ONECYCLE_HEARTBEAT_S", "1")
    assert main(["run", str(path), *store_args(spec)]) == 0
    state = state_of(spec, "killed")
    assert state.status == "finished" and state.parent == "FINISHED"
    assert state.trials[0] == "FAIL" and state.trials[1:] == ["COMPLETE", "COMPLETE"]
    assert "RUNNING" not in state.runs and state.runs.count("FAILED") == 1
    with open_store(spec) as store:
        record = store.sweeps.get("killed")
        study = optuna.load_study(study_name=record.study_name, storage=store.optuna_storage)
        killed = study.get_trials()[0]
        run = store.mlflow.get_run(str(killed.user_attrs["mlflow_run_id"]))
        assert run.info.status == "FAILED"
        if left.runs == ["RUNNING"]:
            assert run.data.tags[FAILURE_TAG] == STALE_REASON
