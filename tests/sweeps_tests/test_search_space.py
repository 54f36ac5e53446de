"""Every configuration the search space can produce is a valid OneCycle schedule."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedulers.schedules import OneCycleSchedule
from sweeps.errors import UsageError
from sweeps.runner import parse_config
from sweeps.space import SearchSpace, fraction_name

optuna.logging.set_verbosity(optuna.logging.WARNING)


@st.composite
def spaces(draw: st.DrawFn) -> dict[str, Any]:
    low_min = draw(st.floats(1e-6, 1e-2))
    high_min = low_min * draw(st.floats(1.0, 100.0))
    first = draw(st.integers(2, 100))
    space: dict[str, Any] = {
        "cycle_min_lr": {"low": low_min, "high": low_min * draw(st.floats(1.0, 1e4)), "log": True},
        "cycle_max_lr": {
            "low": high_min,
            "high": high_min * draw(st.floats(1.0, 1e3)),
            "log": True,
        },
        "cycle_first_step_size": {"low": first, "high": first + draw(st.integers(0, 200))},
        "cycle_first_stair_count": {"choices": sorted({0, draw(st.integers(0, first))})},
        "decay_lr_rate": {"low": 0.0, "high": draw(st.floats(0.0, 5.0))},
    }
    if draw(st.booleans()):
        mom_low = draw(st.floats(0.0, 0.9))
        space["cycle_min_mom"] = {"low": mom_low, "high": draw(st.floats(mom_low, 0.98))}
        space["cycle_max_mom"] = {"low": draw(st.floats(mom_low, 0.98)), "high": 0.99}
    return space


def build(
    space: dict[str, Any], sampler: str = "random", n_trials: int = 20, **extra: Any
) -> SearchSpace:
    data = {
        "name": "t",
        "workload": {"builtin": "digits"},
        "search": {"sampler": sampler, "space": space, "n_trials": n_trials},
        **extra,
    }
    return SearchSpace(parse_config(data))


@settings(max_examples=40, deadline=None)
@given(spaces(), st.integers(0, 2**31 - 1))
def test_every_sampled_configuration_is_valid(space: dict[str, Any], seed: int) -> None:
    search = build(space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(25):
        trial = study.ask()
        params = search.suggest(trial)
        OneCycleSchedule(**params)  # raises if invalid
        assert params["cycle_min_lr"] <= params["cycle_max_lr"]
        low = space["cycle_min_lr"]
        assert low["low"] * (1 - 1e-9) <= params["cycle_min_lr"] <= low["high"] * (1 + 1e-9)
        study.tell(trial, 0.0)


def test_pair_fraction_reaches_both_ends() -> None:
    search = build(
        {
            "cycle_min_lr": {"low": 1e-4, "high": 1e-2, "log": True},
            "cycle_max_lr": {"low": 1e-3, "high": 1.0, "log": True},
        }
    )
    for fraction, expected in ((0.0, 1e-4), (1.0, 1e-2)):
        trial = optuna.trial.FixedTrial(
            {"cycle_max_lr": 0.5, fraction_name("cycle_min_lr"): fraction}
        )
        assert math.isclose(search.suggest(trial)["cycle_min_lr"], expected, rel_tol=1e-9)
    trial = optuna.trial.FixedTrial({"cycle_max_lr": 2e-3, fraction_name("cycle_min_lr"): 1.0})
    assert math.isclose(search.suggest(trial)["cycle_min_lr"], 2e-3, rel_tol=1e-9)


def test_enqueued_config_is_reproduced() -> None:
    space = {
        "cycle_min_lr": {"low": 1e-4, "high": 1e-2, "log": True},
        "cycle_max_lr": {"low": 1e-3, "high": 1.0, "log": True},
        "cycle_first_step_size": {"low": 20, "high": 200},
    }
    wanted = {"cycle_min_lr": 1e-3, "cycle_max_lr": 1e-2, "cycle_first_step_size": 100}
    search = build(space, enqueue=[wanted])
    study = optuna.create_study()
    study.enqueue_trial(search.enqueued[0])
    params = search.suggest(study.ask())
    for key, value in wanted.items():
        assert math.isclose(params[key], value, rel_tol=1e-9)


def test_one_fixed_end_cuts_the_other_range() -> None:
    search = build(
        {"cycle_min_lr": {"low": 1e-4, "high": 1.0, "log": True}}, scheduler={"cycle_max_lr": 0.01}
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(50):
        assert search.suggest(study.ask())["cycle_min_lr"] <= 0.01


def test_grid_sampler_enumerates_choices_and_stepped_ranges() -> None:
    search = build(
        {
            "cycle_max_lr": {"choices": [0.01, 0.1]},
            "cycle_first_step_size": {"low": 20, "high": 40, "step": 10},
        },
        sampler="grid",
        n_trials=6,
        scheduler={"cycle_min_lr": 0.001},
    )
    assert search.grid == {"cycle_max_lr": [0.01, 0.1], "cycle_first_step_size": [20, 30, 40]}
    with pytest.raises(UsageError, match="the grid sampler needs `step`"):
        build(
            {"cycle_max_lr": {"low": 0.01, "high": 0.1}},
            sampler="grid",
            scheduler={"cycle_min_lr": 0.001},
        )


def test_a_grid_sweep_asking_for_more_trials_than_points_is_refused() -> None:
    space = {"cycle_max_lr": {"choices": [0.01, 0.1]}}
    with pytest.raises(
        UsageError, match=r"search\.n_trials: the grid has 2 points, so at most 2 trials .* got 3"
    ):
        build(space, sampler="grid", n_trials=3, scheduler={"cycle_min_lr": 0.001})
    extra = {"scheduler": {"cycle_min_lr": 0.001}, "enqueue": [{"cycle_max_lr": 0.01}]}
    assert build(space, sampler="grid", n_trials=3, **extra).grid  # enqueued trials add to it


def test_widest_distributions_cover_every_trial_of_a_cut_pair() -> None:
    search = build(
        {
            "cycle_min_lr": {"low": 1e-4, "high": 1.0, "log": True},
            "cycle_max_lr": {"choices": [0.01, 0.1]},
        }
    )
    found = search.distributions()
    assert found["cycle_min_lr"] == optuna.distributions.FloatDistribution(1e-4, 0.1, log=True)
    assert found["cycle_max_lr"] == optuna.distributions.CategoricalDistribution([0.01, 0.1])
