"""Invariants of the 1-Cycle schedule over generated configurations (hypothesis)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
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


def deepspeed_scale(p: dict[str, Any], k: int) -> float:
    """DeepSpeed's cycle position after step ``k`` (``0 <= k <= T``), from its stated semantics.

    Written from ``DEEPSPEED_SEMANTICS.md`` 1.3-1.4 in exact integer terms, not from the code:
    ``s = k/S1`` rising, ``(T-k)/S2`` falling, 0 at ``k = T``; with ``n`` stairs in a half the
    position is floored to ``floor(k*n/S1)/n`` (rising) or ``floor((T-k)*n/S2)/n`` (falling).
    """
    s1, s2 = p["cycle_first_step_size"], p["cycle_second_step_size"]
    total = s1 + s2
    if k == total:
        return 0.0
    if k <= s1:
        n = p["cycle_first_stair_count"]
        return (k * n // s1) / n if n else k / s1
    n = p["cycle_second_stair_count"]
    return ((total - k) * n // s2) / n if n else (total - k) / s2


def deepspeed_values(p: dict[str, Any], k: int) -> tuple[float, float]:
    """lr and momentum after step ``k``: DeepSpeed's formulas (1.5, 1.6), with our one stated
    difference, decay momentum clamped to ``[0, max(cycle_max_mom, MOMENTUM_CEILING)]``."""
    low, high = p["cycle_min_lr"], p["cycle_max_lr"]
    mom_low, mom_high = p["cycle_min_mom"], p["cycle_max_mom"]
    total = cycle_end(p)
    if k <= total:
        s = deepspeed_scale(p, k)
        return low + (high - low) * s, mom_high - (mom_high - mom_low) * s
    t = (k - total) / p["decay_step_size"] if p["decay_step_size"] else 0.0
    lr = low / (1 + p["decay_lr_rate"] * t)
    mom = mom_high * (1 + p["decay_mom_rate"] * t)
    return lr, min(max(mom, 0.0), max(mom_high, MOMENTUM_CEILING))


def close(actual: float | None, expected: float, scale: float) -> bool:
    """Within DeepSpeed's own float route of the exact formula (3.3e-15 relative measured)."""
    return actual is not None and math.isclose(
        actual, expected, rel_tol=1e-12, abs_tol=1e-12 * scale
    )


