"""Kind 5 of the failure paths: ``sys.exit`` in a trial's code fails that trial only.

It used to end the whole ``onecycle run`` with the user's exit status and no message after the
first trial. Now the trial is FAIL with a reason naming ``SystemExit`` and the code, its run is
FAILED, and the sweep goes on to its other trials. Ctrl+C (``KeyboardInterrupt``) still stops
the sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from storage import StoreSpec, open_store, resolve_store
from sweeps.cli import main
from tests.failures_tests.store_state import state_of, store_args, sweep_file

pytestmark = pytest.mark.slow  # whole sweeps; see pyproject's markers

SPACE = "{cycle_max_lr: {low: 0.01, high: 0.1}, cycle_min_lr: 0.001, cycle_first_step_size: 2}"


def _sweep(workload: str, marker: Path, n_trials: int = 3) -> str:
    return (
        f"name: exits\nworkload: {{{workload}, batch_size: 16, epochs: 2, "
        f"options: {{marker: '{marker}'}}}}\nobjective: {{metric: val_accuracy}}\n"
        f"search: {{n_trials: {n_trials}, sampler: random, max_failure_rate: 1.0, "
        f"space: {SPACE}}}\n"
    )


def _first_reason(spec: StoreSpec) -> str:
    with open_store(spec) as store:
        record = store.sweeps.get("exits")
        study = optuna.load_study(study_name=record.study_name, storage=store.optuna_storage)
        return str(study.get_trials()[0].user_attrs.get("failure_reason"))


WORKLOADS = {
    "entrypoint": ("entrypoint: 'tests.failures_tests.user_code:exits_once'", 3),
    "task": ("task: 'tests.failures_tests.user_code:ExitingTask'", 4),
}


@pytest.mark.parametrize("kind", list(WORKLOADS))
def test_sys_exit_fails_that_trial_and_the_sweep_goes_on(
    kind: str,
    new_spec: Callable[..., StoreSpec],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workload, code = WORKLOADS[kind]
    spec = new_spec()
    path = sweep_file(tmp_path, _sweep(workload, tmp_path / "marker"))
    assert main(["run", str(path), *store_args(spec)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "3 finished (3 complete, 0 pruned), 1 failed" in out
    state = state_of(spec, "exits")
    assert state.status == "finished" and state.parent == "FINISHED"
    assert state.trials == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    assert state.runs == ["FAILED", "FINISHED", "FINISHED", "FINISHED"]
    reason = _first_reason(spec)
    assert f"SystemExit({code})" in reason and f"sys.exit({code})" in reason


def test_ctrl_c_in_a_trial_still_stops_the_sweep(
    new_spec: Callable[..., StoreSpec], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = new_spec()
    workload = "entrypoint: 'tests.failures_tests.user_code:interrupted'"
    path = sweep_file(tmp_path, _sweep(workload, tmp_path / "marker"))
    assert main(["run", str(path), *store_args(spec)]) == 130
    state = state_of(spec, "exits")
    assert state.status == "stopped"
    assert state.trials == ["FAIL"] and state.runs == ["FAILED"]


def test_sys_exit_in_the_range_test_is_one_line_and_records_no_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It ended `onecycle run` (and `range-test`) silently with the user's status 3."""
    body = (
        "name: ranged\nworkload: {entrypoint: 'tests.failures_tests.user_code:"
        "exits_in_the_range_test', batch_size: 16, epochs: 1}\n"
        "objective: {metric: val_accuracy}\n"
        "search: {n_trials: 2, sampler: random, space: {cycle_max_lr: auto, "
        "cycle_min_lr: 0.001, cycle_first_step_size: 2}}\n"
    )
    path = sweep_file(tmp_path, body)
    store = tmp_path / "store"
    expected = "range test's training code called sys.exit(3)"
    for command in (["run", str(path)], ["range-test", str(path)]):
        assert main([*command, "--store", str(store)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("onecycle: error: ") and expected in err, err[-2000:]
        assert err.count("\n") == 1 and "Traceback" not in err
    with open_store(resolve_store(str(store), env={})) as opened:
        assert opened.sweeps.list() == []  # nothing recorded of the sweep
        runs = opened.mlflow.search_runs(
            [e.experiment_id for e in opened.mlflow.search_experiments()]
        )
        assert runs and all(run.info.status != "RUNNING" for run in runs)
