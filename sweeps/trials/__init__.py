"""How one trial trains: one runner per kind of trial behind one interface, the shared rules.

``task`` runs the project's loop over a :class:`sweeps.Task` (the built-ins are tasks too),
``function`` calls a user's training function with a :class:`TrialContext`, ``command``
launches a user's script that reaches its trial through :func:`current_trial`; :data:`RUNNERS`
picks one for a sweep file's ``workload``. The loops know neither Optuna nor MLflow; they call
hooks (``docs/architecture.md``).
"""

from __future__ import annotations

from sweeps.config import OptimizerName
from sweeps.trials._command import CommandFailed, CommandRunner, CommandSpec
from sweeps.trials._command_runner import (
    NO_RANGE_TEST,
    CommandTrials,
    command_spec,
)
from sweeps.trials._context import ContextBase, DivergenceStop
from sweeps.trials._env import RunnerEnv
from sweeps.trials._function import FunctionRunner, TrialContext, import_entrypoint
from sweeps.trials._launch import split_command
from sweeps.trials._objective import MlflowTarget, TrialDiverged, TrialObjective
from sweeps.trials._probe import Probe, RangeTestDone
from sweeps.trials._reasons import failure_reason
from sweeps.trials._rules import (
    LossWatch,
    TrainResult,
    TrainSettings,
    divergence_reason,
    make_optimizer,
    record_evaluation,
    set_momentum,
)
from sweeps.trials._runners import RUNNERS, TrialRunner, as_runner, make_runner
from sweeps.trials._script import ScriptTrialContext, current_trial
from sweeps.trials._task import NoHooks, TaskRunner, TrainingHooks, train
from sweeps.trials._tracker import trial_run_end

__all__ = [
    "NO_RANGE_TEST",
    "RUNNERS",
    "CommandFailed",
    "CommandRunner",
    "CommandSpec",
    "CommandTrials",
    "ContextBase",
    "DivergenceStop",
    "FunctionRunner",
    "LossWatch",
    "MlflowTarget",
    "NoHooks",
    "OptimizerName",
    "Probe",
    "RangeTestDone",
    "RunnerEnv",
    "ScriptTrialContext",
    "TaskRunner",
    "TrainResult",
    "TrainSettings",
    "TrainingHooks",
    "TrialContext",
    "TrialDiverged",
    "TrialObjective",
    "TrialRunner",
    "as_runner",
    "command_spec",
    "current_trial",
    "divergence_reason",
    "failure_reason",
    "import_entrypoint",
    "make_optimizer",
    "make_runner",
    "record_evaluation",
    "set_momentum",
    "split_command",
    "train",
    "trial_run_end",
]
