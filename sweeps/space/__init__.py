"""The search space: a sweep file's space as Optuna distributions, `auto` bounds, samplers.

Every sampled configuration is a valid OneCycle schedule (see ``_search_space``), and each
trial's randomness is its own (see ``_samplers`` and ``docs/samplers.md``).
"""

from __future__ import annotations

from sweeps.space._auto_bounds import momentum_for_test, resolve_auto, with_result
from sweeps.space._built import check_space, search_space
from sweeps.space._parallel import CHUNK, BatchSampling, chunk_sizes, sample_chunk
from sweeps.space._samplers import make_pruner, make_sampler
from sweeps.space._search_space import SearchSpace, fraction_name

__all__ = [
    "CHUNK",
    "BatchSampling",
    "SearchSpace",
    "check_space",
    "chunk_sizes",
    "fraction_name",
    "make_pruner",
    "make_sampler",
    "momentum_for_test",
    "resolve_auto",
    "sample_chunk",
    "search_space",
    "with_result",
]
