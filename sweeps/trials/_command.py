"""A trial as a command: the user's training script, launched as its own processes.

``workload.command`` (for example ``torchrun --nproc_per_node 2 train.py --deepspeed_config
{deepspeed_config}``) runs once per trial in the sweep file's directory, in its own process
group, on its own GPUs. The script reaches its trial through ``sweeps.current_trial()``; the
worker keeps the channel, records what rank 0 sends as any trial's hooks would, and answers
each evaluation with the pruner's decision. How it ends maps onto the usual outcomes:
reported and exited 0 is COMPLETE, pruned is PRUNED (the group ended), a diverged loss is a
recorded divergence, and a non-zero exit, a run past ``max_trial_seconds`` or an exit without
a single report is FAIL with the reason. See ``docs/command_trials.md``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

import optuna
import torch
from torch.optim import Optimizer

from sweeps.trials._channel import ChannelServer, Connection, Message
from sweeps.trials._launch import (
    TrialFiles,
    failure_line,
    fill_placeholders,
    free_port,
    prepare_files,
    script_environment,
)
from sweeps.trials._processes import TrialProcesses
from sweeps.trials._rules import TrainResult, TrainSettings, record_evaluation
from sweeps.trials._task import TrainingHooks

#: Seconds the processes of a trial get between SIGTERM and SIGKILL.
GRACE_S = 10.0
#: Output files up to this size are logged as run artifacts.
ARTIFACT_MAX_BYTES = 10 * 1024 * 1024


class CommandFailed(Exception):
    """The trial's command failed: a non-zero exit, a timeout, no report. FAIL, with why."""


@runtime_checkable
class CommandHooks(Protocol):
    """What a command trial needs of its hooks beyond training's: the number, a file logger."""

    number: int

    def log_files(self, files: list[tuple[str, str]]) -> None:
        """Log ``(path, artifact folder)`` files to the trial's run."""


@dataclass(frozen=True)
class CommandSpec:
    """What the sweep file says about the command (see ``workload`` in the sweep file)."""

    argv: tuple[str, ...]
    workdir: Path
    trials_root: Path
    deepspeed_config: Path | None = None
    max_trial_seconds: float | None = None
    batch_size: int = 64
    seed: int = 0
    epochs: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Store URLs: neither they nor their passwords may reach the script or a failure reason.
    secrets: tuple[str, ...] = ()


class _Groups:
    """The lr and momentum a script sent, shaped like ``optimizer.param_groups`` for hooks."""

    def __init__(self, groups: list[list[float | None]]) -> None:
        self.param_groups = [
            {"lr": lr} if momentum is None else {"lr": lr, "momentum": momentum}
            for lr, momentum in groups
        ]


class CommandRunner:
    """Runs one trial's command: ``run(schedule, settings, hooks) -> TrainResult``.

    ``gpus`` are the GPU ids this runner's trials get (``CUDA_VISIBLE_DEVICES``); ``stop``,
    when set from another thread, ends the running trial as an interruption.
    """

    def __init__(
        self,
        spec: CommandSpec,
        gpus: Sequence[str] = (),
        stop: threading.Event | None = None,
    ) -> None:
        self.spec = spec
        self.gpus = list(gpus)
        self.stop = stop or threading.Event()

    def run(
        self, schedule: Mapping[str, Any], settings: TrainSettings, hooks: TrainingHooks
    ) -> TrainResult:
        """Launch the command for one trial, serve its channel, end it; describe what it did."""
        number = hooks.number if isinstance(hooks, CommandHooks) else 0
        files = prepare_files(self.spec.trials_root, number, schedule, self.spec.deepspeed_config)
        channel = ChannelServer()
        session = _Session(self.spec, schedule, settings, hooks, number)
        try:
            env = script_environment(os.environ, channel.path, self.gpus, self.spec.secrets)
            argv = fill_placeholders(self.spec.argv, files, number, free_port())
            processes = TrialProcesses(argv, self.spec.workdir, env, files.stdout, files.stderr)
            try:
                return session.serve(channel, processes, files, self.stop)
            finally:
                processes.end(GRACE_S)
        finally:
            channel.close()
            if isinstance(hooks, CommandHooks):
                hooks.log_files(_artifacts(files))


