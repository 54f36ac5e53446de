"""The sweep file: the example works, and every kind of bad input is one line, exit 2,
with nothing created in the store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sweeps.cli import main
from sweeps.runner import load_config
from tests.fixtures import EXAMPLES

GOOD = (EXAMPLES / "digits.yaml").read_text()


def test_the_documented_example_validates() -> None:
    config = load_config(EXAMPLES / "digits.yaml")
    assert config.name == "digits-onecycle" and config.search.n_trials == 24
    assert config.metric == "val_accuracy"
    assert config.scheduler == {"decay_step_size": 20}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace("  epochs: 15", "  epoch: 15"),
            r"workload\.epoch: unknown key; did you mean `epochs`\?",
        ),
        (
            lambda t: t.replace("cycle_max_lr: {low", "cycle_max_lrr: {low"),
            r"search\.space\.cycle_max_lrr: not a OneCycle parameter; did you mean `cycle_max_lr`\?",
        ),
        (
            lambda t: t.replace("{low: 20, high: 200}", "{low: 200, high: 20}"),
            r"search\.space\.cycle_first_step_size.*`low` must be <= `high`, got low=200\.0 > high=20\.0",
        ),
        (
            lambda t: t.replace("  batch_size: 64", "  batch_size: 0"),
            r"workload\.batch_size: Input should be greater than or equal to 1, got 0",
        ),
        (
            lambda t: t.replace("builtin: digits", "builtin: mnist"),
            r"workload\.builtin: Input should be 'digits', 'breast_cancer' or 'synthetic_ctr', got 'mnist'",
        ),
        (
            lambda t: t.replace("builtin: digits ", 'entrypoint: "no_such_module_x:train" '),
            r"workload\.entrypoint: cannot import 'no_such_module_x'",
        ),
        (
            lambda t: t.replace("choices: [0, 4, 10]", "choices: [0, 4, 30]"),
            r"some sampled configurations would be invalid \(`cycle_first_stair_count` must be <= cycle_first_step_size \(20\)",
        ),
        (
            lambda t: t.replace("cycle_max_mom: 0.99", "cycle_max_mom: 1.0"),
            r"`cycle_max_mom` must be < 1\.0",
        ),
        (
            lambda t: t.replace("  decay_step_size: 20", "  cycle_first_step_size: 20"),
            r"scheduler\.cycle_first_step_size: also in search\.space",
        ),
        (
            lambda t: t.replace("sampler: tpe ", "sampler: bayes "),
            r"search\.sampler: Input should be 'tpe', 'random', 'grid', 'cmaes' or 'qmc', got 'bayes'",
        ),
        (
            lambda t: t.replace("cycle_max_lr: 1.0e-2,", "cycle_max_lr: 5.0,"),
            r"enqueue\[0\]\.cycle_max_lr: 5\.0 is outside the searched range \[0\.001, 1\.0\]",
        ),
        (
            lambda t: t.replace(
                "  space:", "  space:\n    cycle_min_lr: {low: 0.5, high: 0.6}\n", 1
            ).replace("    cycle_min_lr: {low: 1.0e-4, high: 1.0e-2, log: true}\n", ""),
            r"search\.space\.cycle_min_lr\.low \(0\.5\) must be <= search\.space\.cycle_max_lr\.low",
        ),
        (
            lambda t: t.replace(
                "    cycle_min_lr: {low: 1.0e-4",
                "    cycle_first_stair_count: {choices: [0]}\n    cycle_min_lr: {low: 1.0e-4",
            ),
            r"sweep\.yaml:\d+:\d+: invalid YAML: duplicate key 'cycle_first_stair_count'",
        ),
        (lambda t: t + "\nextra: {a: [1, 2\n", r":\d+:\d+: invalid YAML"),
        (
            lambda t: t.replace("multivariate: true", "multivariate: false"),
            r"`tpe\.group`: needs tpe\.multivariate: true, got multivariate: false",
        ),
        (
            lambda t: t.replace("reduction_factor: 2", "reduction_factor: 1"),
            r"search\.hyperband\.reduction_factor: Input should be greater than or equal to 2, got 1",
        ),
        (
            lambda t: t.replace("n_startup_trials: 5", "n_startup: 5"),
            r"search\.tpe\.n_startup: unknown key; did you mean `n_startup_trials`\?",
        ),
    ],
)
def test_bad_sweep_file_is_one_line_exit_2_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: object, message: str
) -> None:
    sweep = tmp_path / "sweep.yaml"
    text = edit(GOOD)  # type: ignore[operator]
    assert text != GOOD
    sweep.write_text(text)
    store = tmp_path / "store"
    assert main(["run", str(sweep), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert re.search(message, err), err
    assert not store.exists()


def test_missing_sweep_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "nope.yaml"), "--store", str(tmp_path / "s")]) == 2
    assert "nope.yaml: no such file" in capsys.readouterr().err
