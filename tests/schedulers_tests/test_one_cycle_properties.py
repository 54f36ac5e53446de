"""Invariants of the 1-Cycle schedule over generated configurations (hypothesis)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import schedulers
from schedulers.schedules import MOMENTUM_CEILING, OneCycleSchedule


@st.composite
def one_cycle_params(draw: st.DrawFn) -> dict[str, Any]:
    low = draw(st.floats(1e-6, 1.0))
    high = low * draw(st.floats(1.0, 1000.0))
    first = draw(st.integers(1, 300))
    second = draw(st.integers(0, 300))
    mom_low = draw(st.floats(0.0, 0.98))
    mom_high = draw(st.floats(mom_low, 0.99))
    return dict(
        cycle_min_lr=low,
        cycle_max_lr=high,
        cycle_first_step_size=first,
        cycle_second_step_size=second,
        cycle_first_stair_count=draw(st.integers(0, first)),
        cycle_second_stair_count=draw(st.integers(0, second)) if second else 0,
        decay_step_size=draw(st.sampled_from([0, 1, 7, 100])),
        decay_lr_rate=draw(st.floats(0.0, 5.0)),
        decay_mom_rate=draw(st.floats(-1.0, 1.0)),
        cycle_min_mom=mom_low,
        cycle_max_mom=mom_high,
    )


def cycle_end(p: dict[str, Any]) -> int:
    return int(p["cycle_first_step_size"] + p["cycle_second_step_size"])


@given(one_cycle_params())
def test_boundaries_start_at_min_peak_at_max(p: dict[str, Any]) -> None:
    s = OneCycleSchedule(**p)
    assert s.lr(0) == p["cycle_min_lr"]
    assert s.momentum(0) == p["cycle_max_mom"]
    if p["cycle_second_step_size"] > 0:
        peak = p["cycle_first_step_size"]
        assert math.isclose(s.lr(peak), p["cycle_max_lr"], rel_tol=1e-12)
        assert math.isclose(
            s.momentum(peak) or 0.0, p["cycle_min_mom"], rel_tol=1e-12, abs_tol=1e-12
        )
        assert s.lr(cycle_end(p)) == p["cycle_min_lr"]


@given(one_cycle_params())
def test_lr_stays_within_bounds_and_halves_are_monotonic(p: dict[str, Any]) -> None:
    s = OneCycleSchedule(**p)
    low, high = p["cycle_min_lr"], p["cycle_max_lr"]
    peak, end = p["cycle_first_step_size"], cycle_end(p)
    # With no falling half DeepSpeed ends the cycle at the peak step with s = 0 (max never hit).
    rising = [s.lr(k) for k in range(peak + (1 if p["cycle_second_step_size"] else 0))]
    falling = [s.lr(k) for k in range(peak, end + 1)]
    tolerance = 1e-12 * high
    assert all(low - tolerance <= v <= high + tolerance for v in rising + falling)
    assert all(a <= b + tolerance for a, b in itertools.pairwise(rising))
    if p["cycle_second_step_size"] > 0:
        assert all(a + tolerance >= b for a, b in itertools.pairwise(falling))


@given(one_cycle_params())
def test_momentum_mirrors_lr_in_the_cycle(p: dict[str, Any]) -> None:
    s = OneCycleSchedule(**p)
    span_lr = p["cycle_max_lr"] - p["cycle_min_lr"]
    span_mom = p["cycle_max_mom"] - p["cycle_min_mom"]
    for k in range(0, cycle_end(p) + 1, max(1, cycle_end(p) // 50)):
        lr, mom = s.values(k)
        factor = s.scale(k)
        assert math.isclose(lr, p["cycle_min_lr"] + span_lr * factor, rel_tol=1e-12)
        assert mom is not None
        assert math.isclose(
            mom, p["cycle_max_mom"] - span_mom * factor, rel_tol=1e-12, abs_tol=1e-12
        )


@given(one_cycle_params())
def test_stairs_are_piecewise_constant_with_count_plus_one_levels(p: dict[str, Any]) -> None:
    s = OneCycleSchedule(**p)
    stairs = p["cycle_first_stair_count"]
    if stairs == 0:
        return
    levels = {s.scale(k) for k in range(p["cycle_first_step_size"] + 1)}
    assert len(levels) <= stairs + 1
    assert all(
        math.isclose(level * stairs, round(level * stairs), abs_tol=1e-9) for level in levels
    )


@given(one_cycle_params(), st.integers(0, 5000))
def test_decay_never_raises_lr_above_min_nor_momentum_to_one(
    p: dict[str, Any], extra: int
) -> None:
    s = OneCycleSchedule(**p)
    k = cycle_end(p) + 1 + extra
    lr, mom = s.values(k)
    assert 0.0 <= lr <= p["cycle_min_lr"]
    assert mom is not None and 0.0 <= mom <= max(MOMENTUM_CEILING, p["cycle_max_mom"]) < 1.0


@settings(max_examples=30, deadline=None)
@given(one_cycle_params(), st.integers(0, 700), st.integers(1, 200))
def test_resume_from_state_dict_equals_uninterrupted_run(
    p: dict[str, Any], split: int, more: int
) -> None:
    def fresh() -> tuple[torch.optim.Optimizer, schedulers.OneCycle]:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.5)
        return opt, schedulers.OneCycle(opt, **p)

    opt_a, straight = fresh()
    for _ in range(split):
        straight.step()
    state = straight.state_dict()
    opt_b, resumed = fresh()
    resumed.load_state_dict(state)
    for _ in range(more):
        assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]
        assert opt_b.param_groups[0]["momentum"] == opt_a.param_groups[0]["momentum"]
        straight.step()
        resumed.step()


@given(one_cycle_params(), st.integers(0, 2000))
def test_schedule_is_a_pure_function_of_the_step(p: dict[str, Any], k: int) -> None:
    s = OneCycleSchedule(**p)
    assert s.values(k) == s.values(k) == OneCycleSchedule(**p).values(k)
