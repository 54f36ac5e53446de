"""Artifacts rendered inside the tracking writer process (so the trial does not wait for them).

Each function here has the signature ``(client, run_id, **kwargs)`` and is handed to the writer
as a function, e.g. ``tracking.call(run_id, trial_artifacts, ...)``.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_FIGURES: dict[int, tuple[Any, list[Any], list[Any]]] = {}
#: PNGs drawn from a plan (:func:`draft_trial_plot`), by run id, until :func:`trial_plot`.
_DRAFTS: OrderedDict[str, bytes] = OrderedDict()
#: Drafts kept at most: two batches of ``sweeps.runner``'s ``PLOT_LIMIT``.
MAX_DRAFTS = 64


def _figure(panels: int) -> tuple[Any, list[Any], list[Any]]:
    """One figure per panel count, drawn again for every trial of this process.

    Building a figure and laying it out (``tight_layout``) cost more than drawing it: about
    90 ms a trial, which at fused-trial rates made the PNGs most of the writer's work. The
    layout is fixed once here; each trial only replaces the line data. The last batch's PNGs are
    what a fused sweep waits for at its end, so each costs as little as it can.
    """
    if panels not in _FIGURES:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        figure = Figure(figsize=(7, 2.4 * panels + 0.5), dpi=100)
        axes = [figure.add_subplot(panels, 1, i + 1) for i in range(panels)]
        colors = ["tab:blue", "tab:orange"]
        lines = [
            axis.plot([], [], linewidth=1.2, color=colors[i])[0] for i, axis in enumerate(axes)
        ]
        axes[0].set_ylabel("lr")
        if panels > 1:
            axes[1].set_ylabel("momentum")
            axes[0].sharex(axes[1])
            axes[0].tick_params(labelbottom=False)
        axes[-1].set_xlabel("update (step)")
        for axis in axes:
            axis.grid(alpha=0.3)
            # Fewer tick labels to lay out: text is most of a redraw.
            axis.yaxis.set_major_locator(MaxNLocator(5))
            axis.xaxis.set_major_locator(MaxNLocator(6))
        figure.suptitle("applied lr and momentum")
        figure.subplots_adjust(left=0.14, right=0.97, top=0.9, bottom=0.12, hspace=0.12)
        _FIGURES[panels] = (figure, axes, lines)
    return _FIGURES[panels]


def trial_artifacts(
    client: Any,
    run_id: str,
    scheduler_block: dict[str, Any],
    plot: bool = True,
    artifact_uri: str | None = None,
) -> None:
    """Log the trial's DeepSpeed ``scheduler`` block (JSON) and, with ``plot``, an lr PNG.

    The PNG shows lr and momentum, drawn from the metric history MLflow holds for the run,
    i.e. from the values the optimizer actually used.
    """
    block = {"scheduler": scheduler_block}
    if artifact_uri is None:
        client.log_dict(run_id, block, "deepspeed_scheduler.json")
    else:  # where the run's files go is known: no read of the run to find out (9 ms a run)
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repository = get_artifact_repository(artifact_uri)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "deepspeed_scheduler.json"
            path.write_text(json.dumps(block, indent=2, default=str))  # as log_dict writes it
            repository.log_artifact(str(path))  # type: ignore[no-untyped-call]
    if plot:
        trial_plot(client, run_id)


def trial_plot(client: Any, run_id: str, drafted: bool = False) -> None:
    """Log ``lr_momentum.png``: the lr and momentum the run's optimizer applied, per update.

    Drawn from the metric history MLflow holds for the run; with ``drafted``, the PNG
    :func:`draft_trial_plot` drew for this run is logged instead, when there is one (its
    caller knows the run applied every planned update, so the two pictures are the same).
    """
    png = _DRAFTS.pop(run_id, None)
    if png is None or not drafted:
        lr = client.get_metric_history(run_id, "lr")
        momentum = client.get_metric_history(run_id, "momentum")
        if not lr:
            return
        png = _png([_by_step(series) for series in (lr, momentum) if series])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lr_momentum.png"
        path.write_bytes(png)
        client.log_artifact(run_id, str(path))


def draft_trial_plot(
    client: Any, run_id: str, lr: Sequence[float], momentum: Sequence[float] | None = None
) -> None:
    """Draw the PNG of a schedule not yet applied (a fused batch's table), kept until logged.

    A fused batch's last PNGs were drawn after its training, one after another, while the
    sweep waited to end; drawn from the plan while the batch trains, only the trials that
    stopped early are drawn afterwards. Nothing is logged here: a plan is not yet a fact.
    """
    steps = range(len(lr))
    series = [(steps, lr)] if momentum is None else [(steps, lr), (steps, momentum)]
    _DRAFTS[run_id] = _png(series)
    while len(_DRAFTS) > MAX_DRAFTS:  # those of a batch that failed are never logged
        _DRAFTS.popitem(last=False)


def _by_step(history: Sequence[Any]) -> tuple[list[int], list[float]]:
    ordered = sorted(history, key=lambda m: m.step)
    return [m.step for m in ordered], [m.value for m in ordered]


def _png(series: Sequence[tuple[Sequence[int], Sequence[float]]]) -> bytes:
    """The lr (and momentum) panels as PNG bytes, one ``(steps, values)`` pair a panel."""
    from matplotlib import style

    # Matplotlib's own style, whatever was imported before (Optuna's plots set ggplot's).
    with style.context("default"):
        figure, axes, lines = _figure(len(series))
        for (steps, values), axis, line in zip(series, axes, lines, strict=False):
            line.set_data(steps, values)
            axis.relim()
            axis.autoscale_view()
        out = io.BytesIO()
        figure.savefig(out, format="png", pil_kwargs={"compress_level": 1})  # drawn sooner
    return out.getvalue()


def trial_files(client: Any, run_id: str, files: list[tuple[str, str]]) -> None:
    """Log a command trial's files (its config, its logs, its small outputs) to its run.

    ``files`` holds ``(path, artifact folder)`` pairs; a file gone by now is skipped, since
    the script's output directory is the user's to tidy.
    """
    for path, folder in files:
        if Path(path).is_file():
            client.log_artifact(run_id, path, folder or None)
