"""The exponential range-test schedule: endpoints, constant ratio, stairs, validation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from schedulers import ExponentialRangeTestSchedule, ScheduledLR


def test_lr_runs_from_min_to_max_with_a_constant_ratio_per_step() -> None:
    schedule = ExponentialRangeTestSchedule(min_lr=1e-5, max_lr=10.0, num_steps=120)
    lrs = [schedule.lr(k) for k in range(121)]
    assert lrs[0] == 1e-5
    assert math.isclose(lrs[-1], 10.0, rel_tol=1e-9)
    ratios = {round(b / a, 9) for a, b in itertools.pairwise(lrs)}
    assert len(ratios) == 1 and math.isclose(ratios.pop(), 1e6 ** (1 / 120), rel_tol=1e-8)


def test_stairs_hold_each_lr_for_stair_size_steps() -> None:
    schedule = ExponentialRangeTestSchedule(min_lr=1e-3, max_lr=1.0, num_steps=30, stair_size=10)
    lrs = [schedule.lr(k) for k in range(31)]
    assert lrs[:10] == [1e-3] * 10
    assert len(set(lrs[10:20])) == 1 and math.isclose(lrs[10], 1e-2, rel_tol=1e-9)
    assert math.isclose(lrs[30], 1.0, rel_tol=1e-9)


def test_adapter_applies_it_to_every_group_and_leaves_momentum() -> None:
    weights = [torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)]
    optimizer = torch.optim.SGD([{"params": [w]} for w in weights], lr=1.0, momentum=0.7)
    schedule = ExponentialRangeTestSchedule(min_lr=1e-4, max_lr=1e-2, num_steps=2)
    scheduler = ScheduledLR(optimizer, [schedule, schedule])
    optimizer.step()
    scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-3, 1e-3])
    assert [g["momentum"] for g in optimizer.param_groups] == [0.7, 0.7]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_lr": 0.0}, "`min_lr` must be > 0.0, got 0.0"),
        ({"min_lr": 1.0, "max_lr": 0.5}, "`min_lr` must be <= `max_lr`"),
        ({"num_steps": 0}, "`num_steps` must be > 0, got 0"),
        ({"stair_size": 0}, "`stair_size` must be > 0, got 0"),
    ],
)
def test_bad_parameters_name_the_key_and_value(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ExponentialRangeTestSchedule(**kwargs)  # type: ignore[arg-type]
