"""Quasi-random search where trial ``n`` takes point ``n`` of one scrambled Sobol sequence.

Optuna's ``QMCSampler`` counts its points in a study attribute and learns the space from the
first trial, which is sampled at random; which trials are random, and which point a trial
gets, then depend on timing between workers, and a fused batch's in-memory study starts the
count again. Here the space is the sweep's whole space, known before any trial, and the point
is the trial's number: the same trials whatever the number of workers, the resumes or the
batching.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState
from typing_extensions import override

__all__ = ["SobolSampler", "value_at"]


def value_at(unit: float, distribution: BaseDistribution) -> Any:
    """The value at ``unit`` (in [0, 1)) of the way through ``distribution``.

    Example:
        >>> value_at(0.5, FloatDistribution(1e-3, 1e-1, log=True))
        0.01
        >>> value_at(0.99, IntDistribution(1, 4))
        4
    """
    if isinstance(distribution, CategoricalDistribution):
        choices = distribution.choices
        return choices[min(int(unit * len(choices)), len(choices) - 1)]
    if isinstance(distribution, IntDistribution):
        return _int_at(unit, distribution)
    if isinstance(distribution, FloatDistribution):
        return _float_at(unit, distribution)
    raise TypeError(f"`distribution`: not a distribution the sweeps sample, got {distribution!r}")


def _int_at(unit: float, distribution: IntDistribution) -> int:
    low, high, step = distribution.low, distribution.high, distribution.step
    if distribution.log:  # each integer gets the log-width of its rounding interval
        lo, hi = math.log(low - 0.5), math.log(high + 0.5)
        return int(min(max(round(math.exp(lo + unit * (hi - lo))), low), high))
    count = (high - low) // step + 1
    return low + min(int(unit * count), count - 1) * step


def _float_at(unit: float, distribution: FloatDistribution) -> float:
    low, high = distribution.low, distribution.high
    if distribution.log:
        value = math.exp(math.log(low) + unit * (math.log(high) - math.log(low)))
        return float(f"{min(max(value, low), high):.12g}")
    if distribution.step is not None:
        count = round((high - low) / distribution.step) + 1
        return float(min(low + min(int(unit * count), count - 1) * distribution.step, high))
    return low + unit * (high - low)


class SobolSampler(optuna.samplers.BaseSampler):
    """Trial ``n`` (its number plus ``offset``) takes point ``n`` of a Sobol sequence.

    The sequence is scrambled with ``seed`` (with none, a seed drawn once per process). A
    parameter whose distribution in a trial is narrower than ``space`` (a range cut by the
    other end of its pair) and misses the point is drawn by ``independent`` instead.
    """

    def __init__(
        self,
        space: Mapping[str, BaseDistribution],
        seed: int | None,
        independent: optuna.samplers.BaseSampler,
        offset: int = 0,
    ) -> None:
        self._space = dict(sorted(space.items()))
        self._seed = int.from_bytes(os.urandom(4), "big") if seed is None else seed % 2**32
        self._independent, self._offset = independent, offset

    def point(self, number: int) -> list[float]:
        """Point ``number`` of the sequence, one coordinate in [0, 1) a parameter."""
        from scipy.stats import qmc  # slow to import; only QMC sweeps need it

        engine = qmc.Sobol(max(len(self._space), 1), scramble=True, seed=self._seed)
        if number > 0:
            engine.fast_forward(number)
        return [float(x) for x in engine.random(1)[0]]

    @override
    def reseed_rng(self) -> None:
        self._independent.reseed_rng()

    @override
    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self._space)

    @override
    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        point = self.point(trial.number + self._offset)
        return {
            name: value_at(unit, self._space[name])
            for name, unit in zip(self._space, point, strict=True)
            if name in search_space
        }

    @override
    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    @override
    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._independent.before_trial(study, trial)

    @override
    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._independent.after_trial(study, trial, state, values)
