"""Read an LR range test: (lr, loss) per step to suggested ``cycle_min_lr`` / ``cycle_max_lr``.

Pure Python, no torch, so the rule can be tested on any curve. The rule, and why
(docs/range_test.md shows it on a real run):

1. **Smooth** the loss: a centred moving average of ``log(loss)`` over about 5% of the steps
   (at least 3). Centred, so the curve is not shifted towards higher lr the way a trailing
   average would shift it; on the log, so one exploding batch does not hide the rest.
2. **Divergence**: the first step where the smoothed loss is ``divergence_factor`` (4x) above
   its lowest value so far, or the first non-finite loss. Training is clearly unstable there.
3. **Lowest loss** before that, and the **valley end**: the highest lr before divergence whose
   smoothed loss is still within 20% of the lowest. On a curve that bottoms out on a flat floor
   (a model that fits early), the valley end is where the floor ends, not a noise-chosen point
   on it.
4. ``cycle_max_lr`` = valley end / 1.6. An unstable direction needs a few steps to grow before
   the loss shows it, so the loss keeps looking fine somewhat past the real stability edge; on
   least squares with a known edge, a 300-step exponential test put the valley end at 0.8x to
   1.3x the edge (more with coarser sweeps). Dividing by 1.6 keeps the suggestion at or below
   the edge there, and the sweep's ``auto`` range reaches above it.
5. ``cycle_min_lr`` = the lr of steepest descent (the most negative slope of the smoothed
   log-loss against log lr, up to the lowest loss): where training already makes its fastest
   progress. It is kept between 1/25 and 1/4 of ``cycle_max_lr``: 1-Cycle wants a real swing
   (fastai starts its one-cycle at max/25; Smith's cyclical runs used ratios of 3 to 4).
6. A test that never diverged saw no edge (the loss may just have gone to zero on a model that
   fits its data inside the test): ``cycle_max_lr`` is then also capped at 10x the steepest
   descent, and the reasons say to raise ``--max-lr``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

DIVERGENCE_FACTOR = 4.0
VALLEY_TOLERANCE = 1.2
MAX_LR_MARGIN = 1.6
MIN_RATIO_LOW = 1 / 25
MIN_RATIO_HIGH = 1 / 4
WINDOW_FRACTION = 0.05
UNDIVERGED_CAP = 10.0


@dataclass(frozen=True)
class RangeSuggestion:
    """What a range test suggests, with the points it was read from."""

    cycle_min_lr: float
    cycle_max_lr: float
    lr_steepest: float
    lr_min_loss: float
    lr_valley_end: float
    lr_diverged: float | None
    diverged_step: int | None
    steps: int
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (``cycle_min_lr`` and ``cycle_max_lr`` first)."""
        return asdict(self)


def smooth(losses: Sequence[float], window: int) -> list[float]:
    """Centred moving average of ``log(loss)`` (the window shrinks at the ends).

    Example:
        >>> [round(math.exp(v), 3) for v in smooth([1.0, 4.0, 1.0], 3)]
        [2.0, 1.587, 2.0]
    """
    logs = [math.log(max(value, 1e-300)) for value in losses]
    prefix = [0.0]
    for value in logs:
        prefix.append(prefix[-1] + value)
    half = window // 2
    out = []
    for i in range(len(logs)):
        low, high = max(0, i - half), min(len(logs), i + half + 1)
        out.append((prefix[high] - prefix[low]) / (high - low))
    return out


def window_for(steps: int) -> int:
    """Smoothing window: about 5% of the steps, odd, at least 3."""
    return max(3, int(WINDOW_FRACTION * steps) | 1)


def divergence_index(smoothed: Sequence[float], factor: float) -> int | None:
    """First index whose smoothed log-loss is ``log(factor)`` above the running minimum."""
    lowest = math.inf
    threshold = math.log(factor)
    for i, value in enumerate(smoothed):
        lowest = min(lowest, value)
        if value > lowest + threshold:
            return i
    return None


