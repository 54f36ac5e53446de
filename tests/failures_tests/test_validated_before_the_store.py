"""Kind 1 of the failure paths: whatever can be checked without training is checked first.

Each case passes the sweep file's schema as it was once written and failed only after the sweep
was recorded (left ``running`` 0/N). Now ``onecycle run`` refuses it in one line, exit 2, and
no store is created, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path

import pytest

from storage import StoreSpec, open_store, resolve_store
from sweeps.cli import main
from tests.failures_tests.store_state import store_args, store_exists, sweep_file

SPACE = "{cycle_max_lr: {low: 0.01, high: 0.1}, cycle_min_lr: 0.001, cycle_first_step_size: 5}"


def _file(workload: str, search: str = "", objective: str = "") -> str:
    return (
        f"name: refused\nworkload: {{{workload}}}\n"
        + (f"objective: {{{objective}}}\n" if objective else "")
        + f"search: {{n_trials: 2, sampler: random, space: {SPACE}{search}}}\n"
    )


CASES = {
    "negative sampler seed": (
        _file("builtin: digits, epochs: 1", ", seed: -5"),
        "search.seed: Input should be greater than or equal to 0, got -5",
    ),
    "sampler seed past 2**32": (
        _file("builtin: digits, epochs: 1", ", seed: 4294967296"),
        "search.seed: Input should be less than or equal to 4294967295",
    ),
    "workload seed too large": (
        _file("builtin: synthetic_ctr, epochs: 1, seed: 99999999999999999999"),
        "workload.seed:",
    ),
    "option the built-in does not take": (
        _file("builtin: digits, epochs: 1, options: {bogus: 1}"),
        "workload.options.bogus: Digits takes no such option; it takes ['hidden']",
    ),
    "misspelt option": (
        _file("builtin: digits, epochs: 1, options: {hiden: [8]}"),
        "workload.options.hiden: Digits takes no such option; did you mean `hidden`?",
    ),
    "zero layer width": (
        _file("builtin: synthetic_ctr, epochs: 1, options: {hidden: [0], rows: 500}"),
        "`hidden` must list positive layer widths, got [0]",
    ),
    "device that does not exist here": (
        _file('builtin: digits, epochs: 1, device: "cuda:7"'),
        "workload.device: 'cuda:7' requested but",
    ),
    "metric the workload never reports": (
        _file("builtin: digits, epochs: 1", objective="metric: val_nope"),
        "returned no `val_nope` key (the objective's metric), got ['val_accuracy', 'val_loss']",
    ),
    "boolean epochs": (
        _file("builtin: digits, epochs: true"),
        "workload.epochs: must be a number, not a boolean, got True",
    ),
    "boolean range bound": (
        _file("builtin: digits, epochs: 1").replace("low: 0.01", "low: false"),
        "search.space.cycle_max_lr.low: must be a number, not a boolean, got False",
    ),
    "batch larger than the training set": (
        _file("builtin: digits, epochs: 1, batch_size: 100000"),
        "workload.batch_size: 100000 is more than Digits's first batch holds (1438 samples)",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_in_one_line_before_the_store_exists(
    case: str,
    new_spec: Callable[..., StoreSpec],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body, expected = CASES[case]
    spec = new_spec()
    path = sweep_file(tmp_path, body)
    assert main(["run", str(path), *store_args(spec)]) == 2
    captured = capsys.readouterr()
    assert expected in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert not store_exists(spec)
    # A new directory store's writer starts before the file is read; refused, it is gone too.
    assert not multiprocessing.active_children()


@pytest.mark.slow  # whole sweeps
def test_a_valid_neighbour_of_the_refused_files_runs(
    new_spec: Callable[..., StoreSpec], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The checks refuse the mistakes only: the same file with sane values runs."""
    spec = new_spec()
    body = _file(
        "builtin: digits, epochs: 1, batch_size: 512, options: {hidden: [8]}", ", seed: 7"
    )
    path = sweep_file(tmp_path, body.replace("n_trials: 2", "n_trials: 1"))
    assert main(["run", str(path), *store_args(spec)]) == 0
    assert store_exists(spec)


@pytest.mark.parametrize("command", ["train", "range-test"])
def test_other_commands_refuse_the_same_way(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sweep_file(tmp_path, _file("builtin: digits, epochs: 1, options: {bogus: 1}"))
    store = tmp_path / "store"
    params = tmp_path / "params.json"
    params.write_text('{"cycle_min_lr": 0.001, "cycle_max_lr": 0.01, "cycle_first_step_size": 5}')
    extra = ["--params", str(params)] if command == "train" else []
    assert main([command, str(path), "--store", str(store), *extra]) == 2
    assert "workload.options.bogus" in capsys.readouterr().err
    assert not store.exists()


def test_a_changed_sweep_file_names_the_changed_key_and_records_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A resume whose file changed more than `n_trials` is refused naming that key; the raised
    `n_trials` alone is not what the message blames."""
    store = tmp_path / "store"
    original = (
        "name: drift\nworkload: {builtin: digits, epochs: 1, batch_size: 256, device: cpu, "
        "options: {hidden: [8]}}\n"
        f"search: {{n_trials: 1, sampler: random, space: {SPACE}}}\n"
    )
    path = tmp_path / "drift.yaml"
    path.write_text(original)
    assert main(["run", str(path), "--store", str(store)]) == 0
    changed = original.replace("n_trials: 1", "n_trials: 2").replace("epochs: 1", "epochs: 2")
    path.write_text(changed)
    capsys.readouterr()
    assert main(["run", str(path), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "different config (first difference: `workload.epochs`)" in err
    with open_store(resolve_store(str(store), env={})) as opened:
        assert opened.sweeps.get("drift").config["search"]["n_trials"] == 1  # nothing rewritten


def test_a_store_path_that_cannot_be_resolved_is_one_line_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown user's home in ``--store`` is refused in one line, exit 2 (it was a
    traceback); the writer's head start on a new store does not trip on it either."""
    path = sweep_file(tmp_path, _file("builtin: digits, epochs: 1"))
    assert main(["run", str(path), "--store", "~nosuchuser-onecycle/store"]) == 2
    err = capsys.readouterr().err
    assert "store path '~nosuchuser-onecycle/store'" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not multiprocessing.active_children()
