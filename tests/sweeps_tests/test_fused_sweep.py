"""Fused sweeps through the CLI: every trial tracked as if alone, outcomes, reproducibility."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from schedulers import OneCycleSchedule
from storage import StoreSpec, open_store, resolve_store
from sweeps.cli import main
from sweeps.tracking import trial_plot
from tests.conftest import store_args
from tests.fixtures import EXAMPLES, example_sweep, write_sweep

pytestmark = pytest.mark.slow  # worker processes and whole sweeps; see pyproject's markers


def _sweep(tmp_path: Path, n_trials: int = 8, **execution: Any) -> Path:
    config = example_sweep("digits", name="fused", epochs=2, options={"hidden": [32]})
    config["search"]["n_trials"] = n_trials
    # The outcomes below are planned for the median pruner and TPE's defaults.
    config["search"].update(pruner="median", tpe=None, hyperband=None)
    config["search"]["space"]["cycle_max_lr"] = {"low": 1e-3, "high": 30.0, "log": True}
    config["search"]["space"]["cycle_first_step_size"] = {"low": 10, "high": 30}
    config["scheduler"]["decay_step_size"] = 5
    config["enqueue"][0]["cycle_first_step_size"] = 20
    good = config["enqueue"][0]
    # Every outcome, whatever the sampler draws: three good configs (the pruner's start-up),
    # one that diverges, and a hopeless one the median pruner stops once three have completed.
    config["enqueue"] += [
        dict(good, cycle_min_lr=5e-3, cycle_max_lr=0.05),
        dict(good, cycle_min_lr=1e-2, cycle_max_lr=0.2),
        dict(good, cycle_min_lr=1e-2, cycle_max_lr=30.0),
        dict(good, cycle_min_lr=1e-4, cycle_max_lr=1e-3),
    ]
    if execution:
        config["execution"] = execution
    return write_sweep(tmp_path, config)


def _trials(spec: StoreSpec) -> list[optuna.trial.FrozenTrial]:
    with open_store(spec) as store:
        record = store.sweeps.get("fused")
        study = optuna.load_study(study_name=record.study_name, storage=store.optuna_storage)
        return study.get_trials()


def test_fused_sweep_tracks_every_trial_like_a_single_one(
    tmp_path: Path, new_spec: Callable[..., StoreSpec]
) -> None:
    spec = new_spec()
    assert main(["run", str(_sweep(tmp_path)), "--fused", "4", *store_args(spec)]) == 0
    trials = _trials(spec)
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 8
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    states = {t.state for t in trials}
    assert {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL} <= states
    # The enqueued trial went first, with its fixed params.
    assert trials[0].user_attrs["deepspeed_params"]["cycle_max_lr"] == pytest.approx(1e-2)
    with open_store(spec) as store:
        client = store.mlflow
        expected_status = {
            TrialState.COMPLETE: "FINISHED",
            TrialState.PRUNED: "KILLED",
            TrialState.FAIL: "FAILED",
        }
        for trial in trials:
            run = client.get_run(trial.user_attrs["mlflow_run_id"])
            assert run.info.status == expected_status[trial.state], trial.number
            assert run.data.params["fused_trials"] == "4"
            if trial.state == TrialState.PRUNED:
                assert run.data.tags["pruned"] == "true"
            if trial.state == TrialState.FAIL:
                assert run.data.tags["onecycle.failure_reason"].startswith("diverged")
            schedule = OneCycleSchedule(**trial.user_attrs["deepspeed_params"])
            lr = sorted(client.get_metric_history(run.info.run_id, "lr"), key=lambda m: m.step)
            momentum = sorted(
                client.get_metric_history(run.info.run_id, "momentum"), key=lambda m: m.step
            )
            losses = client.get_metric_history(run.info.run_id, "train_loss")
            assert [m.step for m in lr] == list(range(len(lr))) and lr
            assert [m.value for m in lr] == [schedule.lr(m.step) for m in lr]
            assert [m.value for m in momentum] == [schedule.momentum(m.step) for m in momentum]
            artifacts = sorted(f.path for f in client.list_artifacts(run.info.run_id))
            assert artifacts == ["deepspeed_scheduler.json", "lr_momentum.png"]
            # Drawn from the plan while the batch trained, or afterwards for the trials that
            # stopped early: either way the picture of the updates the run applied.
            logged = Path(
                client.download_artifacts(
                    run.info.run_id, "lr_momentum.png", str(tmp_path / f"{trial.number}a")
                )
            ).read_bytes()
            trial_plot(client, run.info.run_id)  # drawn again, from the metric history
            redrawn = Path(
                client.download_artifacts(
                    run.info.run_id, "lr_momentum.png", str(tmp_path / f"{trial.number}b")
                )
            ).read_bytes()
            assert logged == redrawn, trial.number
            assert len(losses) == len(lr)
            if trial.state == TrialState.COMPLETE:
                assert len(lr) == trial.user_attrs["steps"]
                final = client.get_run(run.info.run_id).data.metrics
                assert final["objective"] == pytest.approx(trial.value)
        record = store.sweeps.get("fused")
        parent = client.get_run(record.mlflow_parent_run_id)
        assert 0.0 < parent.data.metrics["fused/bookkeeping_share"] < 1.0


def test_same_seed_gives_the_same_fused_sweep_through_bulk_writes_and_the_apis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run twice with the same seeds: once with the bulk writers, once through Optuna's and
    MLflow's APIs. The same trials, values, attributes and runs come out."""
    volatile_attrs = {"mlflow_run_id", "wall_time_s"}
    runs = []
    for attempt, bulk in (("bulk", "1"), ("api", "0")):
        monkeypatch.setenv("ONECYCLE_OPTUNA_BULK", bulk)
        monkeypatch.setenv("ONECYCLE_MLFLOW_BULK", bulk)
        folder = tmp_path / attempt
        folder.mkdir()
        spec = resolve_store(str(folder / "store"), env={})
        assert (
            main(["run", str(_sweep(folder, n_trials=6)), "--fused", "3", *store_args(spec)]) == 0
        )
        trials = _trials(spec)
        with open_store(spec) as store:
            client = store.mlflow
            tracked = []
            for trial in trials:
                run = client.get_run(trial.user_attrs["mlflow_run_id"])
                tags = {k: v for k, v in run.data.tags.items() if k != "mlflow.parentRunId"}
                tracked.append(
                    (
                        run.info.run_name,
                        run.info.status,
                        run.data.params,
                        tags,
                        sorted(run.data.metrics),
                    )
                )
        runs.append(
            [
                (
                    t.number,
                    t.state,
                    t.params,
                    t.value,
                    t.intermediate_values,
                    {k: v for k, v in t.user_attrs.items() if k not in volatile_attrs},
                )
                for t in trials
            ]
            + tracked
        )
    assert {t[1] for t in runs[0][:6]} >= {TrialState.COMPLETE, TrialState.PRUNED}
    assert runs[0] == runs[1]


