"""The sweep file ``onecycle init`` writes: the project's recipe, with a comment on each choice.

A first sweep file is where users copy their habits (wide hand-set ranges, random search, no
pruning); the starter writes what the project recommends instead, and says why next to each
line so a user can change it knowingly. The text is YAML that :func:`load_config` validates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from sweeps.config._recipe import RECIPE_HYPERBAND, RECIPE_MAX_LR, RECIPE_MIN_LR, RECIPE_TPE
from sweeps.config._schema import AutoRange

StarterKind = Literal["builtin", "task", "entrypoint", "command"]


@dataclass(frozen=True)
class Starter:
    """What ``onecycle init`` was told to write a sweep file for."""

    kind: StarterKind
    #: The built-in workload's name, ``module:Class``, ``module:function`` or the command line.
    target: str
    name: str
    n_trials: int = 24
    epochs: int = 10
    batch_size: int = 64
    #: The metric the user's code reports, and its direction (entrypoints and commands).
    metric: str | None = None
    direction: Literal["maximize", "minimize"] | None = None
    #: Updates one trial makes (a task's batches times epochs), or 0 when only the trial knows:
    #: the cycle is sized to fit the run.
    updates: int = 0

    @property
    def trains_here(self) -> bool:
        """Whether the project runs the training loop: the LR range test and fusing need it."""
        return self.kind != "command"


def starter_text(starter: Starter) -> str:
    """The sweep file's text.

    Example:
        >>> text = starter_text(Starter("builtin", "digits", "digits-onecycle"))
        >>> [line.split("#")[0] for line in text.splitlines() if "cycle_max_lr:" in line]
        ['    cycle_max_lr: {auto: true, below: 3.0, above: 2.0}  ']
    """
    lines = [
        "# A 1-Cycle sweep written by `onecycle init`: the recommended search, to adjust.",
        f"name: {_scalar(starter.name)}",
        "workload:",
        f"  {starter.kind}: {_scalar(starter.target)}",
        f"  batch_size: {starter.batch_size}",
        f"  epochs: {starter.epochs}",
        "  device: auto               # a GPU when there is one",
        "  seed: 0",
    ]
    if starter.kind in ("entrypoint", "command"):
        metric = starter.metric or "val_loss"
        direction = starter.direction or direction_of(metric)
        lines += [
            "objective:                   # what your code reports, and which way is better",
            f"  metric: {_scalar(metric)}",
            f"  direction: {direction}",
        ]
    elif starter.metric or starter.direction:
        lines.append("objective:")
        if starter.metric:
            lines.append(f"  metric: {_scalar(starter.metric)}")
        if starter.direction or starter.metric:
            chosen = starter.direction or direction_of(starter.metric or "")
            lines.append(f"  direction: {chosen}")
    lines += _search_lines(starter)
    if starter.trains_here:
        lines += [
            "range_test: {steps: 200}     # updates of the LR range test behind `auto`",
            "execution:",
            "  fused_trials: auto         # several trials as one stacked model when it pays"
            if starter.kind != "entrypoint"
            else "  fused_trials: 1            # a function's own loop cannot fuse; a Task can",
        ]
    return "\n".join(lines) + "\n"


def _search_lines(starter: Starter) -> list[str]:
    """The ``search:`` and ``scheduler:`` sections: the recipe and the space around it."""
    return [
        "search:",
        f"  n_trials: {starter.n_trials}",
        "  sampler: tpe               # learns from finished trials; random is a baseline",
        f"  tpe: {_flow(RECIPE_TPE)}",
        "                             # one model of all parameters after 5 random trials;",
        "                             # running trials count as bad, so workers spread out",
        "  pruner: hyperband          # stops weak schedules at a few evaluation points",
        f"  hyperband: {_flow(RECIPE_HYPERBAND)}  # rungs at 1, 2, 4, 8 evaluations",
        "  seed: 0",
        "  space:                     # DeepSpeed's OneCycle names",
        *_lr_bounds(starter),
        *_cycle_length(starter.updates),
        "    decay_lr_rate: {low: 0.0, high: 1.0}",
        "scheduler:                   # fixed, not searched",
        "  cycle_min_mom: 0.85        # momentum falls while lr rises, and back",
        "  cycle_max_mom: 0.95",
        f"  decay_step_size: {max(1, starter.updates // 20) if starter.updates else 20}",
    ]


#: Words in a metric's name that say which way is better.
_LOWER_IS_BETTER = ("loss", "err", "perplexity", "mse", "mae", "rmse", "nll", "wer", "cer")
_HIGHER_IS_BETTER = ("acc", "auc", "f1", "precision", "recall", "map", "bleu", "score", "iou")


def direction_of(metric: str) -> Literal["maximize", "minimize"]:
    """Which way ``metric`` improves, from its name; a ValueError when the name does not say.

    Example:
        >>> direction_of("val_loss"), direction_of("val_auc")
        ('minimize', 'maximize')
    """
    name = metric.lower()
    if any(word in name for word in _LOWER_IS_BETTER):
        return "minimize"
    if any(word in name for word in _HIGHER_IS_BETTER):
        return "maximize"
    raise ValueError(f"--direction: maximize or minimize, as {metric!r} does not say, got none")


def _cycle_length(updates: int) -> list[str]:
    """The cycle's first half as a range of updates: a tenth to a half of the run when known."""
    if not updates:
        return ["    cycle_first_step_size: {low: 20, high: 400}  # updates; high: half the run's"]
    low = max(1, updates // 10)
    high = max(low + 1, updates // 2)
    size = f"{{low: {low}, high: {high}}}"
    return [f"    cycle_first_step_size: {size}  # a trial makes {updates} updates"]


def _lr_bounds(starter: Starter) -> list[str]:
    if starter.trains_here:
        return [
            f"    cycle_min_lr: {_auto(RECIPE_MIN_LR)}       # ranges around the LR range test's",
            f"    cycle_max_lr: {_auto(RECIPE_MAX_LR)}  # suggestions",
        ]
    return [
        "    cycle_min_lr: {low: 1.0e-4, high: 1.0e-2, log: true}   # a launched script has no",
        "    cycle_max_lr: {low: 1.0e-3, high: 1.0, log: true}      # range test: set bounds",
    ]


def _flow(options: BaseModel) -> str:
    """A section's fields as one YAML flow mapping, ``{key: value, ...}``."""
    fields = options.model_dump()
    return "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items()) + "}"


def _auto(entry: AutoRange) -> str:
    """``auto`` for the default margins, else the entry with its margins."""
    return "auto" if entry == AutoRange(auto=True) else _flow(entry)


def _scalar(value: str) -> str:
    """``value`` as a YAML scalar: JSON's string quoting is valid YAML."""
    return json.dumps(value)
