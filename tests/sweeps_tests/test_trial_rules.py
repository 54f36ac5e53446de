"""One set of rules for every trial runner: the built-in loop and a user's function agree."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from sweeps.trials import LossWatch, TrainSettings, TrialContext, divergence_reason, train
from sweeps.trials._function import DivergenceStop, FunctionRunner
from sweeps.trials._task import NoHooks
from sweeps.workloads import build_workload

SCHEDULE = {"cycle_min_lr": 0.01, "cycle_max_lr": 0.1, "cycle_first_step_size": 10}
ACCELERATOR = torch.device("cuda")  # only the check's cadence depends on it


def test_the_rule_names_the_peak_and_the_first_loss() -> None:
    assert divergence_reason(3.0, 1.0, 10.0) is None
    assert divergence_reason(11.0, 1.0, 10.0) == "loss 11 exceeded 10x its first value 1"
    assert divergence_reason(math.inf, 1.0, 10.0) == "non-finite loss"


def test_a_cpu_loss_is_checked_at_once_an_accelerator_one_at_the_next_check() -> None:
    cpu = LossWatch(10.0, torch.device("cpu"))
    assert cpu.add(torch.tensor(1.0)) is None
    assert cpu.add(torch.tensor(math.nan)) == "non-finite loss"
    device = LossWatch(10.0, ACCELERATOR)
    assert device.add(torch.tensor(1.0)) is None
    assert device.add(torch.tensor(50.0)) is None  # not synced yet
    assert device.check() == "loss 50 exceeded 10x its first value 1"
    watch = LossWatch(10.0, ACCELERATOR)
    found = [watch.add(torch.tensor(1.0 if i < 31 else math.nan)) for i in range(32)]
    assert found[:31] == [None] * 31 and found[31] == "non-finite loss"


def _context(device: torch.device, target: float | None = None) -> TrialContext:
    settings = TrainSettings(epochs=1, target=target)
    return TrialContext(SCHEDULE, device, 0, 16, 1, {}, NoHooks(), 10.0, settings)


def test_a_users_loop_on_an_accelerator_has_its_losses_checked() -> None:
    """The function path once checked only CPU losses: a user's loop on a GPU never diverged."""
    context = _context(ACCELERATOR)
    context.log_loss(torch.tensor(2.0))
    context.log_loss(torch.tensor(math.inf))  # held on the device until the next check
    with pytest.raises(DivergenceStop, match="non-finite loss"):
        context.report({"val_accuracy": 0.5})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_losses_on_a_real_gpu_are_checked() -> None:
    context = _context(torch.device("cuda"))
    context.log_loss(torch.tensor(2.0, device="cuda"))
    context.log_loss(torch.tensor(100.0, device="cuda"))
    with pytest.raises(DivergenceStop, match="exceeded 10x"):
        context.report({"val_accuracy": 0.5})


def _reporting(accuracies: list[float]) -> Any:
    def run(ctx: TrialContext) -> None:
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
        scheduler = ctx.scheduler(optimizer)
        for accuracy in accuracies:
            for _ in range(4):
                ctx.log_loss(torch.tensor(1.0))
                scheduler.step()
            ctx.report({"val_accuracy": accuracy})

    return run


def test_a_users_function_records_samples_to_target_and_best_like_the_loop() -> None:
    settings = TrainSettings(epochs=1, target=0.8)
    workload = FunctionRunner(_reporting([0.5, 0.85, 0.7]), 16, 0, torch.device("cpu"), 1, {})
    result = workload.run(SCHEDULE, settings, NoHooks())
    assert result.samples_to_target == 8 * 16  # the second report, after 8 updates
    assert result.best == pytest.approx(0.85)
    assert result.steps == 12 and result.diverged is None
    never = FunctionRunner(_reporting([0.5, 0.6]), 16, 0, torch.device("cpu"), 1, {})
    assert never.run(SCHEDULE, settings, NoHooks()).samples_to_target is None
    # the built-in loop records the same figure from the same rule
    digits = build_workload("digits", 64, 0, torch.device("cpu"), hidden=[16])
    loop = train(digits, SCHEDULE, TrainSettings(epochs=2, target=0.5))
    assert loop.samples_to_target is not None and loop.samples_to_target % 64 == 0


def test_a_users_except_exception_does_not_swallow_the_divergence_stop() -> None:
    """A loop that guards its logging with ``except Exception`` still stops where the loss
    diverged (a BaseException, like the range test's stop), not after its last epoch."""
    updates: list[int] = []

    def careless(ctx: TrialContext) -> dict[str, float]:
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
        scheduler = ctx.scheduler(optimizer)
        for step in range(40):
            try:  # noqa: SIM105 - written as users write it
                ctx.log_loss(torch.tensor(1.0 if step < 5 else math.inf))
            except Exception:
                pass  # "logging must never kill training"
            scheduler.step()
            updates.append(step)
        return {"val_accuracy": 0.5}

    workload = FunctionRunner(careless, 16, 0, torch.device("cpu"), 1, {})
    result = workload.run(SCHEDULE, TrainSettings(epochs=1), NoHooks())
    assert result.diverged == "non-finite loss"
    assert updates == list(range(5))  # stopped at the first non-finite loss
