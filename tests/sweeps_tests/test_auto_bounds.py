"""``cycle_min_lr: auto`` / ``cycle_max_lr: auto``: a sweep whose bounds come from a range test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from storage import open_store, resolve_store
from sweeps.cli import main
from sweeps.config import Range
from sweeps.errors import UsageError
from sweeps.runner import parse_config
from sweeps.space import resolve_auto
from tests.fixtures import EXAMPLES, example_sweep, write_sweep


def _config(**space: Any) -> dict[str, Any]:
    config = example_sweep("digits", name="auto", epochs=2, options={"hidden": [32]})
    config["search"].update(n_trials=3, pruner="none")
    config["search"]["space"].update(space)
    config.pop("enqueue")
    config["range_test"] = {"steps": 120}
    return config


@pytest.mark.slow  # a range test and a whole sweep
def test_sweep_with_auto_bounds_runs_the_range_test_once_and_searches_around_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(cycle_max_lr="auto", cycle_min_lr={"auto": True, "below": 4, "above": 1})
    path = write_sweep(tmp_path, config)
    store_dir = str(tmp_path / "store")
    assert main(["run", str(path), "--store", store_dir]) == 0
    assert "LR range test for the `auto` bounds" in capsys.readouterr().out
    with open_store(resolve_store(store_dir, env={})) as store:
        record = store.sweeps.get("auto")
        result = record.config["range_test"]["result"]
        resolved = resolve_auto(parse_config(record.config))
        high = resolved.search.space["cycle_max_lr"]
        low = resolved.search.space["cycle_min_lr"]
        assert isinstance(high, Range) and isinstance(low, Range)
        assert high.low == pytest.approx(result["cycle_max_lr"] / 2)
        assert high.high == pytest.approx(min(2 * result["cycle_max_lr"], result["lr_diverged"]))
        assert low.low == pytest.approx(result["cycle_min_lr"] / 4)
        assert low.high == pytest.approx(result["cycle_min_lr"])
        import optuna

        study = optuna.load_study(study_name=record.study_name, storage=store.optuna_storage)
        assert len(study.trials) == 3
        for trial in study.trials:
            schedule = trial.user_attrs["deepspeed_params"]
            assert high.low <= schedule["cycle_max_lr"] <= high.high
            assert low.low <= schedule["cycle_min_lr"] <= min(low.high, schedule["cycle_max_lr"])
        client = store.mlflow
        run = client.get_run(result["run_id"])
        assert run.data.tags["mlflow.parentRunId"] == record.mlflow_parent_run_id
        assert run.data.tags["onecycle.role"] == "range_test"
        assert len(client.get_metric_history(run.info.run_id, "lr")) >= 10
    # Resuming with the file as written (still `auto`) is the same sweep: no second test.
    assert main(["run", str(path), "--store", store_dir]) == 0
    assert "LR range test" not in capsys.readouterr().out
    with open_store(resolve_store(store_dir, env={})) as store:
        experiment = store.mlflow.get_experiment_by_name("auto")
        runs = store.mlflow.search_runs(
            [experiment.experiment_id], "tags.`onecycle.role` = 'range_test'"
        )
        assert len(runs) == 1


def test_a_pinned_result_sets_the_bounds_without_a_test() -> None:
    config = _config(cycle_max_lr="auto")
    config["range_test"]["result"] = {
        "cycle_min_lr": 0.01,
        "cycle_max_lr": 0.2,
        "lr_diverged": 0.3,
    }
    parsed = parse_config(config)
    assert not parsed.needs_range_test
    space = resolve_auto(parsed).search.space
    assert space["cycle_max_lr"] == Range(low=0.1, high=0.3, log=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"cycle_first_step_size": "auto"},
            "search.space: `cycle_first_step_size`: only cycle_min_lr and cycle_max_lr can be",
        ),
        ({"cycle_max_lr": {"auto": True, "below": 0.5}}, "below"),
    ],
)
def test_auto_on_other_keys_or_bad_factors_is_refused(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        parse_config(_config(**change))


def test_auto_is_accepted_on_an_entrypoint_and_needs_an_ordered_range() -> None:
    config = _config(cycle_max_lr="auto")
    config["workload"] = {"entrypoint": "custom_train:train"}
    assert parse_config(config, base=EXAMPLES).needs_range_test
    config = _config(cycle_max_lr="auto")
    config["range_test"].update(min_lr=1.0, max_lr=0.1)
    with pytest.raises(UsageError, match="range_test: `max_lr` must be > `min_lr`"):
        parse_config(config)
