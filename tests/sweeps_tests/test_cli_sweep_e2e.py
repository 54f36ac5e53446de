"""The main job end to end through the CLI, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
import yaml

import schedulers
from storage import StoreSpec, open_store
from sweeps.cli import main
from tests.conftest import store_args
from tests.fixtures import digits_sweep, write_sweep

pytestmark = pytest.mark.slow  # worker processes and whole sweeps; see pyproject's markers

NewSpec = Callable[..., StoreSpec]
GOOD = {"cycle_min_lr": 0.01, "cycle_max_lr": 0.1, "cycle_first_step_size": 20}
BAD = {"cycle_min_lr": 1e-5, "cycle_max_lr": 2e-5, "cycle_first_step_size": 20}


def sweep_file(tmp_path: Path, name: str, n_trials: int, epochs: int = 3) -> Path:
    config = digits_sweep(
        name,
        n_trials,
        sampler="tpe",
        pruner="median",
        epochs=epochs,
        hidden=[64],
        space={
            "cycle_min_lr": {"low": 1e-5, "high": 1e-2, "log": True},
            "cycle_max_lr": {"low": 1e-5, "high": 0.3, "log": True},
            "cycle_first_step_size": {"low": 10, "high": 40},
        },
        scheduler={"cycle_min_mom": 0.85, "cycle_max_mom": 0.95},
        # three good configs settle the median, then two hopeless ones get pruned
        enqueue=[GOOD, dict(GOOD, cycle_max_lr=0.05), dict(GOOD, cycle_max_lr=0.2), BAD, BAD],
    )
    return write_sweep(tmp_path, config)


def status(spec: StoreSpec, name: str, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main(["status", name, "--json", *store_args(spec)]) == 0
    return json.loads(capsys.readouterr().out)[0]


def test_sweep_runs_tracks_and_exports_a_working_deepspeed_config(
    new_spec: NewSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = new_spec(artifacts=str(tmp_path / "artifacts"))
    path = sweep_file(tmp_path, "e2e", n_trials=6)
    assert main(["run", str(path), *store_args(spec)]) == 0
    out = capsys.readouterr().out
    assert "best val_accuracy" in out and "onecycle best e2e --format deepspeed" in out
    report = status(spec, "e2e", capsys)
    counts = report["counts"]
    assert report["status"] == "finished"
    assert counts["complete"] + counts["pruned"] == 6
    assert counts["complete"] >= 3 and counts["pruned"] >= 1
    with open_store(spec) as store:
        record = store.sweeps.get("e2e")
        runs = store.mlflow.search_runs(
            [record.mlflow_experiment_id], filter_string="tags.`onecycle.trial_number` != ''"
        )
        by_trial = {}
        for run in runs:
            by_trial.setdefault(run.data.tags["onecycle.trial_number"], []).append(run)
        assert sorted(by_trial) == sorted(str(t["number"]) for t in report["trials"])
        for trial in report["trials"]:
            (run,) = by_trial[str(trial["number"])]
            assert run.info.run_id == trial["mlflow_run_id"]
            expected = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
            assert run.info.status == expected[trial["state"]]
            lr = store.mlflow.get_metric_history(run.info.run_id, "lr")
            momentum = store.mlflow.get_metric_history(run.info.run_id, "momentum")
            assert len(lr) == len(momentum) == int(run.data.metrics["steps"]) > 0
        parent = store.mlflow.get_run(record.mlflow_parent_run_id)
        assert parent.info.status == "FINISHED"
    target = tmp_path / "best.json"
    assert (
        main(["best", "e2e", "--format", "deepspeed", "-o", str(target), *store_args(spec)]) == 0
    )
    block = json.loads(target.read_text())
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
    scheduler = schedulers.from_config(optimizer, block)
    assert scheduler.to_config() == block["scheduler"]
    assert block["scheduler"]["params"]["cycle_max_lr"] == pytest.approx(
        max((t for t in report["trials"] if t["state"] == "COMPLETE"), key=lambda t: t["value"])[
            "params"
        ]["cycle_max_lr"]
    )


def _finished(spec: StoreSpec, name: str) -> int:
    """How many trials are finished (COMPLETE or PRUNED)."""
    with open_store(spec) as store:
        try:
            study = optuna.load_study(study_name=name, storage=store.optuna_storage)
        except KeyError:
            return 0
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        return len(study.get_trials(deepcopy=False, states=states))


#: One mode per backend: fused batches on PostgreSQL (its bulk writers copy), one-by-one on
#: SQLite; both modes are interrupted and resumed on one backend in test_distinct_trials.py.
@pytest.mark.parametrize(
    ("backend", "fused"), [("sqlite", None), ("postgresql", "3")], ids=["one-by-one", "fused"]
)
def test_interrupted_run_resumes_to_exactly_n_trials(
    new_spec: NewSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str], fused: str | None
) -> None:
    """Stopped mid-sweep and resumed; fused, the stop lands in the second batch of three,
    whose members are failed with the reason while the first batch keeps its outcomes."""
    spec = new_spec(artifacts=str(tmp_path / "artifacts"))
    path = sweep_file(tmp_path, "resume", n_trials=6, epochs=6 if fused is None else 60)
    if fused is not None:
        # Batches that run their whole length: no pruner, no hopeless configs, lrs that
        # cannot diverge (batch 1: three enqueued trials; batch 2: three sampled ones).
        config = yaml.safe_load(path.read_text())
        config["search"]["pruner"] = "none"
        config["search"]["space"]["cycle_min_lr"] = {"low": 1e-3, "high": 1e-2, "log": True}
        config["search"]["space"]["cycle_max_lr"] = {"low": 0.02, "high": 0.2, "log": True}
        config["enqueue"] = config["enqueue"][:3]
        path.write_text(yaml.safe_dump(config))
    extra = [] if fused is None else ["--fused", fused]
    process = subprocess.Popen(
        [sys.executable, "-m", "sweeps", "run", str(path), *extra, *store_args(spec)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 240
    while _finished(spec, "resume") < 2 and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.3)
    # Fused: wait for the second batch to be training, so the stop lands inside a batch. One
    # store stays open for the polls: opening one per poll on a loaded machine took long enough
    # to miss the whole batch.
    with open_store(spec) as store:
        study = optuna.load_study(study_name="resume", storage=store.optuna_storage)
        running = (optuna.trial.TrialState.RUNNING,)
        while fused is not None and len(study.get_trials(deepcopy=False, states=running)) < 3:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the second batch never started"
            time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # docker stop, a scheduler: handled like Ctrl+C
    try:
        code = process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()  # not left running past the test, with whatever it said
        _, said = process.communicate(timeout=30)
        pytest.fail(f"still running 120 s after SIGTERM; it said: {said[-2000:]}")
    assert code == 130
    before = _finished(spec, "resume")
    assert 2 <= before < 6
    stopped = status(spec, "resume", capsys)
    assert stopped["status"] == "stopped"
    if fused is not None:
        assert before == 3  # the first batch, all of it
        with open_store(spec) as store:
            study = optuna.load_study(study_name="resume", storage=store.optuna_storage)
            interrupted = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
        assert len(interrupted) == 3
        assert all(
            t.user_attrs["failure_reason"].startswith("KeyboardInterrupt") for t in interrupted
        )
    assert main(["run", str(path), *store_args(spec)]) == 0
    report = status(spec, "resume", capsys)
    assert report["counts"]["complete"] + report["counts"]["pruned"] == 6
    with open_store(spec) as store:
        record = store.sweeps.get("resume")
        runs = store.mlflow.search_runs(
            [record.mlflow_experiment_id], filter_string="tags.`onecycle.trial_number` != ''"
        )
    numbers = [r.data.tags["onecycle.trial_number"] for r in runs]
    assert len(numbers) == len(set(numbers))  # no trial tracked twice
    finished = {str(t["number"]) for t in report["trials"] if t["state"] in ("COMPLETE", "PRUNED")}
    assert finished <= set(numbers)  # every finished trial has its run
    # (a trial interrupted before it started training may have no run at all)
    assert all(r.info.status != "RUNNING" for r in runs), [
        (r.data.tags, r.info.status, r.data.metrics) for r in runs if r.info.status == "RUNNING"
    ]