def test_a_batch_larger_than_a_chunk_is_asked_in_parallel_chunks(tmp_path: Path) -> None:
    spec = resolve_store(str(tmp_path / "store"), env={})
    path = _sweep(tmp_path, n_trials=80)
    assert main(["run", str(path), "--fused", "40", *store_args(spec)]) == 0
    trials = _trials(spec)
    assert [t.number for t in trials] == list(range(len(trials)))  # failed ones are redone
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 80
    assert len({tuple(sorted(t.params.items())) for t in trials}) == len(trials)
    with open_store(spec) as store:
        client = store.mlflow
        parent = client.get_run(trials[0].user_attrs["mlflow_run_id"]).data.tags[
            "mlflow.parentRunId"
        ]
        sampled = client.get_metric_history(parent, "fused/sample_s")
        assert len(sampled) >= 2 and all(m.value > 0 for m in sampled)
        ended = [client.get_run(t.user_attrs["mlflow_run_id"]).info.status for t in trials]
        assert "RUNNING" not in ended


def test_auto_picks_a_stack_size_and_runs(tmp_path: Path) -> None:
    spec = resolve_store(str(tmp_path / "store"), env={})
    path = _sweep(tmp_path, n_trials=5, fused_trials="auto")
    assert main(["run", str(path), *store_args(spec)]) == 0
    trials = _trials(spec)
    with open_store(spec) as store:
        size = int(
            store.mlflow.get_run(trials[0].user_attrs["mlflow_run_id"]).data.params["fused_trials"]
        )
    assert 1 < size <= 32


def test_bad_fused_values_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _sweep(tmp_path)
    assert main(["run", str(path), "--fused", "0", "--store", str(tmp_path / "s")]) == 2
    assert "--fused" in capsys.readouterr().err
    config = yaml.safe_load(path.read_text())
    config["execution"] = {"fused_trials": -3}
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--store", str(tmp_path / "s")]) == 2
    assert "execution.fused_trials" in capsys.readouterr().err
    custom = example_sweep("custom")
    custom["execution"] = {"fused_trials": 4}
    bad = write_sweep(tmp_path, custom, "custom")
    (tmp_path / "custom_train.py").write_text((EXAMPLES / "custom_train.py").read_text())
    assert main(["run", str(bad), "--store", str(tmp_path / "s")]) == 2
    assert "write it as a sweeps.Task and name it in `workload.task`" in capsys.readouterr().err
