"""The sweep file's sampler and pruner, as Optuna objects.

Kept apart from the runner (and free of torch and MLflow) so that the processes that sample a
fused batch in parallel (:mod:`sweeps.batch_sampling`) build the same sampler cheaply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna

from sweeps.errors import UsageError

if TYPE_CHECKING:
    from sweeps.config import SweepConfig
    from sweeps.search_space import SearchSpace

__all__ = ["make_pruner", "make_sampler"]


def make_sampler(
    config: SweepConfig, space: SearchSpace, seed: int | None = None
) -> optuna.samplers.BaseSampler:
    """The sampler the sweep file names, seeded (by ``seed`` when given)."""
    seed = config.search.seed if seed is None else seed
    kind = config.search.sampler
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return optuna.samplers.GridSampler(space.grid, seed=seed)
    if kind == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise UsageError(
            "search.sampler: cmaes needs the `cmaes` package: pip install cmaes"
        ) from None
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


def make_pruner(config: SweepConfig) -> optuna.pruners.BasePruner:
    """Median (after 3 trials and one epoch), Hyperband over updates, or none."""
    kind = config.search.pruner
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()
