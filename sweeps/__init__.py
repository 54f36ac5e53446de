"""Hyperparameter sweeps over DeepSpeed's 1-Cycle schedule, and the ``onecycle`` CLI.

This is the one package that wires the others together: ``schedulers`` for the schedules and
``storage`` for where studies and runs live. What users import is here; each name loads its
room on first use, so ``import sweeps`` (and the CLI's read-only commands) stay light.

Example:
    >>> import sweeps
    >>> config = sweeps.parse_config(
    ...     {"name": "demo", "workload": {"builtin": "digits"},
    ...      "search": {"space": {"cycle_min_lr": 1e-3,
    ...                           "cycle_max_lr": {"low": 1e-2, "high": 1.0, "log": True}}}})
    >>> config.metric
    'val_accuracy'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sweeps._lazy import lazy_names

if TYPE_CHECKING:
    from sweeps.config import SweepConfig
    from sweeps.runner import (
        Progress,
        SweepOutcome,
        create_or_resume,
        load_config,
        parse_config,
        run_sweep,
    )
    from sweeps.space import SearchSpace
    from sweeps.task import Task
    from sweeps.trials import (
        ScriptTrialContext,
        TrainResult,
        TrainSettings,
        TrialContext,
        current_trial,
    )

__version__ = "0.1.0"

_HOMES = {
    "Progress": "sweeps.runner",
    "ScriptTrialContext": "sweeps.trials",
    "SearchSpace": "sweeps.space",
    "SweepConfig": "sweeps.config",
    "SweepOutcome": "sweeps.runner",
    "Task": "sweeps.task",
    "TrainResult": "sweeps.trials",
    "TrainSettings": "sweeps.trials",
    "TrialContext": "sweeps.trials",
    "create_or_resume": "sweeps.runner",
    "current_trial": "sweeps.trials",
    "load_config": "sweeps.runner",
    "parse_config": "sweeps.runner",
    "run_sweep": "sweeps.runner",
}

__getattr__ = lazy_names(__name__, _HOMES)


__all__ = [
    "Progress",
    "ScriptTrialContext",
    "SearchSpace",
    "SweepConfig",
    "SweepOutcome",
    "Task",
    "TrainResult",
    "TrainSettings",
    "TrialContext",
    "create_or_resume",
    "current_trial",
    "load_config",
    "parse_config",
    "run_sweep",
]