@given(one_cycle_params(), st.randoms(use_true_random=False))
def test_every_step_is_deepspeeds_closed_form_in_any_order(p: dict[str, Any], rnd: Any) -> None:
    """Cycle and decay, asked out of order on one instance: no hidden state, DeepSpeed's values."""
    s = OneCycleSchedule(**p)
    end = cycle_end(p)
    steps = sorted(set(range(0, end + 1, max(1, end // 60))) | {0, end, end + 1, 3 * end + 7})
    rnd.shuffle(steps)
    for k in steps:
        lr, mom = s.values(k)
        want_lr, want_mom = deepspeed_values(p, k)
        assert close(lr, want_lr, p["cycle_max_lr"]), (k, lr, want_lr)
        assert close(mom, want_mom, 1.0), (k, mom, want_mom)


@given(one_cycle_params())
def test_momentum_mirrors_lr_in_the_cycle(p: dict[str, Any]) -> None:
    """In the cycle the momentum's position between its bounds is one minus the lr's."""
    s = OneCycleSchedule(**p)
    span_lr = p["cycle_max_lr"] - p["cycle_min_lr"]
    span_mom = p["cycle_max_mom"] - p["cycle_min_mom"]
    if span_lr <= 1e-9 * p["cycle_max_lr"]:
        return  # no lr movement to mirror
    for k in range(0, cycle_end(p) + 1, max(1, cycle_end(p) // 50)):
        lr, mom = s.values(k)
        lr_position = (lr - p["cycle_min_lr"]) / span_lr
        assert mom is not None
        assert math.isclose(
            mom, p["cycle_max_mom"] - span_mom * lr_position, rel_tol=1e-9, abs_tol=1e-9
        )


@given(one_cycle_params())
def test_stairs_are_piecewise_constant_with_count_plus_one_levels(p: dict[str, Any]) -> None:
    """n stairs on the rising half: exactly n + 1 lr levels, the top one only at the peak, and
    the lr after step 1 still the minimum when a stair spans more than a step
    (DEEPSPEED_SEMANTICS.md 1.4)."""
    stairs, peak = p["cycle_first_stair_count"], p["cycle_first_step_size"]
    if stairs == 0 or p["cycle_max_lr"] - p["cycle_min_lr"] <= 1e-9 * p["cycle_max_lr"]:
        return
    s = OneCycleSchedule(**p)
    rising = [s.lr(k) for k in range(peak + (1 if p["cycle_second_step_size"] else 0))]
    changes = sum(1 for a, b in itertools.pairwise(rising) if a != b)
    assert len(set(rising)) == changes + 1  # each level one run of steps: piecewise constant
    if p["cycle_second_step_size"]:
        assert len(set(rising)) == stairs + 1
        assert rising.count(max(rising)) == 1 and rising[-1] == max(rising)
    if stairs < peak:  # a stair wider than one step: step 1 is still on the bottom one
        assert s.lr(1) == p["cycle_min_lr"]


#: Values DeepSpeed 0.19.8 gave (DEEPSPEED_SEMANTICS.md 1.4, 1.6, 1.12): step -> lr.
SEED = dict(
    cycle_min_lr=1e-4,
    cycle_max_lr=1e-3,
    cycle_first_step_size=1000,
    cycle_second_step_size=1000,
    decay_step_size=1000,
    decay_lr_rate=1e-3,
)


def test_recorded_deepspeed_values() -> None:
    decay = OneCycleSchedule(**SEED)
    assert decay.lr(2001) == pytest.approx(9.999990000010002e-05, rel=1e-12)
    assert decay.lr(3000) == pytest.approx(9.990009990009991e-05, rel=1e-12)
    assert decay.lr(4000) == pytest.approx(9.980039920159681e-05, rel=1e-12)
    no_fall = OneCycleSchedule(
        cycle_min_lr=1e-4, cycle_max_lr=1e-3, cycle_first_step_size=100, cycle_second_step_size=0
    )
    assert no_fall.lr(99) == pytest.approx(0.000991, rel=1e-12)
    assert no_fall.lr(100) == 1e-4  # the maximum is never reached
    uneven = OneCycleSchedule(
        cycle_min_lr=0.0,
        cycle_max_lr=1.0,
        cycle_first_step_size=100,
        cycle_second_step_size=150,
        cycle_first_stair_count=7,
        cycle_second_stair_count=4,
    )
    rising_changes = [k for k in range(1, 101) if uneven.lr(k) != uneven.lr(k - 1)]
    assert rising_changes == [15, 29, 43, 58, 72, 86, 100]
    assert {uneven.lr(k) for k in range(101, 138)} == {0.75}
    assert {uneven.lr(k) for k in range(138, 176)} == {0.5}
    assert {uneven.lr(k) for k in range(176, 213)} == {0.25}
    assert {uneven.lr(k) for k in range(213, 251)} == {0.0}
    seed_stairs = OneCycleSchedule(
        **dict(SEED, cycle_first_stair_count=500, cycle_second_stair_count=500)
    )
    assert [seed_stairs.lr(k) for k in (1, 2, 3)] == [1e-4, *[1e-4 + 9e-4 / 500] * 2]
    assert seed_stairs.lr(1000) == pytest.approx(1e-3, rel=1e-12)
    assert seed_stairs.lr(1001) == seed_stairs.lr(1002) < seed_stairs.lr(1000)
    assert seed_stairs.lr(1999) == seed_stairs.lr(2000) == 1e-4


@given(one_cycle_params(), st.integers(0, 5000))
def test_decay_never_raises_lr_above_min_nor_momentum_to_one(
    p: dict[str, Any], extra: int
) -> None:
    s = OneCycleSchedule(**p)
    k = cycle_end(p) + 1 + extra
    lr, mom = s.values(k)
    assert 0.0 <= lr <= p["cycle_min_lr"]
    assert mom is not None and 0.0 <= mom <= max(MOMENTUM_CEILING, p["cycle_max_mom"]) < 1.0
    want_lr, want_mom = deepspeed_values(p, k)
    assert close(lr, want_lr, p["cycle_min_lr"]) and close(mom, want_mom, 1.0)


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
