"""Why a trial that trained to the end still failed, in words that say what happened.

A trial fails without an exception when its loss diverged, when the objective metric came back
NaN or infinite, or when the metric never came back at all (reported under another name, or a
function that reported and returned nothing). Each gets its own reason: a missing metric is not
a divergence, and the reason lists the names that were reported. The single-trial objective
and fused trials both ask :func:`failure_reason`.
"""

from __future__ import annotations

import math

from sweeps.errors import excerpt
from sweeps.trials._rules import TrainResult

__all__ = ["failure_reason"]


def failure_reason(result: TrainResult, metric: str) -> str | None:
    """The reason a trial that returned ``result`` failed, or None when it succeeded.

    Example:
        >>> failure_reason(TrainResult(evaluations=[(5, 320, {"acc": 0.9})]), "val_accuracy")
        "metric `val_accuracy` was not reported; the trial reported ['acc']"
        >>> failure_reason(TrainResult(), "val_accuracy")
        'metric `val_accuracy` was not reported; the trial reported no metrics (an entrypoint...'
        >>> failure_reason(TrainResult(evaluations=[(5, 320, {"val_accuracy": 0.9})]), "val_acc")
        "metric `val_acc` was not reported; the trial reported ['val_accuracy']"
    """
    if result.diverged is not None:
        return f"diverged: {result.diverged}"
    if not result.evaluations:
        return (
            f"metric `{metric}` was not reported; the trial reported no metrics (an entrypoint "
            "must call ctx.report({...}) or return its metrics)"
        )
    final = result.final
    if metric not in final:
        reported = sorted({key for _, _, metrics in result.evaluations for key in metrics})
        if metric in reported:
            return (
                f"metric `{metric}` was missing from the last report, which had "
                f"{excerpt(sorted(final), 200)}"
            )
        return f"metric `{metric}` was not reported; the trial reported {excerpt(reported, 200)}"
    value = final[metric]
    if math.isnan(value):
        return "diverged: objective value is NaN"
    if not math.isfinite(value):
        return f"diverged: objective value is {value}"
    return None
