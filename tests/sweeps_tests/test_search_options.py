"""``search.tpe`` and ``search.hyperband``: the recipe's sampler and pruner, and the units they use.

A trial reports its n-th evaluation as Optuna step n (so Hyperband's rungs are evaluations,
whatever the evaluation interval), and every trial records the updates it ran, however it
ended: what ``benchmarks/bench_search.py`` counts as compute.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
import pytest
import torch

from sweeps.config import SweepConfig
from sweeps.runner import settings_of, workload_factory
from sweeps.space import SearchSpace, make_pruner, make_sampler
from sweeps.trials import TrialDiverged, TrialObjective

EPOCHS = 6


def _config(search: dict[str, Any]) -> SweepConfig:
    return SweepConfig.model_validate(
        {
            "name": "options",
            "workload": {"builtin": "digits", "batch_size": 128, "epochs": EPOCHS, "seed": 0},
            "search": {
                "seed": 0,
                "space": {
                    "cycle_max_lr": {"low": 1e-3, "high": 30.0, "log": True},
                    "cycle_min_lr": {"low": 1e-4, "high": 1e-2, "log": True},
                    "cycle_first_step_size": {"low": 5, "high": 40},
                },
                **search,
            },
        }
    )


def _sweep(config: SweepConfig, trials: int) -> tuple[optuna.Study, int]:
    space = SearchSpace(config)
    study = optuna.create_study(
        direction="maximize", sampler=make_sampler(config, space), pruner=make_pruner(config)
    )
    factory = workload_factory(config, torch.device("cpu"))
    objective = TrialObjective(
        suggest=space.suggest, get_runner=factory, settings=settings_of(config)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", optuna.exceptions.ExperimentalWarning)
        study.optimize(objective, n_trials=trials, catch=(TrialDiverged,))
    return study, factory().planned_steps(1)


def test_hyperband_prunes_at_evaluation_counts_and_every_trial_records_its_updates() -> None:
    config = _config(
        {
            "sampler": "tpe",
            "tpe": {"multivariate": True, "group": True, "n_startup_trials": 3},
            "pruner": "hyperband",
            "hyperband": {"min_evaluations": 1, "reduction_factor": 2},
        }
    )
    study, per_epoch = _sweep(config, 14)
    states = {t.state for t in study.trials}
    assert optuna.trial.TrialState.PRUNED in states, states
    for trial in study.trials:
        steps = trial.user_attrs["steps"]
        if trial.state == optuna.trial.TrialState.FAIL:
            assert 0 < steps <= EPOCHS * per_epoch  # diverged: stopped where it was caught
            continue
        reported = sorted(trial.intermediate_values)
        assert reported == list(range(1, len(reported) + 1)), reported  # evaluation counts
        assert steps == len(reported) * per_epoch, (trial.state, steps, reported)
        if trial.state == optuna.trial.TrialState.PRUNED:
            assert len(reported) < EPOCHS
        else:
            assert len(reported) == EPOCHS


def test_tpe_options_reach_the_sampler_and_its_startup_trials_are_random() -> None:
    """With 2 start-up trials TPE models from trial 2 on; with 20 it is still drawing at random."""
    modelled = _config({"sampler": "tpe", "tpe": {"n_startup_trials": 2}, "pruner": "none"})
    random_draws = _config({"sampler": "tpe", "tpe": {"n_startup_trials": 20}, "pruner": "none"})

    def params(config: SweepConfig) -> list[dict[str, Any]]:
        space = SearchSpace(config)
        study = optuna.create_study(direction="maximize", sampler=make_sampler(config, space))
        for number in range(5):
            trial = study.ask()
            space.suggest(trial)
            study.tell(trial, float(number))  # later trials scored higher
        return [t.params for t in study.trials]

    assert params(random_draws)[:2] == params(modelled)[:2]  # the same start-up draws
    assert params(random_draws)[2:] != params(modelled)[2:]


@pytest.mark.parametrize("pruner", ["median", "none"])
def test_without_hyperband_options_the_pruner_is_as_before(pruner: str) -> None:
    kind = {"median": optuna.pruners.MedianPruner, "none": optuna.pruners.NopPruner}[pruner]
    assert isinstance(make_pruner(_config({"pruner": pruner})), kind)


def test_options_of_a_sampler_or_pruner_not_chosen_are_kept_unused() -> None:
    """Switching to random search for a baseline needs no edit of the recipe's sections."""
    config = _config(
        {
            "sampler": "random",
            "tpe": {"multivariate": True},
            "pruner": "median",
            "hyperband": {"reduction_factor": 2},
        }
    )
    assert config.search.tpe is not None and config.search.hyperband is not None
    assert isinstance(make_pruner(config), optuna.pruners.MedianPruner)
    space = SearchSpace(config)
    drawn = optuna.create_study(sampler=make_sampler(config, space))
    plain = optuna.create_study(sampler=make_sampler(_config({"sampler": "random"}), space))
    for study in (drawn, plain):
        space.suggest(study.ask())
    assert drawn.trials[0].params == plain.trials[0].params
