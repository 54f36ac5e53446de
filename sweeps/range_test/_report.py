"""A range test's record: the plot people look at, and its MLflow run.

The plot is loss against lr on a log axis (raw and smoothed), with the points the suggestion
was read from marked and the suggested ``[cycle_min_lr, cycle_max_lr]`` shaded. The MLflow run
holds ``lr``, ``loss`` and ``smoothed_loss`` per step (metric step k is the k-th update), the
suggestion as metrics and tags, the plot, and a JSON with every step and the reasoning.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.range_test._rule import RangeSuggestion, smooth, window_for
from sweeps.range_test._run import RangeTestSettings, RangeTestTrace

if TYPE_CHECKING:
    from mlflow import MlflowClient

RANGE_TEST_ROLE = "range_test"
PLOT_NAME = "range_test.png"
JSON_NAME = "range_test.json"


def plot_range_test(trace: RangeTestTrace, suggestion: RangeSuggestion, path: Path) -> None:
    """Draw the loss against lr with the suggestion on it, as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    end = next((i for i, v in enumerate(trace.losses) if not math.isfinite(v)), len(trace.losses))
    lrs, losses = trace.lrs[:end], trace.losses[:end]
    smoothed = [math.exp(v) for v in smooth(losses, window_for(len(trace.losses)))]
    figure, axis = plt.subplots(figsize=(8, 4.2))
    axis.plot(lrs, losses, color="tab:blue", alpha=0.35, linewidth=0.9, label="loss per update")
    axis.plot(lrs, smoothed, color="tab:blue", linewidth=1.8, label="smoothed")
    axis.axvspan(
        suggestion.cycle_min_lr,
        suggestion.cycle_max_lr,
        color="tab:green",
        alpha=0.15,
        label=(f"suggested cycle {suggestion.cycle_min_lr:.3g} .. {suggestion.cycle_max_lr:.3g}"),
    )
    marks = [
        ("steepest descent", suggestion.lr_steepest, "tab:orange"),
        ("lowest loss", suggestion.lr_min_loss, "tab:purple"),
        ("valley end", suggestion.lr_valley_end, "tab:brown"),
    ]
    if suggestion.lr_diverged is not None:
        marks.append(("diverged", suggestion.lr_diverged, "tab:red"))
    for name, where, color in marks:
        axis.axvline(where, color=color, linestyle="--", linewidth=1, label=f"{name} {where:.3g}")
    axis.set_xscale("log")
    axis.set_yscale("log")
    finite = [v for v in smoothed if v > 0]
    if finite:
        axis.set_ylim(min(finite) / 2, max(finite[0] * 4, min(finite) * 10))
    axis.set_xlabel("learning rate (applied)")
    axis.set_ylabel("training loss")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8, loc="upper left")
    axis.set_title(f"LR range test: {len(trace.losses)} updates")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def report_json(
    settings: RangeTestSettings, trace: RangeTestTrace, suggestion: RangeSuggestion
) -> dict[str, Any]:
    """The suggestion, the settings and every step, JSON-ready."""
    return {
        **suggestion.to_dict(),
        "settings": {k.removeprefix("range_test."): v for k, v in settings.as_params().items()},
        "stopped_early": trace.stopped_early,
        "wall_time_s": round(trace.wall_time_s, 3),
        "trace": {"lr": trace.lrs, "loss": [_finite_or_none(v) for v in trace.losses]},
    }


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def log_range_test(
    client: MlflowClient,
    experiment_id: str,
    settings: RangeTestSettings,
    trace: RangeTestTrace,
    suggestion: RangeSuggestion,
    run_params: dict[str, Any],
    tags: dict[str, str],
) -> str:
    """One MLflow run for the test (a child of the sweep's run when ``tags`` name a parent)."""
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment_id, run_name="range test", tags=tags)
    run_id = str(run.info.run_id)
    try:
        params = {**run_params, **settings.as_params()}
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        stamp = 0
        smoothed = smooth(
            [v for v in trace.losses if math.isfinite(v)], window_for(len(trace.losses))
        )
        metrics: list[Metric] = []
        for step, (lr, loss) in enumerate(zip(trace.lrs, trace.losses, strict=True)):
            metrics.append(Metric("lr", lr, stamp, step))
            if math.isfinite(loss):
                metrics.append(Metric("loss", loss, stamp, step))
            if step < len(smoothed):
                metrics.append(Metric("smoothed_loss", math.exp(smoothed[step]), stamp, step))
        for key in ("cycle_min_lr", "cycle_max_lr", "lr_steepest", "lr_min_loss"):
            metrics.append(Metric(f"suggested_{key}", getattr(suggestion, key), stamp, 0))
        if suggestion.lr_diverged is not None:
            metrics.append(Metric("lr_diverged", suggestion.lr_diverged, stamp, 0))
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start : start + 1000])
        client.set_tag(run_id, "onecycle.range_test.reasons", "; ".join(suggestion.reasons))
        client.log_dict(run_id, report_json(settings, trace, suggestion), JSON_NAME)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / PLOT_NAME
            plot_range_test(trace, suggestion, path)
            client.log_artifact(run_id, str(path))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id
