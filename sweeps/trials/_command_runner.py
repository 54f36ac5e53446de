"""The sweep file's ``workload.command`` as a trial runner (the table in ``_runners.py``).

A command owns its loop in another process, so of the runner interface it has only ``run``:
no steps known ahead, nothing to check by running it, and no range test (the test would have
to drive the script's scheduler update by update; a task or a training function can).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sweeps.task import Task
from sweeps.trials._command import CommandRunner, CommandSpec
from sweeps.trials._launch import split_command
from sweeps.trials._probe import Probe
from sweeps.trials._rules import TrainResult, TrainSettings
from sweeps.trials._task import TrainingHooks

if TYPE_CHECKING:
    from sweeps.config import Workload as WorkloadSection
    from sweeps.trials._env import RunnerEnv

#: Why the range test and ``auto`` refuse a command, and what to write instead.
NO_RANGE_TEST = (
    "the range test drives a loop update by update and a command runs its own in another "
    "process; write the model as a sweeps.Task (`workload.task`) or a training function "
    "(`workload.entrypoint`)"
)


def command_spec(section: WorkloadSection, sweep: str, secrets: Sequence[str] = ()) -> CommandSpec:
    """The sweep file's command settings; relative paths are the sweep file's directory's."""
    workdir = Path(section.workdir or ".").resolve()
    base = section.deepspeed_config
    return CommandSpec(
        argv=tuple(split_command(section.command or "")),
        workdir=workdir,
        trials_root=workdir / "onecycle-trials" / sweep,
        deepspeed_config=(workdir / base) if base else None,
        max_trial_seconds=section.max_trial_seconds,
        batch_size=section.batch_size,
        seed=section.seed,
        epochs=section.epochs,
        options=dict(section.options),
        secrets=tuple(secrets),
    )


class CommandTrials:
    """Trials of a launched script: each trial one :class:`CommandRunner` run."""

    task: Task | None = None

    def __init__(self, runner: CommandRunner, batch_size: int) -> None:
        self.runner = runner
        self.batch_size = batch_size
        self.device = torch.device("cpu")

    def planned_steps(self, epochs: int) -> int:
        """Unknown ahead of time (0): the script runs its own loop."""
        return 0

    def check(self, settings: TrainSettings) -> None:
        """Nothing to run ahead: the program and the base config were checked on load."""

    def run(
        self, schedule: Mapping[str, Any], settings: TrainSettings, hooks: TrainingHooks
    ) -> TrainResult:
        """Launch the trial's command (see :class:`CommandRunner`)."""
        return self.runner.run(schedule, settings, hooks)

    def probe(self, probe: Probe, settings: TrainSettings) -> None:
        """Refused: see :data:`NO_RANGE_TEST`."""
        raise ValueError(f"workload.command: {NO_RANGE_TEST}")


def command_runner(section: WorkloadSection, env: RunnerEnv) -> CommandTrials:
    """A runner for ``workload.command``: trials on ``env.gpus``, interrupted by ``env.stop``."""
    spec = command_spec(section, env.sweep, env.secrets)
    return CommandTrials(CommandRunner(spec, env.gpus, env.stop), section.batch_size)
