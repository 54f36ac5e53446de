"""``onecycle init``: a sweep file for each kind of workload that loads, validates and runs.

Each written file is run as written, but for ``--trials 2 --epochs 1`` (and a large batch for
the launched script), on a fresh SQLite store: the recipe (``auto`` bounds from a range test
where the project trains, TPE, Hyperband, fused trials for a task) must work end to end.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from storage import open_store, resolve_store
from sweeps.cli import main
from sweeps.config import RECIPE_HYPERBAND, RECIPE_MAX_LR, RECIPE_MIN_LR, RECIPE_TPE
from sweeps.runner import load_config
from tests.fixtures import EXAMPLES

SCRIPTS = Path(__file__).parent / "command_scripts"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "files", "name"),
    [
        (["--builtin", "digits"], [], "digits-onecycle"),
        (["--task", "cnn_task:DigitsCNN"], [EXAMPLES / "cnn_task.py"], "cnn_task-onecycle"),
        (
            ["--entrypoint", "custom_train:train", "--metric", "val_accuracy"],
            [EXAMPLES / "custom_train.py"],
            "custom_train-onecycle",
        ),
        (
            [
                "--command",
                f"{sys.executable} train_digits.py --epochs 1",
                "--metric",
                "val_accuracy",
                "--batch-size",
                "256",
            ],
            [SCRIPTS / "train_digits.py"],
            "train_digits-onecycle",
        ),
    ],
    ids=["builtin", "task", "entrypoint", "command"],
)
def test_init_writes_a_file_that_validates_and_runs_a_two_trial_sweep(
    flags: list[str],
    files: list[Path],
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for source in files:
        shutil.copy(source, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["init", *flags, "--trials", "2", "--epochs", "1"]) == 0
    path = tmp_path / f"{name}.yaml"
    assert f"wrote {path.name}" in capsys.readouterr().out
    config = load_config(path)
    assert (config.name, config.search.n_trials, config.workload.epochs) == (name, 2, 1)
    assert (config.search.sampler, config.search.pruner) == ("tpe", "hyperband")
    assert (config.search.tpe, config.search.hyperband) == (RECIPE_TPE, RECIPE_HYPERBAND)
    launched = "--command" in flags
    assert config.auto_keys == ([] if launched else ["cycle_min_lr", "cycle_max_lr"])
    if not launched:  # the measured recipe's margins around the range test's suggestions
        space = config.search.space
        assert (space["cycle_max_lr"], space["cycle_min_lr"]) == (RECIPE_MAX_LR, RECIPE_MIN_LR)
    fused = config.execution.fused_trials
    assert fused == ("auto" if flags[0] in ("--builtin", "--task") else 1)
    text = path.read_text()
    assert "# " in text  # each choice says why
    cycle = config.search.space["cycle_first_step_size"]
    if flags[0] in ("--builtin", "--task"):  # the cycle fits the run the project counts
        updates = int(re.search(r"a trial makes (\d+) updates", text).group(1))  # type: ignore[union-attr]
        assert 0 < cycle.low < cycle.high <= updates // 2  # type: ignore[union-attr]
        assert config.scheduler["decay_step_size"] == max(1, updates // 20)

    spec = resolve_store(str(tmp_path / "store"), env={})
    assert main(["run", str(path), "--store", str(tmp_path / "store")]) == 0, capsys.readouterr()
    with open_store(spec) as store:
        record = store.sweeps.get(name)
        trials = optuna.load_study(
            study_name=record.study_name, storage=store.optuna_storage
        ).get_trials(deepcopy=False)
    assert record.status == "finished"
    assert len(trials) == 2
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)


def test_init_refuses_what_it_cannot_write_in_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 2
    assert "exactly one of --builtin, --task, --entrypoint, --command" in capsys.readouterr().err
    assert main(["init", "--builtin", "digits", "--task", "m:C"]) == 2
    assert "got 2" in capsys.readouterr().err
    # A task that is not there is named by its key; no file is left behind.
    assert main(["init", "--task", "missing_module:Model"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "workload.task" in err and "missing_module" in err
    assert main(["init", "--command", "no-such-program-xyz train.py"]) == 2
    assert "no-such-program-xyz" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    # An existing file is kept unless --force.
    out = tmp_path / "mine.yaml"
    out.write_text("name: mine\n")
    assert main(["init", str(out), "--builtin", "digits"]) == 2
    assert "OUT: " in capsys.readouterr().err and out.read_text() == "name: mine\n"
    assert main(["init", str(out), "--builtin", "digits", "--name", "mine", "--force"]) == 0
    assert yaml.safe_load(out.read_text())["name"] == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml"]


def test_init_says_which_way_a_metric_improves_or_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    cases = {"val_auc": "maximize", "val_loss": "minimize", "top1_acc": "maximize"}
    for metric, direction in cases.items():
        flags = ["--builtin", "digits", "--metric", metric, "--name", "2024", "--force"]
        assert main(["init", *flags]) == 0
        config = load_config(tmp_path / "2024.yaml")
        assert (config.name, config.objective.metric) == ("2024", metric)  # a name, not a number
        assert config.objective.direction == direction
    capsys.readouterr()
    assert main(["init", "--builtin", "digits", "--metric", "throughput"]) == 2
    assert "--direction: maximize or minimize" in capsys.readouterr().err
    flags = ["--metric", "throughput", "--direction", "maximize"]
    assert main(["init", "--builtin", "digits", *flags]) == 0
    assert load_config(tmp_path / "digits-onecycle.yaml").objective.direction == "maximize"
    assert main(["init", str(tmp_path / "no" / "such.yaml"), "--builtin", "digits"]) == 2
    assert "OUT: no such directory" in capsys.readouterr().err
