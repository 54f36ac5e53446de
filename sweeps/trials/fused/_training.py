"""Train K trials at once as one stacked model: the fused counterpart of :func:`training.train`.

The workload's model is built once (same seed, so the same initial weights every trial alone
would get) and its parameters are stacked into ``[K, ...]`` tensors.
:class:`~sweeps.trials.fused._model.StackedModel` runs the K models on each shared batch as
batched matrix products, and :func:`~sweeps.trials.fused._losses.row_losses` gives each its
loss; the K losses are summed for one backward pass (the trials share no parameters, so each
row's gradient is its own trial's). :class:`~schedulers.batched.BatchedOneCycle` gives every
row its own lr and momentum, :class:`~sweeps.trials.fused._optim.StackedOptimizer` applies them.

Each trial keeps the outcome rules of the single loop: a non-finite loss or one ``factor`` times
its first value ends that trial as diverged; a hook may stop trials at evaluation points
(pruning). A stopped row is frozen, and once half the rows are stopped the stack is compacted
so the survivors stop paying for the dead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from schedulers import OneCycleSchedule
from schedulers.batched import BatchedOneCycle
from sweeps.task import Task, to_device
from sweeps.trials._exits import exits_fail_the_trial
from sweeps.trials._rules import TrainResult, TrainSettings, divergence_reason, record_evaluation
from sweeps.trials.fused._evaluate import evaluate_rows
from sweeps.trials.fused._fusable import check_fusable
from sweeps.trials.fused._losses import row_losses
from sweeps.trials.fused._model import StackedModel
from sweeps.trials.fused._optim import StackedOptimizer


class FusedHooks(Protocol):
    """Callbacks from the fused loop; ``members`` maps stack rows to trial indices."""

    def on_plan(self, lr: Tensor, momentum: Tensor | None) -> None:
        """Before the first update: every update's lr (and momentum), ``[steps, trials]``.

        Row ``s`` is what update ``s`` applies to each trial that is still training then.
        """

    def on_steps(
        self,
        step: int,
        members: Sequence[int],
        alive: Sequence[bool],
        lr: Tensor,
        momentum: Tensor | None,
        losses: Tensor,
    ) -> None:
        """After update ``step``; row i is trial ``members[i]``, updated if ``alive[i]``.

        Values are ``[rows]`` device tensors (not synced here).
        """

    def on_eval(
        self, step: int, samples: int, metrics: Mapping[int, dict[str, float]]
    ) -> set[int]:
        """After an evaluation; returns the trials to stop now (pruned)."""


class NoFusedHooks:
    """Hooks that do nothing."""

    def on_plan(self, lr: Tensor, momentum: Tensor | None) -> None:
        """Nothing."""

    def on_steps(
        self,
        step: int,
        members: Sequence[int],
        alive: Sequence[bool],
        lr: Tensor,
        momentum: Tensor | None,
        losses: Tensor,
    ) -> None:
        """Nothing."""

    def on_eval(
        self, step: int, samples: int, metrics: Mapping[int, dict[str, float]]
    ) -> set[int]:
        """Stop nothing."""
        return set()


@dataclass
class FusedOutcome:
    """Per trial: its :class:`TrainResult`, whether a hook stopped it, its final weights."""

    results: list[TrainResult]
    stopped: set[int] = field(default_factory=set)
    weights: list[dict[str, Tensor]] = field(default_factory=list)


class _Stack:
    """The live rows: stacked weights, their optimizer, their schedule, the trials they hold."""

    def __init__(
        self,
        model: nn.Module,
        schedules: list[OneCycleSchedule],
        settings: TrainSettings,
        device: torch.device,
        total_steps: int,
    ) -> None:
        count = len(schedules)
        self.model = StackedModel(model, count)
        self.members = list(range(count))
        self.device = device
        self.optimizer = StackedOptimizer(
            list(self.model.params.values()), settings.optimizer, settings.weight_decay
        )
        # The whole run's lr and momentum, one row per step: an index per update, not 20 ops.
        steps = torch.arange(total_steps + 1, device=device)
        self.lr_table, self.mom_table = BatchedOneCycle(schedules, device).values(steps)
        self.alive = [True] * count
        self.mask = torch.ones(count, dtype=torch.bool, device=device)

    def plan(self, steps: int) -> tuple[Tensor, Tensor | None]:
        """Every update's lr and momentum, ``[steps, rows]``: what ``on_plan`` is given."""
        momentum = None if self.mom_table is None else self.mom_table[:steps]
        return self.lr_table[:steps], momentum

    def stop(self, row: int) -> None:
        """Freeze ``row`` (its trial ended); the device mask follows the host list."""
        self.alive[row] = False
        self.mask = torch.tensor(self.alive, dtype=torch.bool, device=self.device)

    def keep(self, rows: list[int]) -> None:
        """Drop every row not in ``rows`` (positions in the current stack)."""
        index = torch.tensor(rows, device=self.device)
        self.model.keep(index)
        self.optimizer.params = list(self.model.params.values())
        self.optimizer.state_rows(index)
        self.members = [self.members[r] for r in rows]
        self.lr_table = self.lr_table.index_select(1, index)
        if self.mom_table is not None:
            self.mom_table = self.mom_table.index_select(1, index)
        self.alive = [True] * len(rows)
        self.mask = torch.ones(len(rows), dtype=torch.bool, device=self.device)


