"""The sweep file's ``workload.command`` as what today's objective runs (a stand-in workload).

The command runner itself (:class:`sweeps.trials._command.CommandRunner`) has the shape every
trial runner has, ``run(schedule, settings, hooks) -> TrainResult``; this adapter only lets
the objective and the loop treat it like the other workloads until runners are registered
by kind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sweeps.trials._command import CommandRunner, CommandSpec
from sweeps.trials._launch import split_command
from sweeps.trials._rules import TrainResult, TrainSettings
from sweeps.trials._task import TrainingHooks
from sweeps.workloads.base import Split, Task, Workload


class CommandWorkload(Workload):
    """Stands in for a built-in workload; :meth:`run` launches the trial's command."""

    name: ClassVar[str] = "command"
    task: ClassVar[Task] = "multiclass"
    metric: ClassVar[str] = ""

    def __init__(self, runner: CommandRunner, batch_size: int, seed: int) -> None:
        super().__init__(batch_size, seed, torch.device("cpu"))
        self.runner = runner

    def load(self) -> Split:
        """Not used: the script brings its own data."""
        raise NotImplementedError("a command workload loads its own data")

    def build_model(self) -> nn.Module:
        """Not used: the script builds its own model."""
        raise NotImplementedError("a command workload builds its own model")

    @property
    def steps_per_epoch(self) -> int:
        """Unknown ahead of time (0)."""
        return 0

    def batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Not used."""
        return iter(())

    def run(
        self, schedule: Mapping[str, Any], settings: TrainSettings, hooks: TrainingHooks
    ) -> TrainResult:
        """Run the trial's command (see :class:`CommandRunner`)."""
        return self.runner.run(schedule, settings, hooks)


def command_spec(config: Any, secrets: Sequence[str] = ()) -> CommandSpec:
    """The sweep file's command settings; relative paths are the sweep file's directory's."""
    workload = config.workload
    workdir = Path(workload.workdir or ".").resolve()
    base = workload.deepspeed_config
    return CommandSpec(
        argv=tuple(split_command(workload.command)),
        workdir=workdir,
        trials_root=workdir / "onecycle-trials" / config.name,
        deepspeed_config=(workdir / base) if base else None,
        max_trial_seconds=workload.max_trial_seconds,
        batch_size=workload.batch_size,
        seed=workload.seed,
        epochs=workload.epochs,
        options=dict(workload.options),
        secrets=tuple(secrets),
    )


def command_workload(
    config: Any,
    secrets: Sequence[str] = (),
    gpus: Sequence[str] = (),
    stop: threading.Event | None = None,
) -> Callable[[], Workload]:
    """A factory the sweep runner uses in place of a built-in workload."""
    runner = CommandRunner(command_spec(config, secrets), gpus, stop)

    def make() -> Workload:
        return CommandWorkload(runner, config.workload.batch_size, config.workload.seed)

    return make
