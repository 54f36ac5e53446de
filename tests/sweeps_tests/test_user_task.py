"""A user's own model gets every feature: a task (``workload.task``) and a training function.

Everything goes through the CLI on code in ``tests/sweeps_tests/user_code/`` (not a built-in),
copied next to the sweep file as a user's module would sit: a sweep, ``onecycle train``, the
range test and ``auto`` bounds, fused trials equal to the same trials run one at a time, the
batch-scaling study; the range test on an entrypoint function finds a known stability edge; a
task with a mistake is refused in one line before anything is recorded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from storage import open_store, resolve_store
from sweeps.cli import main
from tests.sweeps_tests.least_squares import LeastSquares

USER_CODE = Path(__file__).resolve().parent / "user_code"
SCHEDULE = {"cycle_first_step_size": 10, "cycle_min_mom": 0.85, "cycle_max_mom": 0.95}
#: Three schedules every fused-vs-alone comparison trains (one of them near the edge).
ENQUEUED = [
    {"cycle_min_lr": 0.01, "cycle_max_lr": 0.1},
    {"cycle_min_lr": 0.02, "cycle_max_lr": 0.4},
    {"cycle_min_lr": 0.05, "cycle_max_lr": 1.0},
]


def _sweep(tmp_path: Path, name: str = "cnn", task: str = "TinyCNN", **changes: Any) -> Path:
    """A sweep file for ``digits_cnn:<task>`` with the module copied next to it."""
    shutil.copy(USER_CODE / "digits_cnn.py", tmp_path / "digits_cnn.py")
    config: dict[str, Any] = {
        "name": name,
        "workload": {
            "task": f"digits_cnn:{task}",
            "batch_size": 64,
            "epochs": 2,
            "device": "cpu",
            "options": {"channels": 4},
        },
        "search": {
            "n_trials": 2,
            "sampler": "random",
            "pruner": "none",
            "space": {"cycle_min_lr": 0.01, "cycle_max_lr": {"low": 0.05, "high": 1.0}},
        },
        "scheduler": dict(SCHEDULE),
        "range_test": {"steps": 60, "max_lr": 100.0},
    }
    for key, value in changes.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _trials(store: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    with open_store(resolve_store(str(store), env={})) as opened:
        record = opened.sweeps.get(name)
        study = optuna.load_study(study_name=record.study_name, storage=opened.optuna_storage)
        return study.get_trials()


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (
            "NotATask",
            "workload.task: NotATask (digits_cnn:NotATask) must be a class that "
            "subclasses sweeps.Task",
        ),
        ("NoEvaluate", "workload.task: NoEvaluate.evaluate() is missing"),
        (
            "NoMetric",
            "NoMetric.evaluate(): returned no `val_accuracy` key (the objective's "
            "metric), got ['val_loss']",
        ),
        ("NoBatches", "NoBatches.batches(0): yielded no batches"),
        (
            "OffDevice",
            "OffDevice.build_model(): parameter `1.weight` is on meta, not on the "
            "task's device cpu",
        ),
        ("Unseeded", "Unseeded.batches(0): two calls gave different first batches"),
        ("Missing", "workload.task: 'digits_cnn' has no 'Missing'"),
    ],
)
def test_a_task_with_a_mistake_is_refused_in_one_line_before_anything_is_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], task: str, message: str
) -> None:
    path = _sweep(tmp_path, task=task)
    assert main(["run", str(path), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "store").exists()


def test_a_model_that_cannot_be_fused_is_refused_naming_the_layer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _sweep(tmp_path, task="BatchNormCNN")
    assert main(["run", str(path), "--fused", "2", "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert "BatchNormCNN.build_model(): layer `1` (BatchNorm2d) keeps buffers" in err
    assert err.count("\n") == 1 and not (tmp_path / "store").exists()


@pytest.mark.slow
def test_a_sweep_and_onecycle_train_run_a_users_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    assert main(["run", str(_sweep(tmp_path)), "--store", str(store)]) == 0
    trials = _trials(store, "cnn")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert all(t.user_attrs["steps"] == 20 for t in trials)  # 640 images / 64, two epochs
    assert all(0.3 < (t.value or 0) <= 1.0 for t in trials)
    best = max(trials, key=lambda t: t.value or 0)
    params = tmp_path / "best.json"
    params.write_text(json.dumps(best.user_attrs["deepspeed_params"]))
    capsys.readouterr()
    assert main(["train", str(_sweep(tmp_path)), "--params", str(params), "--no-track"]) == 0
    out = capsys.readouterr().out
    assert f"val_accuracy: {best.value:.4f} after 20 updates" in out


@pytest.mark.slow
def test_a_fused_sweep_of_a_users_cnn_equals_the_same_trials_run_one_at_a_time(
    tmp_path: Path,
) -> None:
    values = {}
    for fused in (1, 3):
        folder = tmp_path / f"fused{fused}"
        folder.mkdir()
        path = _sweep(
            folder,
            task="GroupNormCNN",
            workload={"epochs": 1},
            search={"n_trials": 3},
            enqueue=ENQUEUED,
            execution={"fused_trials": fused},
        )
        assert main(["run", str(path), "--store", str(folder / "store")]) == 0
        trials = sorted(_trials(folder / "store", "cnn"), key=lambda t: t.number)
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
        values[fused] = [(t.params, t.value) for t in trials]
    for (params_alone, alone), (params_fused, fused_value) in zip(
        values[1], values[3], strict=True
    ):
        assert params_alone == params_fused
        assert fused_value == pytest.approx(alone, abs=1e-6)


@pytest.mark.slow
def test_range_test_and_auto_bounds_on_a_users_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _sweep(
        tmp_path,
        search={"n_trials": 1, "space": {"cycle_min_lr": 0.01, "cycle_max_lr": "auto"}},
    )
    assert main(["range-test", str(path), "--json", "--no-track"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stopped_early"] is True
    assert 0 < report["cycle_min_lr"] < report["cycle_max_lr"] < report["lr_diverged"] < 100
    store = tmp_path / "store"
    assert main(["run", str(path), "--store", str(store)]) == 0
    with open_store(resolve_store(str(store), env={})) as opened:
        result = opened.sweeps.get("cnn").config["range_test"]["result"]
    assert result["cycle_max_lr"] == pytest.approx(report["cycle_max_lr"])
    (trial,) = _trials(store, "cnn")
    assert trial.state == TrialState.COMPLETE
    low, high = result["cycle_max_lr"] / 2, min(result["cycle_max_lr"] * 2, result["lr_diverged"])
    assert low <= trial.params["cycle_max_lr"] <= high


@pytest.mark.slow
def test_the_batch_scaling_study_runs_on_a_users_task(tmp_path: Path) -> None:
    shutil.copy(USER_CODE / "digits_cnn.py", tmp_path / "digits_cnn.py")
    study = {
        "name": "cnn-scaling",
        "workload": {"task": "digits_cnn:TinyCNN", "batch_size": 16, "epochs": 1, "device": "cpu"},
        "scale": 4,
        "budget_factor": 2,
        "eval_samples": 128,
        "baseline_search": {"n_trials": 1, "low": 0.05, "high": 0.2},
        "onecycle_search": {
            "n_trials": 2,
            "sampler": "random",
            "pruner": "none",
            "space": {"cycle_min_lr": 0.01, "cycle_max_lr": {"low": 0.1, "high": 1.0}},
        },
        "scheduler": {"cycle_first_step_size": 4, "cycle_min_mom": 0.85, "cycle_max_mom": 0.95},
        "execution": {"fused_trials": 2},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    page = tmp_path / "report" / "scaling.md"
    store = tmp_path / "store"
    assert (
        main(["study", "batch-scaling", str(path), "--store", str(store), "--report", str(page)])
        == 0
    )
    text = page.read_text()
    assert "| schedule | batch | lr | final val_accuracy | samples to target" in text
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["Baseline", "Fixed", "LinearScale", "1Cycle"]
    with open_store(resolve_store(str(store), env={})) as opened:
        experiment = opened.mlflow.get_experiment_by_name("cnn-scaling")
        runs = opened.mlflow.search_runs([experiment.experiment_id])
        curves = [r for r in runs if r.data.tags.get("onecycle.study_curve")]
        assert len(curves) == 4
        for run in curves:
            assert opened.mlflow.get_metric_history(run.info.run_id, "val_accuracy")


@pytest.mark.parametrize("seed", [0, 1])
def test_range_test_on_an_entrypoint_function_finds_the_known_stability_edge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    shutil.copy(USER_CODE / "least_squares_fn.py", tmp_path / "least_squares_fn.py")
    limit = LeastSquares(batch_size=256, seed=seed).stability_limit
    config = {
        "name": "ls",
        "workload": {
            "entrypoint": "least_squares_fn:train",
            "batch_size": 256,
            "epochs": 100,
            "seed": seed,
            "device": "cpu",
            "options": {"condition": 100.0},
        },
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "search": {"space": {"cycle_min_lr": "auto", "cycle_max_lr": "auto"}},
        "range_test": {"min_lr": 1e-4 * limit, "max_lr": 100 * limit, "steps": 300},
    }
    path = tmp_path / "ls.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["range-test", str(path), "--momentum", "0", "--json", "--no-track"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stopped_early"] is True and report["steps"] < 300
    assert limit / 2 <= report["cycle_max_lr"] <= limit, report["cycle_max_lr"] / limit
    assert report["lr_diverged"] > limit / 2


def test_every_workload_key_has_a_runner_and_a_file_names_exactly_one(tmp_path: Path) -> None:
    from sweeps.config import WORKLOAD_KINDS
    from sweeps.errors import UsageError
    from sweeps.runner import load_config
    from sweeps.trials import RUNNERS

    assert set(RUNNERS) == set(WORKLOAD_KINDS)
    path = _sweep(tmp_path, workload={"builtin": "digits"})
    with pytest.raises(
        UsageError, match=r"set exactly one of `builtin`, `task`, `entrypoint` and `command`"
    ):
        load_config(path)
    config = load_config(_sweep(tmp_path, task="GroupNormCNN"))
    assert config.workload.kind == "task" and config.metric == "val_accuracy"


def test_a_task_class_sets_the_objective_unless_the_file_does(tmp_path: Path) -> None:
    from sweeps.runner import load_config

    (tmp_path / "loss_task.py").write_text(
        "from digits_cnn import TinyCNN\n\n"
        "class LossCNN(TinyCNN):\n"
        "    metric = 'val_loss'\n"
        "    direction = 'minimize'\n"
    )
    path = _sweep(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["workload"]["task"] = "loss_task:LossCNN"
    path.write_text(yaml.safe_dump(config))
    loaded = load_config(path)
    assert (loaded.metric, loaded.objective.direction) == ("val_loss", "minimize")
    config["objective"] = {"metric": "val_accuracy", "direction": "maximize"}
    path.write_text(yaml.safe_dump(config))
    loaded = load_config(path)
    assert (loaded.metric, loaded.objective.direction) == ("val_accuracy", "maximize")


def test_fused_trials_auto_sizes_a_stack_for_a_users_model() -> None:
    import sys

    import torch

    from sweeps.trials import TrainSettings
    from sweeps.trials.fused import auto_fused_trials

    sys.path.insert(0, str(USER_CODE))
    try:
        from digits_cnn import GroupNormCNN
    finally:
        sys.path.remove(str(USER_CODE))
    task = GroupNormCNN(batch_size=64, seed=0, device=torch.device("cpu"))
    assert 1 <= auto_fused_trials(task, TrainSettings(epochs=1), 5) <= 5


@pytest.mark.slow
def test_an_auto_sweep_runs_on_an_entrypoint_function(tmp_path: Path) -> None:
    shutil.copy(USER_CODE / "least_squares_fn.py", tmp_path / "least_squares_fn.py")
    limit = LeastSquares(batch_size=256, seed=0).stability_limit
    config = {
        "name": "ls-auto",
        "workload": {"entrypoint": "least_squares_fn:train", "batch_size": 256, "epochs": 2},
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "search": {
            "n_trials": 2,
            "sampler": "random",
            "pruner": "none",
            "space": {"cycle_max_lr": "auto", "cycle_first_step_size": 4},
        },
        "scheduler": {"cycle_min_lr": 1e-4, "cycle_min_mom": 0.0, "cycle_max_mom": 0.0},
        "range_test": {"min_lr": 1e-4 * limit, "max_lr": 100 * limit, "steps": 300},
    }
    path = tmp_path / "ls.yaml"
    path.write_text(yaml.safe_dump(config))
    store = tmp_path / "store"
    assert main(["run", str(path), "--store", str(store)]) == 0
    with open_store(resolve_store(str(store), env={})) as opened:
        result = opened.sweeps.get("ls-auto").config["range_test"]["result"]
    assert limit / 2 <= result["cycle_max_lr"] <= limit
    trials = _trials(store, "ls-auto")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert all(t.params["cycle_max_lr"] <= result["lr_diverged"] for t in trials)


def test_the_range_test_on_a_function_needs_log_loss_and_survives_except_exception() -> None:
    import torch

    from sweeps.range_test import RangeTestSettings, run_range_test
    from sweeps.trials import FunctionRunner

    def silent(ctx: Any) -> None:  # steps the scheduler without logging a loss
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        scheduler = ctx.scheduler(optimizer)
        scheduler.step()

    def swallowing(ctx: Any) -> None:  # a loop that catches Exception still ends when told
        weight = torch.ones(1, requires_grad=True)
        optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
        scheduler = ctx.scheduler(optimizer)
        for _ in range(ctx.epochs):
            try:
                loss = (weight**2).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                ctx.log_loss(loss)
                scheduler.step()
            except Exception:
                continue

    settings = RangeTestSettings(min_lr=1e-3, max_lr=10.0, steps=50, momentum=0.0)
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match=r"needs ctx.log_loss\(loss\) before each scheduler"):
        run_range_test(FunctionRunner(silent, 8, 0, cpu, 1, {}), settings)
    trace = run_range_test(FunctionRunner(swallowing, 8, 0, cpu, 1, {}), settings)
    assert 1 < len(trace.losses) <= 50 and trace.lrs[0] == pytest.approx(1e-3)


def test_the_cnn_example_loads_passes_its_checks_and_stacks_through_vmap() -> None:
    import torch

    from sweeps.runner import check_workload, load_config, workload_factory
    from sweeps.trials.fused import StackedModel, fusable_task

    examples = Path(__file__).resolve().parents[2] / "examples"
    config = load_config(examples / "cnn.yaml")
    assert config.workload.kind == "task" and config.needs_range_test
    assert config.execution.fused_trials == 8
    check_workload(config, "cnn.yaml")  # every method once, and the model stacks
    task = fusable_task(workload_factory(config, torch.device("cpu"))())
    assert not StackedModel(task.build_model(), 2).fast  # the vmap path, not the MLP one
