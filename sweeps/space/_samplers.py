"""The sweep file's sampler and pruner, as Optuna objects, with each trial's randomness its own.

Every worker of a sweep, and every resume of it, builds its sampler from the same sweep file.
Seeded once, identical samplers draw identical points: N workers trained every configuration N
times, and a resumed sweep began its search again. So the randomness of each ask comes from
the sweep seed *and the number of the trial it creates* (unique under the store's lock):
random, TPE and CMA-ES get a fresh sampler seeded by :func:`ask_seed` for each trial; grid and
QMC lay one sequence down by the sweep seed and trial ``n`` takes its ``n``-th point. What that
guarantees, sampler by sampler, is in ``docs/samplers.md``.

Kept apart from the runner (and free of torch and MLflow) so that the processes that sample a
fused batch in parallel (:mod:`sweeps.space._parallel`) build the same sampler cheaply.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState
from typing_extensions import override

from sweeps.config import HyperbandOptions, TpeOptions
from sweeps.errors import UsageError
from sweeps.space._sobol import SobolSampler

if TYPE_CHECKING:
    from sweeps.config import SweepConfig
    from sweeps.space._search_space import SearchSpace

__all__ = ["PerTrialSeeds", "ask_seed", "make_pruner", "make_sampler"]

SamplerBuilder = Callable[[int | None], optuna.samplers.BaseSampler]


def ask_seed(seed: int | None, number: int) -> int | None:
    """The seed of the sampler that asks trial ``number`` of a sweep seeded ``seed``.

    Mixed by NumPy's ``SeedSequence``, so neighbouring numbers give unrelated streams.

    Example:
        >>> ask_seed(0, 3) == ask_seed(0, 3) != ask_seed(0, 4)
        True
        >>> ask_seed(None, 3) is None
        True
    """
    if seed is None:
        return None
    return int(np.random.SeedSequence((seed % 2**64, number)).generate_state(1)[0])


class PerTrialSeeds(optuna.samplers.BaseSampler):
    """A fresh sampler for each trial, seeded by the sweep seed and the trial's number.

    ``offset`` is added to the numbers the asking study gives its trials, for studies that hold
    only part of the sweep's history (a fused batch's sampling chunks). Without a seed there is
    nothing to repeat: one sampler, seeded from the system's entropy, asks every trial.
    """

    def __init__(self, build: SamplerBuilder, seed: int | None, offset: int = 0) -> None:
        self._build, self._seed, self._offset = build, seed, offset
        self._number: int | None = None
        self._sampler = build(None) if seed is None else None

    def _for(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        if self._seed is None and self._sampler is not None:
            return self._sampler
        number = trial.number + self._offset
        if self._sampler is None or self._number != number:
            self._sampler, self._number = self._build(ask_seed(self._seed, number)), number
        return self._sampler

    @override
    def reseed_rng(self) -> None:
        """Nothing to reseed: each trial's sampler is seeded from its number."""

    @override
    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    @override
    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    @override
    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    @override
    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    @override
    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._for(trial).after_trial(study, trial, state, values)


class _Grid(optuna.samplers.GridSampler):
    """Optuna's grid without its stop, which raises outside ``optimize``.

    A sweep tells outside ``optimize``, and ends at ``n_trials`` (at most the grid's size).
    """

    @override
    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        return None


def make_sampler(
    config: SweepConfig, space: SearchSpace, offset: int = 0
) -> optuna.samplers.BaseSampler:
    """The sampler the sweep file names, its randomness drawn per trial (see the module).

    ``offset``: what to add to the asking study's trial numbers to get the sweep's numbers
    (non-zero only in a study that holds part of the history).
    """
    seed = config.search.seed
    kind = config.search.sampler
    if kind == "tpe":
        tpe = config.search.tpe or TpeOptions()
        return PerTrialSeeds(lambda s: _tpe(tpe, s), seed, offset)
    if kind == "random":
        return PerTrialSeeds(lambda s: optuna.samplers.RandomSampler(seed=s), seed, offset)
    if kind == "grid":
        if offset:
            raise ValueError(f"`offset`: the grid sampler numbers its own trials, got {offset}")
        # Optuna's grid gives trial n the n-th point of the grid shuffled by the seed.
        return _Grid(space.grid, seed=seed)
    if kind == "qmc":
        independent = PerTrialSeeds(lambda s: optuna.samplers.RandomSampler(seed=s), seed, offset)
        return SobolSampler(space.distributions(), seed, independent, offset)
    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise UsageError(
            "search.sampler: cmaes needs the `cmaes` package: pip install cmaes"
        ) from None
    return PerTrialSeeds(
        lambda s: optuna.samplers.CmaEsSampler(seed=s, warn_independent_sampling=False),
        seed,
        offset,
    )


def _tpe(options: TpeOptions, seed: int | None) -> optuna.samplers.TPESampler:
    """Optuna's TPE with the sweep's options (its experimental-feature warnings kept quiet)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=options.multivariate,
            group=options.group,
            n_startup_trials=options.n_startup_trials,
            constant_liar=options.constant_liar,
        )


def make_pruner(config: SweepConfig) -> optuna.pruners.BasePruner:
    """Median (once 3 trials have finished), Hyperband over evaluations, or none.

    A trial reports its n-th evaluation as Optuna step n (see ``docs/search_quality.md``), so
    Hyperband's rungs are evaluation counts whatever the evaluation interval.
    """
    kind = config.search.pruner
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if kind == "hyperband":
        options = config.search.hyperband or HyperbandOptions()
        return optuna.pruners.HyperbandPruner(
            min_resource=options.min_evaluations, reduction_factor=options.reduction_factor
        )
    return optuna.pruners.NopPruner()
