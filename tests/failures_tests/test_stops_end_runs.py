"""Kind 4 of the failure paths: however a sweep stops, no run it started is left RUNNING.

Ctrl+C, SIGTERM, a stop on ``max_failure_rate``, a ``sys.exit`` that ends the sweep, and the
store failing all left the sweep's parent MLflow run RUNNING; the losing one of two concurrent
``run`` commands left a parent run of its own behind. Every one of them now leaves the sweep's
status and every run ended (:mod:`sweeps.runner._ending`), and ``onecycle run`` resumes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from mlflow.entities import ViewType

from storage import StoreSpec, open_store, resolve_store
from sweeps.cli import main
from sweeps.errors import UsageError
from sweeps.runner import create_or_resume, load_config, run_sweep
from sweeps.runner._requeue import was_interrupted
from sweeps.tracking import FAILURE_TAG
from tests.failures_tests.store_state import state_of, store_args, sweep_file

pytestmark = pytest.mark.slow  # whole sweeps, some stopped by signals; see pyproject's markers

SPACE = "{cycle_max_lr: {low: 0.01, high: 0.1}, cycle_min_lr: 0.001, cycle_first_step_size: 2}"
NewSpec = Callable[..., StoreSpec]
#: ``python -m sweeps`` as a terminal starts it: Ctrl+C raises KeyboardInterrupt even where this
#: test's own process inherited SIGINT ignored (a CI job started in the background).
AT_A_TERMINAL = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'onecycle'; runpy.run_module('sweeps', run_name='__main__')"
)


def _sweep(name: str, entrypoint: str, options: str = "{}", search: str = "n_trials: 2") -> str:
    return (
        f"name: {name}\nworkload: {{entrypoint: 'tests.failures_tests.user_code:{entrypoint}', "
        f"epochs: 1, options: {options}}}\nobjective: {{metric: val_accuracy}}\n"
        f"search: {{{search}, sampler: random, space: {SPACE}}}\n"
    )


def _parent_reason(spec: StoreSpec, name: str) -> str | None:
    with open_store(spec) as store:
        record = store.sweeps.get(name)
        return store.mlflow.get_run(record.mlflow_parent_run_id or "").data.tags.get(FAILURE_TAG)


@pytest.mark.parametrize(
    ("sent", "resume"), [(signal.SIGTERM, "run"), (signal.SIGINT, "worker")], ids=["TERM", "INT"]
)
def test_a_signal_stops_the_sweep_and_kills_its_parent_run_then_it_resumes(
    sent: signal.Signals, resume: str, tmp_path: Path
) -> None:
    """SIGTERM (docker stop) or Ctrl+C mid-trial: the sweep is stopped, its trial FAIL and run
    FAILED, its parent run KILLED; `onecycle run` (or a `worker`) resumes it to FINISHED."""
    spec = _sqlite(tmp_path)
    marker = tmp_path / "marker"
    path = sweep_file(tmp_path, _sweep("signalled", "waits_once", f"{{marker: '{marker}'}}"))
    process = subprocess.Popen(
        [sys.executable, "-c", AT_A_TERMINAL, "run", str(path), *store_args(spec)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():  # the first trial is running
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the first trial never started"
        time.sleep(0.1)
    process.send_signal(sent)
    _, err = process.communicate(timeout=90)  # reading as it goes: a full pipe never blocks it
    assert process.returncode == 130, err[-2000:]
    assert "onecycle: interrupted" in err
    state = state_of(spec, "signalled")
    assert (state.status, state.parent) == ("stopped", "KILLED")
    assert state.trials == ["FAIL"] and state.runs == ["FAILED"]
    assert "Ctrl+C or SIGTERM" in str(_parent_reason(spec, "signalled"))

    name_or_file = str(path) if resume == "run" else "signalled"
    assert main([resume, name_or_file, *store_args(spec)]) == 0
    state = state_of(spec, "signalled")
    assert (state.status, state.parent) == ("finished", "FINISHED")
    assert state.trials == ["FAIL", "COMPLETE", "COMPLETE"]
    assert state.runs == ["FAILED", "FINISHED", "FINISHED"]
    assert _parent_reason(spec, "signalled") is None  # reopened: the stop is no longer news


def test_a_signal_a_library_turned_into_its_own_error_still_stops_the_sweep(
    tmp_path: Path,
) -> None:
    """SIGTERM while a library's code runs (seen: Optuna's storage mid-commit under SLURM's
    scancel) came back as that library's error: the trial failed as user code and the worker
    went on to the next trial. It is an interrupt: the sweep stops, the trial says so (a SLURM
    worker queues such a trial again) and the sweep resumes."""
    spec = _sqlite(tmp_path)
    options = f"{{marker: '{tmp_path / 'marker'}'}}"
    path = sweep_file(tmp_path, _sweep("hidden", "hides_an_interrupt", options))
    done = subprocess.run(
        [sys.executable, "-m", "sweeps", "run", str(path), *store_args(spec)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 130, done.stderr[-2000:]
    state = state_of(spec, "hidden")
    assert (state.status, state.parent) == ("stopped", "KILLED")
    assert state.trials == ["FAIL"] and state.runs == ["FAILED"]  # it did not go on
    assert main(["run", str(path), *store_args(spec)]) == 0
    with open_store(spec) as store:
        record = store.sweeps.get("hidden")
        study = optuna.load_study(study_name=record.study_name, storage=store.optuna_storage)
        trials = study.get_trials(deepcopy=False)
    reason = f"KeyboardInterrupt: signal {int(signal.SIGTERM)}"
    assert trials[0].user_attrs["failure_reason"] == reason
    assert was_interrupted(trials[0])  # what makes a SLURM worker queue it again
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]


def test_sys_exit_in_every_trial_stops_on_the_failure_rate_with_the_parent_failed(
    new_spec: NewSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sys.exit`` fails each trial; past ``max_failure_rate`` the sweep stops, parent FAILED."""
    spec = new_spec()
    path = sweep_file(
        tmp_path, _sweep("exits", "always_exits", search="n_trials: 2, max_failure_rate: 0.5")
    )
    assert main(["run", str(path), *store_args(spec)]) == 1
    assert "above search.max_failure_rate=0.5" in capsys.readouterr().err
    state = state_of(spec, "exits")
    assert (state.status, state.parent) == ("failed", "FAILED")
    assert state.trials == ["FAIL"] * 4 and state.runs == ["FAILED"] * 4
    assert "4 of 4 trials failed" in str(_parent_reason(spec, "exits"))


