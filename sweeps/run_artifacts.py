"""Artifacts rendered inside the tracking writer process (so the trial does not wait for them).

Each function here has the signature ``(client, run_id, **kwargs)`` and is named to the writer
by import path, e.g. ``tracking.call(run_id, "sweeps.run_artifacts:trial_artifacts", ...)``.
"""

from __future__ import annotations

from typing import Any


def trial_artifacts(client: Any, run_id: str, scheduler_block: dict[str, Any]) -> None:
    """Log the trial's DeepSpeed ``scheduler`` block (JSON) and a PNG of lr and momentum.

    The plot is drawn from the metric history MLflow holds for the run, i.e. from the values
    the optimizer actually used.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    client.log_dict(run_id, {"scheduler": scheduler_block}, "deepspeed_scheduler.json")
    lr = client.get_metric_history(run_id, "lr")
    momentum = client.get_metric_history(run_id, "momentum")
    if not lr:
        return
    panels = 2 if momentum else 1
    figure, axes = plt.subplots(panels, 1, sharex=True, figsize=(7, 2.4 * panels + 0.5))
    axes_list = list(axes) if panels > 1 else [axes]
    lr_sorted = sorted(lr, key=lambda m: m.step)
    axes_list[0].plot([m.step for m in lr_sorted], [m.value for m in lr_sorted], linewidth=1.2)
    axes_list[0].set_ylabel("lr")
    if momentum:
        mom_sorted = sorted(momentum, key=lambda m: m.step)
        axes_list[1].plot(
            [m.step for m in mom_sorted],
            [m.value for m in mom_sorted],
            color="tab:orange",
            linewidth=1.2,
        )
        axes_list[1].set_ylabel("momentum")
    axes_list[-1].set_xlabel("update (step)")
    for axis in axes_list:
        axis.grid(alpha=0.3)
    figure.suptitle("applied lr and momentum")
    figure.tight_layout()
    client.log_figure(run_id, figure, "lr_momentum.png")
    plt.close(figure)
