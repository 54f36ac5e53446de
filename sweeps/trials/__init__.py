"""How one trial trains: the built-in loop, a user's function, a launched command, the rules.

The loops know neither Optuna nor MLflow; they call hooks (``docs/architecture.md``).
"""

from __future__ import annotations

from sweeps.config import OptimizerName
from sweeps.trials._command import CommandFailed, CommandRunner, CommandSpec
from sweeps.trials._command_workload import command_spec, command_workload
from sweeps.trials._context import ContextBase, TrainingDiverged
from sweeps.trials._function import TrialContext, entrypoint_workload, import_entrypoint
from sweeps.trials._launch import split_command
from sweeps.trials._objective import MlflowTarget, Objective, TrialDiverged
from sweeps.trials._rules import (
    LossWatch,
    TrainResult,
    TrainSettings,
    divergence_reason,
    make_optimizer,
    record_evaluation,
)
from sweeps.trials._script import ScriptTrialContext, current_trial
from sweeps.trials._task import train
from sweeps.trials._tracker import trial_run_end

__all__ = [
    "CommandFailed",
    "CommandRunner",
    "CommandSpec",
    "ContextBase",
    "LossWatch",
    "MlflowTarget",
    "Objective",
    "OptimizerName",
    "ScriptTrialContext",
    "TrainResult",
    "TrainSettings",
    "TrainingDiverged",
    "TrialContext",
    "TrialDiverged",
    "command_spec",
    "command_workload",
    "current_trial",
    "divergence_reason",
    "entrypoint_workload",
    "import_entrypoint",
    "make_optimizer",
    "record_evaluation",
    "split_command",
    "train",
    "trial_run_end",
]
