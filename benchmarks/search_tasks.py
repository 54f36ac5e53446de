"""The two tasks and three strategies ``bench_search.py`` compares, as sweep files would say them.

Each strategy is a sweep file's ``search`` section over the same task, so what is measured is
what a user gets from writing it: strategies 1 and 2 search the wide hand-set ranges a user
writes first, the recipe lets the LR range test set the lr bounds and keeps the rest.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sweeps.config import RECIPE_HYPERBAND, RECIPE_MAX_LR, RECIPE_MIN_LR, RECIPE_TPE

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@dataclass(frozen=True)
class BenchTask:
    """A workload where the schedule matters, the range test's settings, and its noise floor."""

    name: str
    workload: dict[str, Any]
    #: The cycle's first step size, in updates, a user would search (about 10%-50% of a run).
    step_range: tuple[int, int]
    range_test: dict[str, Any]
    #: The largest change of the metric one validation sample can make.
    noise_floor: Callable[[], float]
    scheduler: dict[str, Any] = field(default_factory=lambda: {"decay_step_size": 8})


def _ctr_floor() -> float:
    """AUC: one sample of the rarer class moved across every sample of the other."""
    from sweeps.workloads.synthetic_ctr import SyntheticCTR

    labels = SyntheticCTR(512, 0, torch.device("cpu"), [64, 64], rows=50_000).split.y_val
    positives = int(labels.sum())
    return 1.0 / min(positives, len(labels) - positives)


def _cnn_floor() -> float:
    """Accuracy: one image of the validation split."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    from cnn_task import DigitsCNN

    return 1.0 / len(DigitsCNN(480, 0, torch.device("cpu"), channels=8).val_labels)


TASKS = {
    # The batch-scaling study's large batch (8 x 64) held to its baseline's samples (2 epochs):
    # the tutorial's "as fast in samples", where the schedule decides the result.
    "ctr": BenchTask(
        name="ctr",
        workload={
            "builtin": "synthetic_ctr",
            "batch_size": 512,
            "epochs": 2,
            "eval_every": 16,
            "optimizer": "sgd",
            "device": "cpu",
            "seed": 0,
            "options": {"rows": 50_000, "hidden": [64, 64]},
        },
        step_range=(16, 78),
        range_test={"min_lr": 1e-4, "max_lr": 100.0, "steps": 150},
        noise_floor=_ctr_floor,
    ),
    # examples/cnn_task.py at a third of its training set per batch: 3 updates an epoch.
    "cnn": BenchTask(
        name="cnn",
        workload={
            "task": "cnn_task:DigitsCNN",
            "batch_size": 480,
            "epochs": 12,
            "device": "cpu",
            "seed": 0,
            "options": {"channels": 8},
        },
        step_range=(4, 18),
        range_test={"min_lr": 1e-4, "max_lr": 100.0, "steps": 60},
        noise_floor=_cnn_floor,
    ),
}

WIDE_LR = {
    "cycle_max_lr": {"low": 1e-3, "high": 10.0, "log": True},
    "cycle_min_lr": {"low": 1e-4, "high": 1.0, "log": True},
}
MOMENTUM = {
    "cycle_min_mom": {"low": 0.8, "high": 0.9},
    "cycle_max_mom": {"low": 0.9, "high": 0.99},
}

#: The recipe's search section, less its space: what ``onecycle init`` writes.
RECIPE: dict[str, Any] = {
    "sampler": "tpe",
    "tpe": RECIPE_TPE.model_dump(),
    "pruner": "hyperband",
    "hyperband": RECIPE_HYPERBAND.model_dump(),
}
RECIPE_LR = {
    "cycle_max_lr": RECIPE_MAX_LR.model_dump(),
    "cycle_min_lr": RECIPE_MIN_LR.model_dump(),
}

STRATEGIES: dict[str, dict[str, Any]] = {
    "random": {"sampler": "random", "pruner": "none"},
    "optuna": {"sampler": "tpe", "pruner": "median"},
    "recipe": RECIPE,
}

_AUTO = {"auto": True}
#: Recipe variants, one knob turned at a time (``--knobs``); ``lr`` replaces the lr entries.
KNOBS: dict[str, dict[str, Any]] = {
    "recipe, 10 startup trials": {"tpe": {**RECIPE["tpe"], "n_startup_trials": 10}},
    "recipe, univariate TPE": {"tpe": {"n_startup_trials": RECIPE["tpe"]["n_startup_trials"]}},
    "recipe, median pruner": {"pruner": "median", "hyperband": None},
    "recipe, halving by 3": {"hyperband": {**RECIPE["hyperband"], "reduction_factor": 3}},
    "recipe, max lr /2 x2": {"lr": {"cycle_max_lr": _AUTO, "cycle_min_lr": _AUTO}},
    "recipe, max lr /4 x2": {
        "lr": {"cycle_max_lr": {**_AUTO, "below": 4.0, "above": 2.0}, "cycle_min_lr": _AUTO}
    },
    "recipe, wide lr ranges": {"lr": WIDE_LR},
}


def sweep_file(task: BenchTask, strategy: str, seed: int) -> dict[str, Any]:
    """The sweep file that runs ``strategy`` (a name in STRATEGIES or KNOBS) on ``task``."""
    knob = KNOBS.get(strategy, {})
    search = dict(STRATEGIES.get(strategy, RECIPE))
    search.update({k: v for k, v in knob.items() if k != "lr"})
    search = {k: v for k, v in search.items() if v is not None}
    recipe = strategy not in ("random", "optuna")
    lr = knob.get("lr", RECIPE_LR) if recipe else WIDE_LR
    low, high = task.step_range
    space = {
        **lr,
        "cycle_first_step_size": {"low": low, "high": high},
        "decay_lr_rate": {"low": 0.0, "high": 1.0},
        **MOMENTUM,
    }
    return {
        "name": re.sub(r"[^A-Za-z0-9_.-]+", "-", f"bench-{task.name}-{strategy}-{seed}"),
        "workload": task.workload,
        "search": {**search, "seed": seed, "n_trials": 10_000, "space": space},
        "scheduler": task.scheduler,
        "range_test": task.range_test,
    }
