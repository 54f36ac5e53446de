"""Every bad value is refused with a message naming the key, the constraint and the value."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import schedulers
from schedulers.schedules import (
    LRRangeTestSchedule,
    OneCycleSchedule,
    WarmupCosineLRSchedule,
    WarmupLRSchedule,
)

BASE = dict(cycle_min_lr=0.01, cycle_max_lr=0.1, cycle_first_step_size=10)

BAD_ONE_CYCLE: list[tuple[dict[str, Any], type[Exception], str]] = [
    (dict(cycle_min_lr=0.2), ValueError, r"`cycle_min_lr` must be <= `cycle_max_lr`.*0\.2.*0\.1"),
    (dict(cycle_first_step_size=0), ValueError, r"`cycle_first_step_size` must be > 0.0, got 0"),
    (dict(cycle_first_step_size=-3), ValueError, r"`cycle_first_step_size` must be > 0.0, got -3"),
    (dict(cycle_second_step_size=-1), ValueError, r"`cycle_second_step_size` must be >= 0.0"),
    (dict(cycle_first_stair_count=-1), ValueError, r"`cycle_first_stair_count` must be >= 0"),
    (
        dict(cycle_first_stair_count=11),
        ValueError,
        r"`cycle_first_stair_count` must be <= cycle_first_step_size \(10\).*got 11",
    ),
    (
        dict(cycle_second_step_size=4, cycle_second_stair_count=5),
        ValueError,
        r"`cycle_second_stair_count` must be <= cycle_second_step_size \(4\)",
    ),
    (
        dict(cycle_second_step_size=4, cycle_first_stair_count=5),
        ValueError,
        r"`cycle_second_stair_count` defaults to `cycle_first_stair_count` \(5\)",
    ),
    (
        dict(cycle_first_stair_count=2.5),
        TypeError,
        r"`cycle_first_stair_count` must be an integer",
    ),
    (dict(cycle_max_lr=math.nan), ValueError, r"`cycle_max_lr` must be finite, got nan"),
    (dict(cycle_min_lr=-math.inf), ValueError, r"`cycle_min_lr` must be finite, got -inf"),
    (dict(cycle_min_lr=-0.1), ValueError, r"`cycle_min_lr` must be >= 0.0, got -0.1"),
    (dict(cycle_max_lr="0.1"), TypeError, r"`cycle_max_lr` must be a real number, got '0.1'"),
    (dict(cycle_max_lr=True), TypeError, r"`cycle_max_lr` must be a real number, got True"),
    (dict(cycle_max_mom=1.0), ValueError, r"`cycle_max_mom` must be < 1.0, got 1.0"),
    (
        dict(cycle_min_mom=0.95, cycle_max_mom=0.9),
        ValueError,
        r"`cycle_min_mom` must be <= `cycle_max_mom`",
    ),
    (dict(cycle_min_mom=-0.1), ValueError, r"`cycle_min_mom` must be >= 0.0"),
    (dict(decay_lr_rate=-0.5), ValueError, r"`decay_lr_rate` must be >= 0.0, got -0.5"),
    (dict(decay_step_size=-1), ValueError, r"`decay_step_size` must be >= 0.0, got -1"),
    (dict(decay_mom_rate=math.inf), ValueError, r"`decay_mom_rate` must be finite"),
    (dict(cycle_momentum=1), TypeError, r"`cycle_momentum` must be true or false, got 1"),
]


@pytest.mark.parametrize(("change", "error", "message"), BAD_ONE_CYCLE)
def test_bad_one_cycle_value_is_refused(
    change: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        OneCycleSchedule(**{**BASE, **change})
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5, momentum=0.9)
    with pytest.raises(error, match=message):
        schedulers.OneCycle(opt, **{**BASE, **change})
    # A refused configuration leaves the optimizer as it was.
    assert opt.param_groups[0]["lr"] == 0.5
    assert opt.param_groups[0]["momentum"] == 0.9
    assert "initial_lr" not in opt.param_groups[0]


def test_wrong_list_length_names_the_key_and_group_count() -> None:
    opt = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)]}] * 1, lr=0.1)
    with pytest.raises(
        ValueError, match=r"`cycle_max_lr` must have one value per param group \(1\), got 2"
    ):
        schedulers.OneCycle(opt, cycle_min_lr=0.01, cycle_max_lr=[0.1, 0.2])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: LRRangeTestSchedule(lr_range_test_step_size=0),
            r"`lr_range_test_step_size` must be > 0",
        ),
        (
            lambda: LRRangeTestSchedule(lr_range_test_step_size=10.0),
            r"must be an integer, got 10.0",
        ),
        (
            lambda: LRRangeTestSchedule(lr_range_test_min_lr=0.0),
            r"`lr_range_test_min_lr` must be > 0.0",
        ),
        (
            lambda: LRRangeTestSchedule(lr_range_test_step_rate=-1.0),
            r"`lr_range_test_step_rate` must be >= 0.0",
        ),
        (
            lambda: WarmupLRSchedule(warmup_type="cosine"),
            r"`warmup_type` must be one of \['log', 'linear'\], got 'cosine'",
        ),
        (lambda: WarmupLRSchedule(warmup_num_steps=0), r"`warmup_num_steps` must be > 0, got 0"),
        (
            lambda: WarmupLRSchedule(warmup_min_lr=0.1, warmup_max_lr=0.01),
            r"`warmup_min_lr` must be <= `warmup_max_lr`",
        ),
        (
            lambda: WarmupCosineLRSchedule(total_num_steps=-5),
            r"`total_num_steps` must be > 0, got -5",
        ),
        (
            lambda: WarmupCosineLRSchedule(total_num_steps=5, cos_min_ratio=math.nan),
            r"`cos_min_ratio` must be finite",
        ),
    ],
)
def test_bad_values_of_other_schedules_are_refused(build: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        build()


@pytest.mark.parametrize("step", [-1, 1.5, True])
def test_public_step_argument_must_be_a_non_negative_int(step: Any) -> None:
    with pytest.raises((ValueError, TypeError), match="`step` must be"):
        OneCycleSchedule(**BASE).lr(step)


def test_explicit_batch_iteration_below_minus_one_is_refused() -> None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = schedulers.OneCycle(opt, **BASE)
    with pytest.raises(ValueError, match=r"`batch_iteration` must be >= -1, got -2"):
        sched.step(-2)
