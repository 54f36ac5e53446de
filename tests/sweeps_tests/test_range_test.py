"""The LR range test: a known stability edge, a real digits run tracked in MLflow, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from storage import open_store, resolve_store
from sweeps.cli import main
from sweeps.range_test import RangeTestSettings, run_range_test, suggest
from tests.fixtures import example_sweep, write_sweep
from tests.sweeps_tests.least_squares import LeastSquares


@pytest.mark.parametrize("condition", [10.0, 100.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_suggested_max_lr_is_within_a_factor_two_below_the_gradient_descent_limit(
    condition: float, seed: int
) -> None:
    workload = LeastSquares(batch_size=256, seed=seed, lambda_max=4.0, condition=condition)
    assert workload.hessian_top() == pytest.approx(4.0, rel=1e-6)
    limit = workload.stability_limit  # plain gradient descent diverges above 2 / lambda_max
    settings = RangeTestSettings(min_lr=1e-4 * limit, max_lr=100 * limit, steps=300, momentum=0)
    trace = run_range_test(workload, settings, optimizer="sgd", seed=seed)
    result = suggest(trace.lrs, trace.losses, stopped_at_divergence=trace.stopped_early)
    assert trace.stopped_early and len(trace.losses) < settings.steps
    assert limit / 2 <= result.cycle_max_lr <= limit, (result.cycle_max_lr / limit, result)
    assert result.lr_diverged is not None and result.lr_diverged > limit / 2


def test_linear_staircase_mode_is_deepspeeds_lr_range_test() -> None:
    workload = LeastSquares(batch_size=256, seed=0)
    settings = RangeTestSettings(
        min_lr=1e-3, max_lr=2.0, steps=100, mode="linear", staircase=True, momentum=0.0
    )
    trace = run_range_test(workload, settings)
    stair = settings.stair_size
    assert stair == 5
    assert trace.lrs[:stair] == [1e-3] * stair
    assert trace.lrs[stair] == pytest.approx(1e-3 * (1 + (2.0 / 1e-3 - 1) * stair / 100))


def _sweep_file(tmp_path: Path) -> Path:
    return write_sweep(tmp_path, example_sweep("digits", name="rt", options={"hidden": [64]}))


def test_digits_range_test_logs_lr_and_loss_per_step_and_stops_after_divergence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = tmp_path / "store"
    plot = tmp_path / "rt.png"
    code = main(
        [
            "range-test",
            str(_sweep_file(tmp_path)),
            "--max-lr",
            "100",
            "--steps",
            "400",
            "--json",
            "--plot",
            str(plot),
            "--store",
            str(store_dir),
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stopped_early"] is True and report["lr_diverged"] is not None
    assert 0 < report["cycle_min_lr"] < report["cycle_max_lr"] < report["lr_diverged"]
    assert plot.stat().st_size > 10_000
    with open_store(resolve_store(str(store_dir), env={})) as store:
        client: MlflowClient = store.mlflow
        run = client.get_run(report["run_id"])
        assert run.info.status == "FINISHED"
        assert run.data.tags["onecycle.role"] == "range_test"
        lrs = sorted(client.get_metric_history(run.info.run_id, "lr"), key=lambda m: m.step)
        losses = client.get_metric_history(run.info.run_id, "loss")
        steps = report["steps"]
        assert [m.step for m in lrs] == list(range(steps))
        assert len(losses) == steps < 400  # one value per update, and it ended early
        assert lrs[-1].value == pytest.approx(1e-5 * (100 / 1e-5) ** ((steps - 1) / 400))
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"range_test.png", "range_test.json"} <= artifacts


def test_text_report_explains_the_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["range-test", str(_sweep_file(tmp_path)), "--no-track", "--steps", "150"]) == 0
    out = capsys.readouterr().out
    for phrase in ("steepest descent", "lowest smoothed loss", "cycle_max_lr", "cycle_min_lr"):
        assert phrase in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-lr", "1", "--max-lr", "0.5"], "`max_lr` must be > `min_lr` (1.0), got 0.5"),
        (["--min-lr", "0"], "`min_lr` must be > 0, got 0.0"),
        (["--steps", "5"], "Invalid value for '--steps'"),
        (["--momentum", "1.0"], "Invalid value for '--momentum'"),
    ],
)
def test_bad_flags_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["range-test", str(_sweep_file(tmp_path)), "--no-track", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
