"""See a DeepSpeed scheduler block before training with it: a table, a CSV, a plot.

The values are the closed-form schedules each param group would get
(:mod:`schedulers.groups`, the same functions the torch classes build their schedules with),
so what is shown is what an optimizer would be given, momentum included (SGD's ``momentum``
or Adam's ``betas[0]``, per the config's optimizer), without importing torch; a test holds
them equal to the torch adapter's ``param_groups`` step by step.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import schedulers
from schedulers.groups import group_schedules

#: Optimizer ``type`` names (DeepSpeed's, lower-cased) previewed with SGD; the rest use AdamW.
SGD_TYPES = frozenset({"sgd"})
DEFAULT_BASE_LR = 1e-3


@dataclass(frozen=True)
class Trace:
    """A schedule's values at every step, as an optimizer held them."""

    kind: str
    optimizer: str
    momentum_name: str | None
    lrs: list[list[float]]
    moms: list[list[float]] | None
    phases: list[str]
    milestones: dict[str, float]

    @property
    def steps(self) -> int:
        """Number of steps traced (rows are steps 0 .. steps - 1)."""
        return len(self.lrs)

    @property
    def groups(self) -> int:
        """Number of param groups."""
        return len(self.lrs[0])


@dataclass(frozen=True)
class PreviewOptimizer:
    """The optimizer a config describes, as far as the schedule needs it."""

    name: str
    #: Where it keeps momentum: ``momentum`` (SGD) or ``betas[0]`` (AdamW).
    momentum_name: str
    lr: float


def _group_count(params: Mapping[str, Any]) -> int:
    lengths = [len(v) for v in params.values() if isinstance(v, (list, tuple))]
    return max(lengths, default=1)


def preview_optimizer(config: Mapping[str, Any], base_lr: float | None) -> PreviewOptimizer:
    """The config's ``optimizer`` block (AdamW if none), checked as torch would check it."""
    found = config.get("optimizer") if "scheduler" in config else None
    block: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    found = block.get("params")
    params: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    lr = base_lr if base_lr is not None else float(params.get("lr", DEFAULT_BASE_LR))
    if not lr >= 0.0:
        raise ValueError(f"Invalid learning rate: {lr}")
    if str(block.get("type", "")).lower() in SGD_TYPES:
        momentum = float(params.get("momentum", 0.9))
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        return PreviewOptimizer("SGD", "momentum", lr)
    betas = params.get("betas", (0.9, 0.999))
    for index in (0, 1):
        if not 0.0 <= float(betas[index]) < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index}: {betas[index]}")
    return PreviewOptimizer("AdamW", "betas[0]", lr)


def trace_schedule(
    config: Mapping[str, Any], steps: int | None = None, base_lr: float | None = None
) -> Trace:
    """The lr and momentum each param group gets at each step from the block a config holds.

    Example:
        >>> block = {"type": "OneCycle", "params": {"cycle_min_lr": 0.1, "cycle_max_lr": 1.0,
        ...                                         "cycle_first_step_size": 2}}
        >>> [round(v[0], 3) for v in trace_schedule(block, steps=5).lrs]
        [0.1, 0.55, 1.0, 0.55, 0.1]
    """
    kind, params = schedulers.normalize_block(config)
    optimizer = preview_optimizer(config, base_lr)
    schedules = group_schedules(kind, params, [optimizer.lr] * _group_count(params))
    schedule = schedules[0]
    total = schedule.horizon if steps is None else steps
    cycled = all(s.momentum(0) is not None for s in schedules)
    lrs: list[list[float]] = []
    moms: list[list[float]] = []
    phases: list[str] = []
    for step in range(total):
        values = [s.values(step) for s in schedules]
        lrs.append([float(lr) for lr, _ in values])
        if cycled:
            moms.append([float(momentum or 0.0) for _, momentum in values])
        phases.append(schedule.phase(step))
    return Trace(
        kind=kind,
        optimizer=optimizer.name,
        momentum_name=optimizer.momentum_name if cycled else None,
        lrs=lrs,
        moms=moms if cycled else None,
        phases=phases,
        milestones=schedule.milestones(),
    )


