"""Best-so-far curves over seeds: medians, quartiles, compute to a target, the table, the plot.

Every task here is maximized (AUC, accuracy). Before a run's first finished trial its
best-so-far is minus infinity, so a median is only defined once more than half the seeds have
a result; quartiles use the nearest seed (no interpolation across minus infinity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GRID = 400


@dataclass
class Curve:
    """One run: (updates spent, trial value or None, state) after each trial, in order."""

    points: list[tuple[int, float | None, str]] = field(default_factory=list)

    def add(self, spent: int, value: float | None, state: str) -> None:
        """Record one trial (or the range test) ending at ``spent`` updates."""
        self.points.append((spent, value, state))

    def best_at(self, grid: np.ndarray) -> np.ndarray:
        """Best value of the trials that ended by each compute in ``grid`` (-inf before any)."""
        out = np.full(len(grid), -math.inf)
        best = -math.inf
        for spent, value, _ in self.points:
            if value is not None and math.isfinite(value):
                best = max(best, value)
            out[grid >= spent] = np.maximum(out[grid >= spent], best)
        return out


def quantiles(curves: list[Curve], grid: np.ndarray) -> np.ndarray:
    """Rows q25, median, q75 of best-so-far over seeds at each point of ``grid``."""
    values = np.stack([c.best_at(grid) for c in curves])
    return np.quantile(values, [0.25, 0.5, 0.75], axis=0, method="nearest")


def final_best(curves: list[Curve], budget: int) -> np.ndarray:
    """q25, median, q75 of each seed's best within the budget."""
    return quantiles(curves, np.array([budget]))[:, 0]


def compute_to_reach(curves: list[Curve], target: float, budget: int) -> int | None:
    """Updates after which the median best-so-far is at least ``target`` (None: never)."""
    grid = np.linspace(0, budget, GRID + 1)
    median = quantiles(curves, grid)[1]
    reached = np.nonzero(median >= target)[0]
    return int(grid[reached[0]]) if len(reached) else None


def print_tables(
    results: dict[str, dict[str, list[Curve]]],
    budgets: dict[str, int],
    floors: dict[str, float],
    seeds: int,
) -> None:
    """Per task: final best (median [q25, q75]) and the compute to reach strategy 2's median."""
    for task, strategies in results.items():
        budget = budgets[task]
        target = float(final_best(strategies["optuna"], budget)[1])
        print(
            f"\n{task}: {seeds} seeds, budget {budget} updates; target = strategy 2's final "
            f"median best {target:.4f}; noise floor (one validation sample) {floors[task]:.4f}"
        )
        print(
            f"{'strategy':28s} {'final best: median [q25, q75]':>32s} {'gap to 2':>9s} "
            f"{'compute to target':>18s} {'to target - floor':>18s}"
        )
        for name, curves in strategies.items():
            q25, median, q75 = final_best(curves, budget)
            reach = [
                _share(compute_to_reach(curves, goal, budget), budget)
                for goal in (target, target - floors[task])
            ]
            gap = median - target
            verdict = "tie" if abs(gap) <= floors[task] else f"{gap:+.4f}"
            print(
                f"{name:28s} {median:10.4f} [{q25:.4f}, {q75:.4f}]{'':>3s} "
                f"{verdict:>9s} {reach[0]:>18s} {reach[1]:>18s}"
            )


def _share(spent: int | None, budget: int) -> str:
    """Updates and their share of the budget (strategy 2's whole compute)."""
    return "never" if spent is None else f"{spent} ({spent / budget:.0%})"


def write_plot(
    results: dict[str, dict[str, list[Curve]]], budgets: dict[str, int], path: Path
) -> None:
    """Median best-so-far against compute with the quartile band, one panel per task."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6 * len(results), 4.2), layout="constrained")
    axes = figure.subplots(1, len(results), squeeze=False)[0]
    for axis, (task, strategies) in zip(axes, results.items(), strict=True):
        budget = budgets[task]
        grid = np.linspace(0, budget, GRID + 1)
        floor = None
        for name, curves in strategies.items():
            q25, median, q75 = quantiles(curves, grid)
            shown = np.isfinite(median)
            (line,) = axis.plot(grid[shown], median[shown], label=name)
            band = np.isfinite(q25) & np.isfinite(q75)
            axis.fill_between(grid[band], q25[band], q75[band], color=line.get_color(), alpha=0.15)
            if name == "optuna":
                floor = float(median[-1])
        if floor is not None:
            axis.axhline(floor, color="grey", linestyle=":", linewidth=1)
            bands = np.stack([quantiles(c, grid) for c in strategies.values()])
            finite = bands[np.isfinite(bands)]
            if finite.size:  # from the lower fifth of the curves up to the highest quartile
                low, high = float(np.quantile(finite, 0.2)), float(finite.max())
                axis.set_ylim(low, high + 0.1 * (high - low or 1e-3))
        axis.set_title(f"{task}: best so far (median, quartiles over seeds)")
        axis.set_xlabel("optimizer updates spent (all trials, range test included)")
        axis.set_ylabel("best validation metric")
        axis.legend(fontsize="small", loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
