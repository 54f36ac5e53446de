"""The Optuna objective: one trial = one tracked training run with a sampled OneCycle schedule.

A callable class with its dependencies injected (how to sample, which trial runner trains,
where to track), so tests and the CLI wire it the same way. Outcomes map one to
one onto MLflow: COMPLETE -> FINISHED, PRUNED -> KILLED (tag ``pruned``), FAIL -> FAILED with
the reason as a tag, for user code that raised and for a diverged loss alike. Whatever way a
trial ends, its buffered values are handed to the writer and its run is ended.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from torch import Tensor
from torch.optim import Optimizer

import schedulers
from storage.bulk_runs import NewRun
from storage.interrupts import interrupt_behind, signals_taken
from storage.trial_recording import RunRecorder, run_recorder
from sweeps.phases import phase
from sweeps.task import Task
from sweeps.tracking import FAILURE_TAG, STUDY_TAG, SWEEP_TAG, trial_files
from sweeps.trials._reasons import failure_reason
from sweeps.trials._rules import TrainResult, TrainSettings
from sweeps.trials._runners import TrialRunner, as_runner
from sweeps.trials._tracker import TrialTracker, trial_run_end

if TYPE_CHECKING:
    from storage.tracking import Tracking


class TrialDiverged(Exception):
    """No usable value (a diverged loss, a missing metric): the trial fails, the sweep goes on."""


@dataclass
class MlflowTarget:
    """Where a sweep's trials are tracked (every MLflow call goes through ``tracking``)."""

    tracking: Tracking
    experiment_id: str
    parent_run_id: str
    sweep: str
    #: Opens trials' runs (bulk where the store allows, chosen once per worker); None: the client.
    runs: RunRecorder | None = None


@dataclass
class TrialObjective:
    """``study.optimize(TrialObjective(...), catch=(TrialDiverged,))``."""

    suggest: Callable[[optuna.Trial], dict[str, Any]]
    #: The trial runner (a :class:`Task` is run by the task runner).
    get_runner: Callable[[], TrialRunner | Task]
    settings: TrainSettings
    run_params: Mapping[str, Any] = field(default_factory=dict)
    mlflow: MlflowTarget | None = None
    progress: Callable[[int, int], None] | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        """Sample, train, track; return the final value of the objective metric."""
        schedule = self.suggest(trial)
        trial.set_user_attr("deepspeed_params", schedule)
        runner = as_runner(self.get_runner())
        run_id = self._start_run(trial, schedule)
        tracker = TrialTracker(self.mlflow.tracking, run_id) if self.mlflow and run_id else None
        hooks = _TrialHooks(trial, tracker, self.settings.metric, runner.batch_size)
        hooks.progress = self.progress
        started = time.perf_counter()
        signals = signals_taken()
        try:
            with phase("training"):
                result = runner.run(schedule, self.settings, hooks)
        except optuna.TrialPruned:
            trial.set_user_attr("steps", hooks.last.steps)  # what it cost, however it ended
            self._finish(run_id, tracker, schedule, "PRUNED", None, started, hooks.last)
            raise
        except BaseException as error:
            # e.g. Optuna's storage turned the interrupt into StorageInternalError
            interrupt = interrupt_behind(error, signals)
            stopped = error if interrupt is None else interrupt
            why = f"{type(stopped).__name__}: {stopped}"
            trial.set_user_attr("steps", hooks.last.steps)
            trial.set_user_attr("failure_reason", why)
            self._finish(run_id, tracker, schedule, "FAIL", why, started, hooks.last)
            if interrupt is not None:
                raise interrupt from error
            raise
        value = result.final.get(self.settings.metric, math.nan)
        reason = failure_reason(result, self.settings.metric)
        if reason is not None:
            trial.set_user_attr("steps", result.steps)
            trial.set_user_attr("failure_reason", reason)
            self._finish(run_id, tracker, schedule, "FAIL", reason, started, result)
            raise TrialDiverged(f"trial {trial.number} failed at step {result.steps}: {reason}")
        for key in ("steps", "samples", "wall_time_s", "best", "samples_to_target"):
            trial.set_user_attr(key, getattr(result, key))
        self._finish(
            run_id,
            tracker,
            schedule,
            "COMPLETE",
            None,
            started,
            result,
            objective=value,
        )
        return float(value)

    def _start_run(self, trial: optuna.Trial, schedule: dict[str, Any]) -> str | None:
        """Open the trial's run through the worker's run recorder; its tracking handle."""
        if self.mlflow is None:
            return None
        target = self.mlflow
        tags = {
            "mlflow.parentRunId": target.parent_run_id,
            SWEEP_TAG: target.sweep,
            STUDY_TAG: trial.study.study_name,
            "onecycle.trial_number": str(trial.number),
        }
        params = {**schedulers.with_defaults("OneCycle", schedule), **self.run_params}
        handle = f"trial-{trial.number}-{uuid.uuid4().hex[:8]}"
        runs = target.runs or run_recorder(target.tracking, "", bulk=False)
        new = NewRun(f"trial-{trial.number:04d}", tags, params)
        run_id = runs.open(target.experiment_id, {handle: new})[handle]
        try:
            trial.set_user_attr("mlflow_run_id", run_id)
        except BaseException as error:  # e.g. Ctrl+C right here: do not leave the run RUNNING
            target.tracking.set_tags(handle, {FAILURE_TAG: f"{type(error).__name__}: {error}"})
            target.tracking.end_run(handle, "FAILED")
            raise
        return handle

    def _finish(
        self,
        run_id: str | None,
        tracker: TrialTracker | None,
        schedule: dict[str, Any],
        state: str,
        reason: str | None,
        started: float,
        result: TrainResult | None,
        objective: float | None = None,
    ) -> None:
        if self.mlflow is None or run_id is None or tracker is None:
            return
        tracker.flush()
        end = trial_run_end(
            self.settings.metric, schedule, (state, reason), result, started, objective
        )
        self.mlflow.tracking.end_runs({run_id: end})


class _TrialHooks:
    """Tracking plus Optuna reporting/pruning at evaluation points."""

    def __init__(
        self, trial: optuna.Trial, tracker: TrialTracker | None, metric: str, batch_size: int
    ) -> None:
        self.trial = trial
        self.tracker = tracker
        self.metric = metric
        self.batch_size = batch_size
        self.last = TrainResult()  # progress so far, for runs that end early
        self.progress: Callable[[int, int], None] | None = None
        self.number = trial.number
        self.reports = 0

    def log_files(self, files: list[tuple[str, str]]) -> None:
        """Log ``(path, artifact folder)`` files to the trial's run (a command trial's)."""
        if self.tracker is not None:
            self.tracker.tracking.call(self.tracker.run_id, trial_files, files=files)

    def on_step(self, step: int, optimizer: Optimizer, loss: Tensor | None) -> None:
        if self.tracker is not None:
            self.tracker.on_step(step, optimizer, loss)
        self.last.steps = step + 1
        self.last.samples = (step + 1) * self.batch_size
        if self.progress is not None and step % 10 == 0:
            self.progress(self.trial.number, step + 1)

    def on_eval(self, step: int, samples: int, metrics: Mapping[str, float]) -> None:
        if self.tracker is not None:
            self.tracker.on_eval(step, samples, metrics)
        value = metrics.get(self.metric)
        if value is not None and math.isfinite(value):
            self.reports += 1  # Optuna's step: evaluations, so pruner rungs are evaluations
            self.trial.report(value, self.reports)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} with {self.metric}={value:.4g}")