def rows_to_show(trace: Trace, every: int | None, target_rows: int = 16) -> list[int]:
    """Steps worth a table row: every ``every``-th, or an even spread plus the phase changes."""
    last = trace.steps - 1
    if every:
        chosen = set(range(0, last + 1, every))
    else:
        stride = _round_stride(last / target_rows)
        chosen = set(range(0, last + 1, stride))
        for where in trace.milestones.values():
            for step in (math.floor(where), math.floor(where) + 1):
                if 0 <= step <= last:
                    chosen.add(step)
    chosen.add(last)
    return sorted(chosen)


def _round_stride(raw: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least ``raw``."""
    if raw <= 1:
        return 1
    decade = 10 ** math.floor(math.log10(raw))
    return int(next(m * decade for m in (1, 2, 5, 10) if m * decade >= raw))


def render_table(trace: Trace, console: Console, every: int | None = None) -> None:
    """Print the selected rows as a rich table, one lr (and momentum) column per group."""
    groups = trace.groups
    table = Table(
        title=f"{trace.kind} on {trace.optimizer}: {trace.steps} steps", title_justify="left"
    )
    table.add_column("step", justify="right")
    table.add_column("phase")
    suffix = [f" g{g}" if groups > 1 else "" for g in range(groups)]
    for g in range(groups):
        table.add_column(f"lr{suffix[g]}", justify="right")
    if trace.moms is not None:
        for g in range(groups):
            table.add_column(f"{trace.momentum_name}{suffix[g]}", justify="right")
    for step in rows_to_show(trace, every):
        cells = [str(step), trace.phases[step]]
        cells += [f"{v:.6g}" for v in trace.lrs[step]]
        if trace.moms is not None:
            cells += [f"{v:.6g}" for v in trace.moms[step]]
        table.add_row(*cells)
    console.print(table)
    if trace.moms is None:
        console.print("momentum: not scheduled by this block")


def write_csv(trace: Trace, path: Path) -> None:
    """Every step's values as CSV: ``step,phase,lr[_g],momentum[_g]``."""
    groups = trace.groups
    names = [f"_g{g}" if groups > 1 else "" for g in range(groups)]
    header = ["step", "phase"] + [f"lr{n}" for n in names]
    if trace.moms is not None:
        header += [f"momentum{n}" for n in names]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for step in range(trace.steps):
            row: list[object] = [step, trace.phases[step], *trace.lrs[step]]
            if trace.moms is not None:
                row += trace.moms[step]
            writer.writerow(row)


def plot_trace(trace: Trace, path: Path) -> None:
    """Draw lr (top) and momentum (bottom) against step, phase changes marked, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    panels = 2 if trace.moms is not None else 1
    figure, axes = plt.subplots(panels, 1, sharex=True, figsize=(8, 2.6 * panels + 0.6))
    axes_list = list(axes) if panels > 1 else [axes]
    steps = range(trace.steps)
    for g in range(trace.groups):
        label = f"group {g}" if trace.groups > 1 else None
        axes_list[0].plot(steps, [row[g] for row in trace.lrs], label=label, linewidth=1.4)
        if trace.moms is not None:
            axes_list[1].plot(steps, [row[g] for row in trace.moms], label=label, linewidth=1.4)
    axes_list[0].set_ylabel("learning rate")
    if trace.moms is not None:
        axes_list[1].set_ylabel(trace.momentum_name or "momentum")
    for axis in axes_list:
        axis.grid(alpha=0.3)
        for name, where in trace.milestones.items():
            if where < trace.steps:
                axis.axvline(where, color="grey", linestyle=":", linewidth=1)
                if axis is axes_list[0]:
                    axis.annotate(
                        name,
                        (where, 1.0),
                        xycoords=("data", "axes fraction"),
                        xytext=(3, -12),
                        textcoords="offset points",
                        fontsize=8,
                        color="grey",
                    )
        if trace.groups > 1:
            axis.legend(fontsize=8)
    axes_list[-1].set_xlabel("step (optimizer updates)")
    figure.suptitle(f"{trace.kind} on {trace.optimizer}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