@exits_fail_the_trial
def train_fused(
    workload: Task,
    schedules: Sequence[Mapping[str, Any]],
    settings: TrainSettings,
    hooks: FusedHooks | None = None,
) -> FusedOutcome:
    """Train one trial per schedule, all at once; per-trial results as :func:`train` gives."""
    hooks = hooks or NoFusedHooks()
    torch.manual_seed(settings.seed)
    model = check_fusable(workload).to(workload.device)
    total_steps = workload.steps_per_epoch * settings.epochs
    stack = _Stack(
        model, [OneCycleSchedule(**s) for s in schedules], settings, workload.device, total_steps
    )
    hooks.on_plan(*stack.plan(total_steps))
    results = [TrainResult() for _ in schedules]
    outcome = FusedOutcome(results)
    weights: dict[int, dict[str, Tensor]] = {}
    member_loss = row_losses(workload)
    eval_every = settings.eval_every or workload.steps_per_epoch
    check_every = 1 if workload.device.type == "cpu" else 32
    first: dict[int, float] = {}
    pending: list[Tensor] = []
    start = time.perf_counter()
    step = 0
    for epoch in range(settings.epochs):
        for x, y in _on_device(workload, epoch):
            lr = stack.lr_table[step]
            momentum = None if stack.mom_table is None else stack.mom_table[step]
            losses = member_loss(stack.model(x), y)
            for value in stack.model.params.values():
                value.grad = None
            total = torch.where(stack.mask, losses, torch.zeros_like(losses)).sum()
            total.backward()  # type: ignore[no-untyped-call]
            stack.optimizer.step(lr, momentum, stack.mask)
            detached = losses.detach()
            hooks.on_steps(step, stack.members, stack.alive, lr, momentum, detached)
            step += 1
            for member in _live_members(stack):
                results[member].steps, results[member].samples = step, step * workload.batch_size
            pending.append(detached)
            if len(pending) >= check_every:
                _diverged(pending, stack, first, settings.divergence_factor, results, step)
                pending.clear()
            if step % eval_every == 0 and any(stack.alive):
                _evaluate(workload, stack, settings, hooks, outcome, step)
            _compact(stack, weights)
            if not stack.members:
                break
        if not stack.members:
            break
    live = _live_members(stack)
    if live and (not results[live[0]].evaluations or results[live[0]].evaluations[-1][0] != step):
        _evaluate(workload, stack, settings, hooks, outcome, step)
    wall = time.perf_counter() - start
    for result in results:
        result.wall_time_s = wall
    _snapshot(stack, weights, list(range(len(stack.members))))
    outcome.weights = [weights[m] for m in range(len(schedules))]
    return outcome


def _on_device(task: Task, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
    for inputs, targets in task.batches(epoch):
        yield to_device(inputs, task.device), to_device(targets, task.device)


def _live_members(stack: _Stack) -> list[int]:
    return [m for m, alive in zip(stack.members, stack.alive, strict=True) if alive]


def _diverged(
    pending: list[Tensor],
    stack: _Stack,
    first: dict[int, float],
    factor: float,
    results: list[TrainResult],
    step: int,
) -> None:
    """The single loop's divergence rule, per row, over the losses since the last check."""
    values = torch.stack(pending)  # [steps, rows]
    # A trial's first loss is the first row of the first check it takes part in.
    firsts = torch.tensor(
        [first.get(member, math.nan) for member in stack.members],
        dtype=values.dtype,
        device=values.device,
    )
    firsts = torch.where(torch.isnan(firsts), values[0], firsts)
    finite = torch.isfinite(values).all(dim=0)
    peaks = values.max(dim=0).values
    limit = factor * torch.clamp(firsts, min=1e-12)
    flagged = (~finite) | (peaks > limit)
    # One sync per check: the flags, and the numbers only a message needs.
    flags, first_values, peak_values = (
        flagged.tolist(),
        firsts.tolist(),
        peaks.tolist(),
    )
    for row, member in enumerate(stack.members):
        if not stack.alive[row]:
            continue
        first.setdefault(member, first_values[row])
        if not flags[row]:
            continue
        reason = divergence_reason(peak_values[row], first[member], factor) or "non-finite loss"
        results[member].diverged, results[member].diverged_step = reason, step - 1
        stack.stop(row)


def _evaluate(
    workload: Task,
    stack: _Stack,
    settings: TrainSettings,
    hooks: FusedHooks,
    outcome: FusedOutcome,
    step: int,
) -> None:
    """Every live row's validation metrics, as ``workload.evaluate`` computes them alone."""
    samples = step * workload.batch_size
    live = [(row, member) for row, member in enumerate(stack.members) if stack.alive[row]]
    metrics = evaluate_rows(workload, stack.model, [row for row, _ in live])
    by_member = {member: metrics[row] for row, member in live}
    for member, values in by_member.items():
        record_evaluation(outcome.results[member], step, samples, values, settings)
    stop = hooks.on_eval(step, samples, by_member)
    for row, member in enumerate(stack.members):
        if member in stop and stack.alive[row]:
            stack.stop(row)
            outcome.stopped.add(member)


def _snapshot(stack: _Stack, weights: dict[int, dict[str, Tensor]], rows: list[int]) -> None:
    for row in rows:
        member = stack.members[row]
        if member not in weights:
            weights[member] = stack.model.weights(row)


def _compact(stack: _Stack, weights: dict[int, dict[str, Tensor]]) -> None:
    """Remove stopped rows once they are half the stack (their final weights kept)."""
    dead = [row for row, keep in enumerate(stack.alive) if not keep]
    if not dead or len(dead) * 2 < len(stack.alive):
        return
    _snapshot(stack, weights, dead)
    rows = [row for row, keep in enumerate(stack.alive) if keep]
    if rows:
        stack.keep(rows)
    else:
        stack.members, stack.alive = [], []
