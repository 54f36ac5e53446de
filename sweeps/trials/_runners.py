"""One interface for every kind of trial, and the table that picks a runner for a sweep file.

A sweep file's ``workload`` names what to train in one of a few shapes (a built-in, a user's
``task:`` class, an ``entrypoint:`` function, a launched ``command:``). Each shape has a runner
here that trains one trial under a OneCycle schedule and, where it can, drives the LR range
test. The objective, the
range test and the studies talk to the interface only; a new kind of trial is a new module with
a runner and one line in :data:`RUNNERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from sweeps.task import Task
from sweeps.trials._command_runner import command_runner
from sweeps.trials._env import RunnerEnv
from sweeps.trials._function import function_runner
from sweeps.trials._probe import Probe
from sweeps.trials._rules import TrainResult, TrainSettings
from sweeps.trials._task import TaskRunner, TrainingHooks, task_runner

if TYPE_CHECKING:
    from sweeps.config import Workload as WorkloadSection


class TrialRunner(Protocol):
    """How one kind of trial trains; every runner is built once per process and reused."""

    #: The task a runner trains in the project's own loop (fused trials need one), else None.
    task: Task | None
    batch_size: int
    device: torch.device

    def planned_steps(self, epochs: int) -> int:
        """Updates a trial of ``epochs`` will make, or 0 when only the trial knows."""
        ...

    def check(self, settings: TrainSettings) -> None:
        """Refuse, before anything is recorded, what would fail every trial (``ValueError``)."""
        ...

    def run(
        self, schedule: Mapping[str, Any], settings: TrainSettings, hooks: TrainingHooks
    ) -> TrainResult:
        """Train one trial under the OneCycle params ``schedule``."""
        ...

    def probe(self, probe: Probe, settings: TrainSettings) -> None:
        """Train under ``probe``'s schedule until it says stop (the LR range test)."""
        ...


RunnerFactory = Callable[["WorkloadSection", RunnerEnv], TrialRunner]


#: The sweep file's ``workload`` key that names the kind -> how to build its runner.
RUNNERS: dict[str, RunnerFactory] = {
    "builtin": task_runner,
    "task": task_runner,
    "entrypoint": function_runner,
    "command": command_runner,
}


def make_runner(
    section: WorkloadSection, device: torch.device, base: Path | None = None, **env: Any
) -> TrialRunner:
    """The runner for a sweep file's ``workload`` section on ``device`` (``env``: RunnerEnv)."""
    return RUNNERS[section.kind](section, RunnerEnv(device, base, **env))


def as_runner(workload: Task | TrialRunner) -> TrialRunner:
    """A runner for ``workload``: a :class:`Task` is run in the project's loop."""
    if isinstance(workload, Task):
        return TaskRunner(workload)
    return workload
