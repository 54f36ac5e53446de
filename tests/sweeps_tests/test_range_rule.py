"""The range-test reading rule on curves whose answer is known."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sweeps.range_test import DivergenceWatch, smooth, suggest


def _lrs(n: int, low: float = 1e-4, high: float = 10.0) -> list[float]:
    return [low * (high / low) ** (k / (n - 1)) for k in range(n)]


def _valley(lrs: list[float], edge: float) -> list[float]:
    """Loss falls as lr rises towards the edge, then explodes past it."""
    losses = []
    for lr in lrs:
        falling = 2.0 / (1.0 + 50.0 * lr)
        blowup = math.exp(8.0 * (lr / edge - 1.0)) if lr > edge else 1.0
        losses.append(falling * blowup)
    return losses


def test_suggestion_sits_below_the_point_where_the_loss_explodes() -> None:
    lrs = _lrs(300)
    result = suggest(lrs, _valley(lrs, edge=1.0))
    assert result.lr_diverged is not None and 1.0 < result.lr_diverged < 2.0
    assert 0.5 <= result.cycle_max_lr <= 1.0
    assert result.cycle_max_lr / 25 <= result.cycle_min_lr <= result.cycle_max_lr / 4
    assert result.lr_steepest < result.lr_min_loss <= result.lr_valley_end
    assert any("diverged at lr" in reason for reason in result.reasons)


def test_a_non_finite_loss_is_the_divergence_point() -> None:
    lrs = _lrs(100)
    losses = [1.0 / (1 + k) for k in range(100)]
    losses[80:] = [math.inf] * 20
    result = suggest(lrs, losses)
    assert result.diverged_step == 80 and result.lr_diverged == lrs[80]
    assert result.lr_valley_end < lrs[80]


def test_a_test_that_never_diverged_says_so_and_caps_at_ten_times_steepest() -> None:
    lrs = _lrs(200)
    losses = [2.0 / (1.0 + 1e3 * lr) for lr in lrs]  # still falling at the top of the range
    result = suggest(lrs, losses)
    assert result.lr_diverged is None
    assert result.cycle_max_lr <= 10 * result.lr_steepest * (1 + 1e-12)
    assert any("never diverged" in reason for reason in result.reasons)


def test_an_online_stop_marks_the_last_step_as_divergence() -> None:
    lrs = _lrs(50)
    losses = [1.0 / (1 + k) for k in range(50)]
    assert suggest(lrs, losses).lr_diverged is None
    assert suggest(lrs, losses, stopped_at_divergence=True).diverged_step == 49


def test_too_few_finite_losses_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 3 finite losses"):
        suggest([1e-3, 1e-2, 1e-1], [1.0, math.nan, 1.0])
    with pytest.raises(ValueError, match="differ in length"):
        suggest([1e-3], [1.0, 2.0])


def test_smoothing_is_centred_and_on_the_log() -> None:
    values = [math.exp(v) for v in smooth([1.0, 1.0, 100.0, 1.0, 1.0], 3)]
    assert values[0] == pytest.approx(1.0)
    assert values[1] == pytest.approx(100 ** (1 / 3))
    assert values[2] == pytest.approx(100 ** (1 / 3))


def test_divergence_watch_stops_on_a_fourfold_rise_or_a_nan() -> None:
    watch = DivergenceWatch()
    assert not any(watch.update(v) for v in [4.0, 3.0, 2.0, 1.0, 1.0])
    assert any(watch.update(v) for v in [2.0, 4.0, 8.0, 16.0, 32.0])
    assert DivergenceWatch().update(math.nan)


@given(
    st.lists(st.floats(min_value=1e-6, max_value=1e6), min_size=3, max_size=120),
)
def test_any_positive_curve_gives_an_ordered_suggestion(losses: list[float]) -> None:
    lrs = _lrs(len(losses))
    result = suggest(lrs, losses)
    assert 0 < result.cycle_min_lr < result.cycle_max_lr
    assert result.cycle_max_lr <= result.lr_valley_end