def test_a_failure_rate_of_one_still_stops_a_sweep_where_every_trial_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``max_failure_rate: 1.0`` never stops on a share of failures; when nothing succeeds the
    sweep stops after ``n_trials`` failures instead of asking new trials forever."""
    spec = _sqlite(tmp_path)
    search = "n_trials: 2, max_failure_rate: 1.0"
    path = sweep_file(tmp_path, _sweep("hopeless", "always_exits", search=search))
    assert main(["run", str(path), *store_args(spec)]) == 1
    assert "all 4 trials failed (as many as search.n_trials" in capsys.readouterr().err
    state = state_of(spec, "hopeless")
    assert (state.status, state.parent) == ("failed", "FAILED")
    assert state.trials == ["FAIL"] * 4 and state.runs == ["FAILED"] * 4


def test_a_sweep_stopped_for_its_failures_resumes_once_the_code_is_fixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rate counts the trials ended since the worker started: the failures recorded before
    do not stop the resumed sweep at once."""
    spec, fixed = _sqlite(tmp_path), tmp_path / "fixed"
    path = sweep_file(
        tmp_path, _sweep("buggy", "fails_until_fixed", options=f"{{fixed: '{fixed}'}}")
    )
    assert main(["run", str(path), *store_args(spec)]) == 1
    assert "4 of 4 trials failed" in capsys.readouterr().err
    fixed.touch()
    assert main(["run", str(path), *store_args(spec)]) == 0
    state = state_of(spec, "buggy")
    assert (state.status, state.parent) == ("finished", "FINISHED")
    assert state.trials == ["FAIL"] * 4 + ["COMPLETE"] * 2
    assert state.runs == ["FAILED"] * 4 + ["FINISHED"] * 2


def test_sys_exit_in_a_fused_batch_fails_the_sweep_and_every_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fused batch's ``sys.exit`` ends the worker with one line: batch FAIL, runs FAILED,
    parent FAILED."""
    spec = _sqlite(tmp_path)
    path = sweep_file(
        tmp_path,
        "name: fused\nworkload: {task: 'tests.failures_tests.user_code:ExitingTask', "
        f"batch_size: 16, epochs: 2, options: {{marker: '{tmp_path / 'marker'}'}}}}\n"
        f"objective: {{metric: val_accuracy}}\nsearch: {{n_trials: 2, sampler: random, "
        f"space: {SPACE}}}\n",
    )
    assert main(["run", str(path), *store_args(spec), "--fused", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("onecycle: error: fused batch of trials 0-1 failed in the training code")
    assert "TrialExited: SystemExit(4)" in err and err.count("\n") == 1  # one line, no traceback
    state = state_of(spec, "fused")
    assert (state.status, state.parent) == ("failed", "FAILED")
    assert state.trials == ["FAIL", "FAIL"] and state.runs == ["FAILED", "FAILED"]
    assert "TrialExited: SystemExit(4)" in str(_parent_reason(spec, "fused"))


def test_the_artifact_store_going_away_fails_the_sweep_and_ends_every_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store failing mid-sweep (its artifact folder gone) ends the sweep FAILED, nothing
    RUNNING; with the folder back, `onecycle run` resumes it to FINISHED."""
    spec = _sqlite(tmp_path)
    folder, marker = Path(spec.artifact_location) / "gone", tmp_path / "marker"
    path = sweep_file(
        tmp_path,
        _sweep(
            "gone",
            "loses_the_artifact_store",
            f"{{folder: '{folder}', marker: '{marker}'}}",
            "n_trials: 3",
        ),
    )
    assert main(["run", str(path), *store_args(spec)]) == 1
    assert "Not a directory" in capsys.readouterr().err
    state = state_of(spec, "gone")
    assert (state.status, state.parent) == ("failed", "FAILED")
    assert "RUNNING" not in state.trials and "RUNNING" not in state.runs
    assert "Not a directory" in str(_parent_reason(spec, "gone"))

    folder.unlink()
    folder.mkdir()
    assert main(["run", str(path), *store_args(spec)]) == 0
    state = state_of(spec, "gone")
    assert (state.status, state.parent) == ("finished", "FINISHED")
    assert "RUNNING" not in state.runs


