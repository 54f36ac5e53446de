"""Fused trials: K trials of one task stacked into one model and trained at once.

See ``docs/fused.md`` for the design and ``benchmarks/bench_fused.py`` for the figures.
"""

from __future__ import annotations

from sweeps.trials.fused._fusable import check_fusable, fusable_task
from sweeps.trials.fused._losses import row_losses
from sweeps.trials.fused._model import StackedModel
from sweeps.trials.fused._sizing import auto_fused_trials
from sweeps.trials.fused._training import FusedOutcome, train_fused

__all__ = [
    "FusedOutcome",
    "StackedModel",
    "auto_fused_trials",
    "check_fusable",
    "fusable_task",
    "row_losses",
    "train_fused",
]
