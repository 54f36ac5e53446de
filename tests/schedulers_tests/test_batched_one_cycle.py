"""The vectorised 1-Cycle equals the scalar closed form for every schedule, bit for bit."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from schedulers import OneCycleSchedule
from schedulers.batched import BatchedOneCycle


@st.composite
def one_cycles(draw: st.DrawFn, momentum: bool = True) -> OneCycleSchedule:
    low = draw(st.floats(1e-5, 0.5))
    high = draw(st.floats(low, 1.0))
    first = draw(st.integers(1, 40))
    second = draw(st.one_of(st.none(), st.integers(1, 40)))
    stairs_first = draw(st.integers(0, first))
    stairs_second = draw(st.integers(0, second)) if second is not None else None
    if second is not None and stairs_second is None and stairs_first > second:
        stairs_first = second
    min_mom = draw(st.floats(0.5, 0.95))
    return OneCycleSchedule(
        cycle_min_lr=low,
        cycle_max_lr=high,
        cycle_first_step_size=first,
        cycle_second_step_size=second,
        cycle_first_stair_count=stairs_first,
        cycle_second_stair_count=stairs_second,
        decay_step_size=draw(st.sampled_from([0, 1, 7, 20])),
        decay_lr_rate=draw(st.sampled_from([0.0, 0.001, 0.5, 3.0])),
        decay_mom_rate=draw(st.sampled_from([0.0, 0.01, -0.2, 0.5])),
        cycle_momentum=momentum,
        cycle_min_mom=min_mom,
        cycle_max_mom=draw(st.floats(min_mom, 0.99)),
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(one_cycles(), min_size=1, max_size=8))
def test_every_step_equals_the_scalar_schedule_exactly(schedules: list[OneCycleSchedule]) -> None:
    batched = BatchedOneCycle(schedules)
    horizon = max(s.horizon for s in schedules) + 30
    for step in range(horizon):
        lr, mom = batched.values(step)
        assert mom is not None
        expected = [s.values(step) for s in schedules]
        assert lr.tolist() == [e[0] for e in expected], step
        assert mom.tolist() == [e[1] for e in expected], step


def test_non_integer_step_sizes_match_too() -> None:
    schedules = [
        OneCycleSchedule(0.001, 0.1, cycle_first_step_size=12.5, cycle_second_step_size=7.25),
        OneCycleSchedule(
            0.01, 0.02, cycle_first_step_size=3.3, decay_step_size=2.5, decay_lr_rate=0.3
        ),
    ]
    batched = BatchedOneCycle(schedules)
    for step in range(60):
        lr, mom = batched.values(step)
        assert lr.tolist() == [s.values(step)[0] for s in schedules]
        assert mom is not None and mom.tolist() == [s.values(step)[1] for s in schedules]


def test_uncycled_momentum_gives_none_and_mixing_is_refused() -> None:
    fixed = OneCycleSchedule(0.01, 0.1, cycle_first_step_size=4, cycle_momentum=False)
    assert BatchedOneCycle([fixed, fixed]).values(3)[1] is None
    cycled = OneCycleSchedule(0.01, 0.1, cycle_first_step_size=4)
    with pytest.raises(ValueError, match="`cycle_momentum` must be the same"):
        BatchedOneCycle([fixed, cycled])
    with pytest.raises(ValueError, match="at least one"):
        BatchedOneCycle([])


def test_values_live_on_the_requested_device() -> None:
    lr, _ = BatchedOneCycle([OneCycleSchedule(0.01, 0.1)], device="cpu").values(0)
    assert lr.device == torch.device("cpu") and lr.dtype == torch.float64


def test_a_table_of_steps_equals_stepping_one_by_one() -> None:
    schedules = [
        OneCycleSchedule(0.001, 0.1, cycle_first_step_size=7, cycle_first_stair_count=3),
        OneCycleSchedule(
            0.01, 0.05, cycle_first_step_size=4, decay_step_size=3, decay_mom_rate=0.2
        ),
    ]
    batched = BatchedOneCycle(schedules)
    lr_table, mom_table = batched.values(torch.arange(40))
    assert lr_table.shape == (40, 2) and mom_table is not None
    for step in range(40):
        lr, mom = batched.values(step)
        assert torch.equal(lr_table[step], lr) and mom is not None
        assert torch.equal(mom_table[step], mom)
    with pytest.raises(ValueError, match="non-negative"):
        batched.values(-1)
