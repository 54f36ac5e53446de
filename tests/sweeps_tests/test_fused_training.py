"""Fused trials: each trial in a stacked group ends where it would have ended alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import torch
from torch import Tensor

from sweeps.trials import TrainSettings, train
from sweeps.trials.fused import row_losses, train_fused
from sweeps.workloads import build_workload

SCHEDULES: list[dict[str, Any]] = [
    {"cycle_min_lr": 0.005, "cycle_max_lr": 0.05, "cycle_first_step_size": 20},
    {
        "cycle_min_lr": 0.01,
        "cycle_max_lr": 0.2,
        "cycle_first_step_size": 10,
        "cycle_first_stair_count": 5,
        "decay_step_size": 5,
        "decay_lr_rate": 0.5,
        "cycle_min_mom": 0.8,
        "cycle_max_mom": 0.95,
    },
    {"cycle_min_lr": 0.001, "cycle_max_lr": 0.01, "cycle_first_step_size": 15},
]


def _workload(name: str = "digits") -> Any:
    return build_workload(name, 64, 0, torch.device("cpu"), hidden=[32, 16])


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_each_fused_trial_matches_the_same_trial_trained_alone(optimizer: str) -> None:
    schedules = [dict(s) for s in SCHEDULES]
    if optimizer == "adamw":
        for s in schedules:
            s["cycle_min_lr"] /= 10
            s["cycle_max_lr"] /= 10
    settings = TrainSettings(epochs=2, optimizer=optimizer, weight_decay=1e-3, seed=3)  # type: ignore[arg-type]
    fused = train_fused(_workload(), schedules, settings)
    for index, schedule in enumerate(schedules):
        alone = train(_workload(), schedule, settings)
        assert alone.model is not None
        together = fused.results[index]
        assert together.steps == alone.steps and together.samples == alone.samples
        for name, value in alone.model.named_parameters():
            torch.testing.assert_close(
                fused.weights[index][name], value.detach(), rtol=1e-4, atol=2e-5
            )
        assert len(together.evaluations) == len(alone.evaluations)
        for (s1, n1, m1), (s2, n2, m2) in zip(
            together.evaluations, alone.evaluations, strict=True
        ):
            assert (s1, n1) == (s2, n2)
            assert m1["val_loss"] == pytest.approx(m2["val_loss"], rel=1e-4)
            assert m1["val_accuracy"] == pytest.approx(m2["val_accuracy"], abs=1e-9)


def test_a_diverging_member_stops_alone_and_the_others_are_untouched() -> None:
    schedules = [
        dict(SCHEDULES[0]),
        {"cycle_min_lr": 5.0, "cycle_max_lr": 50.0},
        dict(SCHEDULES[2]),
    ]
    settings = TrainSettings(epochs=2, seed=1)
    fused = train_fused(_workload(), schedules, settings)
    alone_bad = train(_workload(), schedules[1], settings)
    assert alone_bad.diverged is not None
    assert fused.results[1].diverged == alone_bad.diverged
    assert fused.results[1].diverged_step == alone_bad.diverged_step
    assert fused.results[1].steps == alone_bad.steps
    for index in (0, 2):
        alone = train(_workload(), schedules[index], settings)
        assert fused.results[index].diverged is None
        assert alone.model is not None
        for name, value in alone.model.named_parameters():
            torch.testing.assert_close(
                fused.weights[index][name], value.detach(), rtol=1e-4, atol=2e-5
            )


class _StopSecondAtFirstEval:
    def __init__(self) -> None:
        self.steps: list[tuple[int, list[int], list[bool]]] = []
        self.lrs: dict[int, list[float]] = {}
        self.plan: Tensor | None = None

    def on_plan(self, lr: Tensor, momentum: Tensor | None) -> None:
        self.plan = lr

    def on_steps(
        self,
        step: int,
        members: Sequence[int],
        alive: Sequence[bool],
        lr: Tensor,
        momentum: Tensor | None,
        losses: Tensor,
    ) -> None:
        self.steps.append((step, list(members), list(alive)))
        for row, member in enumerate(members):
            if alive[row]:
                self.lrs.setdefault(member, []).append(float(lr[row]))

    def on_eval(
        self, step: int, samples: int, metrics: Mapping[int, dict[str, float]]
    ) -> set[int]:
        return {1} if step == 10 else set()


def test_a_stopped_member_is_frozen_then_compacted_away_and_its_lr_history_is_exact() -> None:
    from schedulers import OneCycleSchedule

    hooks = _StopSecondAtFirstEval()
    settings = TrainSettings(epochs=1, seed=0, eval_every=10)
    fused = train_fused(_workload(), SCHEDULES[:2], settings, hooks)
    assert fused.stopped == {1}
    assert fused.results[1].steps == 10 and len(fused.results[1].evaluations) == 1
    assert fused.results[0].steps == _workload().steps_per_epoch
    # After the stop the stack holds one row (two rows, one dead: compacted at once).
    assert hooks.steps[10][1] == [0]
    for member, schedule in ((0, SCHEDULES[0]), (1, SCHEDULES[1])):
        expected = OneCycleSchedule(**schedule)
        assert hooks.lrs[member] == [expected.lr(k) for k in range(len(hooks.lrs[member]))]
    # The plan the loop announced is what it applied, a row per update, a column per trial.
    assert hooks.plan is not None and hooks.plan.shape == (_workload().steps_per_epoch, 2)
    assert hooks.plan[:, 0].tolist() == hooks.lrs[0]
    assert hooks.plan[:10, 1].tolist() == hooks.lrs[1]


def test_same_seed_gives_the_same_fused_results_every_run() -> None:
    settings = TrainSettings(epochs=1, seed=5)
    first = train_fused(_workload("breast_cancer"), SCHEDULES, settings)
    second = train_fused(_workload("breast_cancer"), SCHEDULES, settings)
    for a, b in zip(first.results, second.results, strict=True):
        assert a.evaluations == b.evaluations
    for a, b in zip(first.weights, second.weights, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)


class _Residual(torch.nn.Module):
    """Not an nn.Sequential: the fused path runs it through torch.func.vmap."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(64, 24)
        self.mid = torch.nn.Linear(24, 24)
        self.out = torch.nn.Linear(24, 10)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.inp(x))
        return self.out(h + torch.tanh(self.mid(h)))