def suggest(
    lrs: Sequence[float],
    losses: Sequence[float],
    divergence_factor: float = DIVERGENCE_FACTOR,
    stopped_at_divergence: bool = False,
) -> RangeSuggestion:
    """Apply the module's rule to a range test's per-step lr and loss.

    ``stopped_at_divergence``: the loop's online rule (:class:`DivergenceWatch`) ended the test;
    if the centred smoothing does not place the divergence earlier, the last step is it.
    """
    if len(lrs) != len(losses):
        raise ValueError(f"`lrs` and `losses` differ in length: {len(lrs)} != {len(losses)}")
    finite_end = next((i for i, v in enumerate(losses) if not math.isfinite(v)), len(losses))
    if finite_end < 3:
        raise ValueError(
            f"a range test needs at least 3 finite losses to read, got {finite_end}; "
            "lower --min-lr or check the workload"
        )
    if any(not (lr > 0 and math.isfinite(lr)) for lr in lrs[:finite_end]):
        raise ValueError("every lr of a range test must be positive and finite")
    smoothed = smooth(losses[:finite_end], window_for(len(losses)))
    diverged = divergence_index(smoothed, divergence_factor)
    if diverged is None and finite_end < len(losses):
        diverged = finite_end
    if diverged is None and stopped_at_divergence:
        diverged = len(smoothed) - 1
    end = diverged if diverged is not None else len(smoothed)
    end = max(end, 1)
    best = min(range(end), key=lambda i: smoothed[i])
    floor = smoothed[best] + math.log(VALLEY_TOLERANCE)
    valley_end = max(i for i in range(end) if smoothed[i] <= floor)
    steepest = _steepest(lrs, smoothed, best, window_for(len(losses)))
    max_lr = lrs[valley_end] / MAX_LR_MARGIN
    if diverged is None:
        # No edge was seen: the loss may simply have gone to zero (a model that fits its data
        # inside the test). Trust the steepest descent more than the top of the tested range.
        max_lr = min(max_lr, UNDIVERGED_CAP * lrs[steepest])
    min_lr = min(max(lrs[steepest], max_lr * MIN_RATIO_LOW), max_lr * MIN_RATIO_HIGH)
    reasons = [
        f"steepest descent of the smoothed loss at lr {lrs[steepest]:.3g}",
        f"lowest smoothed loss at lr {lrs[best]:.3g}; within 20% of it up to lr "
        f"{lrs[valley_end]:.3g} (valley end)",
    ]
    if diverged is not None:
        reasons.append(f"diverged at lr {lrs[diverged]:.3g} (step {diverged})")
    else:
        reasons.append(
            "never diverged: no stability edge was seen, so cycle_max_lr is also capped at "
            f"{UNDIVERGED_CAP:g}x the steepest descent; raise --max-lr to find the edge"
        )
    reasons.append(
        f"cycle_max_lr = valley end / {MAX_LR_MARGIN} = {max_lr:.3g} (margin for the lag with "
        "which instability shows in the loss)"
    )
    reasons.append(f"cycle_min_lr = steepest descent, kept within [max/25, max/4] = {min_lr:.3g}")
    return RangeSuggestion(
        cycle_min_lr=min_lr,
        cycle_max_lr=max_lr,
        lr_steepest=lrs[steepest],
        lr_min_loss=lrs[best],
        lr_valley_end=lrs[valley_end],
        lr_diverged=lrs[diverged] if diverged is not None else None,
        diverged_step=diverged,
        steps=len(losses),
        reasons=reasons,
    )


def _steepest(lrs: Sequence[float], smoothed: Sequence[float], best: int, window: int) -> int:
    """Index of the most negative slope d(smoothed)/d(log lr) up to ``best``."""
    half = max(1, window // 2)
    found, slope = 0, math.inf
    for i in range(best + 1):
        low, high = max(0, i - half), min(best, i + half)
        span = math.log(lrs[high]) - math.log(lrs[low])
        if high <= low or span <= 0:
            continue
        value = (smoothed[high] - smoothed[low]) / span
        if value < slope:
            found, slope = i, value
    return found


class DivergenceWatch:
    """Online stop rule for the training loop: a bias-corrected running average of the loss.

    ``update`` returns True once the average is ``factor`` times its lowest value (or a loss is
    not finite): the curve has clearly turned, and more steps would only burn time.
    """

    def __init__(self, factor: float = DIVERGENCE_FACTOR, beta: float = 0.9) -> None:
        self.factor, self.beta = factor, beta
        self._average, self._count, self._lowest = 0.0, 0, math.inf

    def update(self, loss: float) -> bool:
        """Feed one step's loss; True means stop."""
        if not math.isfinite(loss):
            return True
        self._count += 1
        self._average = self.beta * self._average + (1 - self.beta) * loss
        value = self._average / (1 - self.beta**self._count)
        self._lowest = min(self._lowest, value)
        return value > self.factor * self._lowest
