"""How one trial trains: the built-in loop over a workload, a user's function, the shared rules.

The loops know neither Optuna nor MLflow; they call hooks (``docs/architecture.md``).
"""

from __future__ import annotations

from sweeps.config import OptimizerName
from sweeps.trials._function import TrialContext, entrypoint_workload, import_entrypoint
from sweeps.trials._objective import MlflowTarget, TrialDiverged, TrialObjective
from sweeps.trials._rules import (
    LossWatch,
    TrainResult,
    TrainSettings,
    divergence_reason,
    make_optimizer,
    record_evaluation,
)
from sweeps.trials._task import train
from sweeps.trials._tracker import trial_run_end

__all__ = [
    "LossWatch",
    "MlflowTarget",
    "OptimizerName",
    "TrainResult",
    "TrainSettings",
    "TrialContext",
    "TrialDiverged",
    "TrialObjective",
    "divergence_reason",
    "entrypoint_workload",
    "import_entrypoint",
    "make_optimizer",
    "record_evaluation",
    "train",
    "trial_run_end",
]