def test_a_model_that_is_not_a_plain_mlp_takes_the_vmap_path_and_still_matches() -> None:
    from sweeps.trials.fused import StackedModel
    from sweeps.workloads.sklearn_data import Digits

    class ResidualDigits(Digits):
        def build_model(self) -> torch.nn.Module:
            return _Residual()

    def workload() -> ResidualDigits:
        return ResidualDigits(64, 0, torch.device("cpu"))

    assert not StackedModel(_Residual(), 2).fast
    settings = TrainSettings(epochs=1, seed=2)
    fused = train_fused(workload(), SCHEDULES[:2], settings)
    for index in range(2):
        alone = train(workload(), SCHEDULES[index], settings)
        assert alone.model is not None
        for name, value in alone.model.named_parameters():
            torch.testing.assert_close(
                fused.weights[index][name], value.detach(), rtol=1e-4, atol=2e-5
            )


def test_models_with_buffers_are_refused() -> None:
    from sweeps.workloads.sklearn_data import Digits

    class NormDigits(Digits):
        def build_model(self) -> torch.nn.Module:
            return torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.BatchNorm1d(8))

    with pytest.raises(
        ValueError, match=r"NormDigits.build_model\(\): layer `1` \(BatchNorm1d\) keeps buffers"
    ):
        train_fused(NormDigits(64, 0, torch.device("cpu")), SCHEDULES[:1], TrainSettings(epochs=1))


@pytest.mark.parametrize("name", ["digits", "breast_cancer"])
def test_a_built_in_loss_per_row_equals_its_loss_on_each_row_alone(name: str) -> None:
    task = _workload(name)
    split = task.split
    torch.manual_seed(0)
    classes = 1 if task.problem == "binary" else int(split.y_train.max()) + 1
    outputs = torch.randn(5, 64, classes, requires_grad=True)
    targets = split.y_train[:64]
    rows = row_losses(task)(outputs, targets)
    alone = torch.stack([task.loss(row, targets) for row in outputs])
    torch.testing.assert_close(rows, alone)
    (grad_rows,) = torch.autograd.grad(rows.sum(), outputs)
    (grad_alone,) = torch.autograd.grad(alone.sum(), outputs)
    torch.testing.assert_close(grad_rows, grad_alone)


def test_a_task_with_its_own_loss_keeps_it_per_row() -> None:
    task = _workload()

    class Smoothed(type(task)):  # type: ignore[misc]
        def loss(self, output: Tensor, target: Tensor) -> Tensor:
            return torch.nn.functional.cross_entropy(output, target, label_smoothing=0.1)

    smoothed = Smoothed(64, 0, torch.device("cpu"), hidden=[32, 16])
    outputs = torch.randn(3, 64, 10)
    targets = smoothed.split.y_train[:64]
    expected = torch.stack([smoothed.loss(row, targets) for row in outputs])
    torch.testing.assert_close(row_losses(smoothed)(outputs, targets), expected)
    assert not torch.allclose(row_losses(task)(outputs, targets), expected)