class _Session:
    """One trial's conversation with its script, from the thread that runs the trial."""

    def __init__(
        self,
        spec: CommandSpec,
        schedule: Mapping[str, Any],
        settings: TrainSettings,
        hooks: TrainingHooks,
        number: int,
    ) -> None:
        self.spec, self.schedule, self.settings, self.hooks = spec, schedule, settings, hooks
        self.number = number
        self.result = TrainResult()
        self.decisions: list[Message] = []
        self.waiting: list[tuple[Connection, int]] = []
        self.pruned: optuna.TrialPruned | None = None

    def serve(
        self,
        channel: ChannelServer,
        processes: TrialProcesses,
        files: TrialFiles,
        stop: threading.Event,
    ) -> TrainResult:
        """Answer the script until it exits or the trial must end; the outcome."""
        started = time.monotonic()
        limit = self.spec.max_trial_seconds
        while processes.poll() is None:
            if stop.is_set():
                raise KeyboardInterrupt
            if limit is not None and time.monotonic() - started > limit:
                raise CommandFailed(f"ran past max_trial_seconds={limit:g}; its processes ended")
            item = channel.get(timeout=0.1)
            if item is not None:
                self.handle(*item)
            if self.pruned is not None or self.result.diverged is not None:
                return self._stopped(processes, channel)
        channel.wait_closed(5.0)  # the ranks' last messages
        while (item := channel.get(timeout=0.2)) is not None:
            self.handle(*item)
        self.result.wall_time_s = time.monotonic() - started
        if self.pruned is not None or self.result.diverged is not None:
            return self._stopped(processes, channel)
        code = processes.process.returncode
        if code != 0:
            raise CommandFailed(
                f"exit code {code}: {failure_line(files.stderr, self.spec.secrets)}"
            )
        if not self.result.evaluations:
            raise CommandFailed("exited with code 0 without a single report (trial.report)")
        return self.result

    def _stopped(self, processes: TrialProcesses, channel: ChannelServer) -> TrainResult:
        """Pruned or diverged: the ranks get the decision and a moment to stop, then the end."""
        processes.watch()
        deadline = time.monotonic() + 3.0
        while processes.poll() is None and time.monotonic() < deadline:
            item = channel.get(timeout=0.05)
            if item is not None:
                self.handle(*item)
        processes.end(GRACE_S)
        if self.pruned is not None:
            raise self.pruned
        return self.result

    def handle(self, connection: Connection, message: Message) -> None:
        """One message from a rank."""
        op = message.get("op")
        if op == "hello":
            connection.reply(self._hello())
        elif op == "decision":
            self.waiting.append((connection, int(message.get("index", 0))))
        elif op in ("report", "flush", "diverged"):
            self._steps(message)
            if op == "report":
                self.decisions.append(self._evaluate(message))
                connection.reply(self.decisions[-1])
            elif op == "diverged":
                self.result.diverged = str(message.get("reason", "diverged"))
                self.result.diverged_step = max(self.result.steps - 1, 0)
                connection.reply({"stop": "diverged"})
        for waiter in [w for w in self.waiting if w[1] < len(self.decisions)]:
            self.waiting.remove(waiter)
            waiter[0].reply(self.decisions[waiter[1]])

    def _hello(self) -> Message:
        return {
            "params": dict(self.schedule),
            "trial": self.number,
            "seed": self.spec.seed,
            "batch_size": self.spec.batch_size,
            "epochs": self.settings.epochs,
            "eval_every": self.settings.eval_every,
            "options": dict(self.spec.options),
            "divergence_factor": self.settings.divergence_factor,
        }

    def _steps(self, message: Message) -> None:
        for step, groups, loss in message.get("steps", []):
            applied = cast(Optimizer, _Groups(groups))
            self.hooks.on_step(int(step), applied, None if loss is None else torch.tensor(loss))
        updates = int(message.get("updates", self.result.steps))
        self.result.steps, self.result.samples = updates, updates * self.spec.batch_size

    def _evaluate(self, message: Message) -> Message:
        metrics = {key: float(value) for key, value in message.get("metrics", {}).items()}
        steps, samples = self.result.steps, self.result.samples
        record_evaluation(self.result, steps, samples, metrics, self.settings)
        try:
            self.hooks.on_eval(steps, samples, metrics)
        except optuna.TrialPruned as pruned:
            self.pruned = pruned
            return {"stop": "pruned", "message": str(pruned)}
        return {"stop": None}


def _artifacts(files: TrialFiles) -> list[tuple[str, str]]:
    """The trial's files worth keeping with its run: configs, logs, small outputs."""
    found = [(str(path), "") for path in (files.params, files.deepspeed_config) if path]
    found += [(str(files.stdout), "logs"), (str(files.stderr), "logs")]
    for path in sorted(files.output_dir.rglob("*"))[:100]:
        if path.is_file() and path.stat().st_size <= ARTIFACT_MAX_BYTES:
            folder = path.parent.relative_to(files.output_dir)
            found.append((str(path), str(Path("output") / folder)))
    return found
