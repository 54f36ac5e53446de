"""The search the project recommends: what ``onecycle init`` writes and the benchmark measures.

One definition, so the default a user gets is the configuration ``benchmarks/bench_search.py``
compared against random search and Optuna's defaults (``docs/search_quality.md``).
"""

from __future__ import annotations

from sweeps.config._schema import AutoRange
from sweeps.config._search_options import HyperbandOptions, TpeOptions

#: A joint model of the parameters after 5 random trials; running trials count as bad results.
RECIPE_TPE = TpeOptions(multivariate=True, group=True, n_startup_trials=5, constant_liar=True)
#: Rungs at 1, 2, 4, 8, ... evaluations, half the trials going on at each.
RECIPE_HYPERBAND = HyperbandOptions(min_evaluations=1, reduction_factor=2)
#: ``cycle_max_lr``: from a third of the range test's suggestion to twice it (the suggestion
#: sits near the stability edge; a short run's best peak was often below it).
RECIPE_MAX_LR = AutoRange(auto=True, below=3.0, above=2.0)
#: ``cycle_min_lr``: half to twice the suggestion.
RECIPE_MIN_LR = AutoRange(auto=True)
