"""A fused batch asked in parallel chunks: the same trials on any number of processes."""

from __future__ import annotations

import random
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import FrozenTrial, TrialState

from sweeps.config import SweepConfig
from sweeps.runner import parse_config
from sweeps.space import CHUNK, BatchSampling, SearchSpace, chunk_sizes, make_sampler, sample_chunk
from tests.fixtures import EXAMPLES


def _config(sampler: str = "tpe") -> SweepConfig:
    data: dict[str, Any] = yaml.safe_load((EXAMPLES / "digits.yaml").read_text())
    data["search"]["sampler"] = sampler
    return parse_config(data)


def _history(config: SweepConfig, space: SearchSpace, count: int) -> list[FrozenTrial]:
    """Finished trials with made-up values, asked through the sweep's own space."""
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1)
    )
    rng = random.Random(0)
    for _ in range(count):
        trial = study.ask()
        space.suggest(trial)
        study.tell(trial, rng.random())
    running = study.ask()  # another worker's trial in flight: part of TPE's constant liar
    space.suggest(running)
    return study.get_trials()


def _key(found: list[Any]) -> list[tuple[Any, ...]]:
    return [tuple(sorted(f.params.items())) for f in found]


def test_chunks_depend_on_the_batch_size_only() -> None:
    assert chunk_sizes(CHUNK) == [CHUNK]
    assert chunk_sizes(2 * CHUNK + 5) == [CHUNK, CHUNK, 5]


def _serial(config: SweepConfig, space: SearchSpace, history: list[FrozenTrial], count: int):
    serial = optuna.create_study(direction="maximize", sampler=make_sampler(config, space))
    serial.add_trials(history)
    alone = []
    for _ in range(count):
        trial = serial.ask()
        space.suggest(trial)
        alone.append(trial)
    return alone


def test_the_first_chunk_is_the_serial_ask_and_process_count_changes_nothing() -> None:
    config = _config()
    space = SearchSpace(config)
    history = _history(config, space, 40)
    alone = _serial(config, space, history, CHUNK)
    count = 2 * CHUNK + 3
    results = []
    for processes in (1, 2):
        sampling = BatchSampling(config, space, processes=processes)
        try:
            assert sampling.chunked(count)
            results.append(
                sampling.sample(history, optuna.study.StudyDirection.MAXIMIZE, len(history), count)
            )
        finally:
            sampling.close()
    assert _key(results[0]) == _key(results[1])
    found = results[0]
    assert len(found) == count
    assert _key(found[:CHUNK]) == _key(alone)
    assert len(set(_key(found))) == count  # every ask seeded by its own trial number
    assert found[0].schedule == space.suggest(optuna.trial.FixedTrial(found[0].params))


@pytest.mark.parametrize("sampler", ["random", "qmc"])
def test_chunks_of_samplers_blind_to_the_batch_ask_exactly_the_serial_trials(sampler: str) -> None:
    """Random draws and QMC points depend on the trial's number only, so chunking changes none."""
    config = _config(sampler)
    space = SearchSpace(config)
    history = _history(config, space, 10)
    count = CHUNK + 5
    sampling = BatchSampling(config, space, processes=2)
    try:
        assert sampling.chunked(count)
        found = sampling.sample(history, optuna.study.StudyDirection.MAXIMIZE, len(history), count)
    finally:
        sampling.close()
    assert _key(found) == _key(_serial(config, space, history, count))
    assert len(set(_key(found))) == count


def test_sample_chunk_ignores_user_attrs_and_failed_trials() -> None:
    config = _config()
    space = SearchSpace(config)
    history = _history(config, space, 20)
    noisy = [optuna.trial.create_trial(state=TrialState.FAIL)]
    for trial in history:
        trial.set_user_attr("deepspeed_params", {"big": list(range(100))})
        noisy.append(trial)
    sampling = BatchSampling(config, space, processes=1)
    try:
        with_noise = sampling.sample(noisy, optuna.study.StudyDirection.MAXIMIZE, 3, CHUNK + 1)
        plain = sampling.sample(history, optuna.study.StudyDirection.MAXIMIZE, 3, CHUNK + 1)
    finally:
        sampling.close()
    assert _key(with_noise) == _key(plain)


@pytest.mark.parametrize("sampler", ["grid", "cmaes"])
def test_samplers_with_one_sequence_a_batch_are_not_chunked(sampler: str) -> None:
    data: dict[str, Any] = {
        "name": "seq",
        "workload": {"builtin": "digits"},
        "search": {
            "n_trials": 2,
            "sampler": sampler,
            "space": {"cycle_max_lr": {"choices": [0.01, 0.1]}},
        },
        "scheduler": {"cycle_min_lr": 0.001, "cycle_first_step_size": 10},
    }
    config = parse_config(data)
    assert not BatchSampling(config, SearchSpace(config)).chunked(4 * CHUNK)


def test_a_chunk_runs_in_this_process_too() -> None:
    config = _config("random")
    space = SearchSpace(config)
    import pickle

    found = sample_chunk(
        config,
        space,
        pickle.dumps([]),
        optuna.study.StudyDirection.MAXIMIZE,
        5,
        3,
    )
    assert len(found) == 3 and all(f.schedule for f in found)