def test_the_loser_of_two_runs_with_different_files_leaves_no_parent_run(
    new_spec: NewSpec, tmp_path: Path
) -> None:
    """Two `run`s of one name at once, with different files: the one that records the sweep
    second is refused (exit 2), and its parent run and the range test under it are ended and
    deleted; the winner's sweep and parent run are left as they were."""
    spec = new_spec()
    digits = "workload: {builtin: digits, batch_size: 64, epochs: 1, options: {hidden: [16]}}"
    auto = "{cycle_max_lr: auto, cycle_min_lr: auto, cycle_first_step_size: 2}"
    loser = sweep_file(
        tmp_path,
        f"name: race\n{digits}\nrange_test: {{steps: 10}}\n"
        f"search: {{n_trials: 1, sampler: random, space: {auto}}}\n",
        "loser.yaml",
    )
    winner = sweep_file(
        tmp_path, f"name: race\n{digits}\nsearch: {{n_trials: 1, space: {SPACE}}}\n", "winner.yaml"
    )

    def the_winner_records_it_first(config: object) -> None:
        with open_store(spec) as other:
            create_or_resume(other, load_config(winner))

    with open_store(spec) as store:
        with pytest.raises(UsageError, match="already exists in the store") as refused:
            create_or_resume(store, load_config(loser), the_winner_records_it_first)
        assert refused.value.exit_code == 2
        record = store.sweeps.get("race")
        every = store.mlflow.search_runs(
            [record.mlflow_experiment_id or ""], run_view_type=ViewType.ALL
        )
    winners = [run for run in every if run.info.run_id == record.mlflow_parent_run_id]
    losers = [run for run in every if run.info.run_id != record.mlflow_parent_run_id]
    assert [run.info.lifecycle_stage for run in winners] == ["active"]  # running, as it should
    assert {run.data.tags.get("onecycle.role") for run in losers} == {"sweep", "range_test"}
    assert {(run.info.status, run.info.lifecycle_stage) for run in losers} <= {
        ("KILLED", "deleted"),
        ("FINISHED", "deleted"),  # the range test that had ended
    }
    assert record.config["search"]["space"]["cycle_max_lr"]["low"] == 0.01  # the winner's


def test_a_stopped_worker_leaves_the_sweep_to_the_workers_still_running(
    new_spec: NewSpec, tmp_path: Path
) -> None:
    """A worker stopped while another runs a trial ends nothing: the sweep stays running with
    its parent RUNNING; a worker that joins later finishes it and closes the parent."""
    spec = new_spec()
    marker = tmp_path / "marker"
    path = sweep_file(tmp_path, _sweep("shared", "interrupted_once", f"{{marker: '{marker}'}}"))
    with open_store(spec) as store:
        record, _ = create_or_resume(store, load_config(path))
        study = optuna.load_study(study_name=record.study_name, storage=store.optuna_storage)
        elsewhere = study.ask()  # another worker's trial, running
        elsewhere.set_user_attr("worker", "elsewhere:1")
        with pytest.raises(KeyboardInterrupt):
            run_sweep(store, record)
    state = state_of(spec, "shared")
    assert (state.status, state.parent) == ("running", "RUNNING")
    assert state.trials == ["RUNNING", "FAIL"] and state.runs == ["FAILED"]

    with open_store(spec) as store:  # the other worker's trial ends
        study = optuna.load_study(study_name="shared", storage=store.optuna_storage)
        study.tell(elsewhere.number, 0.5)
    assert main(["worker", "shared", *store_args(spec)]) == 0
    state = state_of(spec, "shared")
    assert (state.status, state.parent) == ("finished", "FINISHED")
    assert state.trials == ["COMPLETE", "FAIL", "COMPLETE"]


def _sqlite(tmp_path: Path) -> StoreSpec:
    return resolve_store(str(tmp_path / "store"), env={})
