"""How the sampler and the pruner are tuned: ``search.tpe`` and ``search.hyperband``.

Optuna's defaults are kept when a section is absent, so an existing sweep file searches as it
did; ``onecycle init`` writes the settings ``benchmarks/bench_search.py`` measured best
(``docs/search_quality.md``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool

from sweeps.config._strict import Strict


class TpeOptions(Strict):
    """Optuna's ``TPESampler`` arguments a sweep may set."""

    #: Model the parameters jointly: lr bounds, step size and momentum interact.
    multivariate: StrictBool = False
    #: Split the joint model by which parameters a trial has (needs ``multivariate``).
    group: StrictBool = False
    #: Random trials before TPE models the results.
    n_startup_trials: Annotated[int, Field(ge=0)] = 10
    #: Treat running trials as bad results so parallel workers do not all ask the same point.
    constant_liar: StrictBool = False


class HyperbandOptions(Strict):
    """Optuna's ``HyperbandPruner`` over evaluation points (a trial's n-th report is step n)."""

    #: Evaluations a trial gets before its first rung.
    min_evaluations: Annotated[int, Field(ge=1)] = 1
    #: Each rung keeps one in this many trials.
    reduction_factor: Annotated[int, Field(ge=2)] = 3
