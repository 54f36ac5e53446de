"""A fused batch asked in parallel chunks: the same trials on any number of processes."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from sweeps.batch_sampling import CHUNK, BatchSampling, chunk_sizes, sample_chunk
from sweeps.config import SweepConfig, parse_config
from sweeps.samplers import make_sampler
from sweeps.search_space import SearchSpace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


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


def test_the_first_chunk_is_the_serial_ask_and_process_count_changes_nothing() -> None:
    config = _config()
    space = SearchSpace(config)
    history = _history(config, space, 40)
    serial = optuna.create_study(direction="maximize", sampler=make_sampler(config, space, 7))
    serial.add_trials(history)
    alone = []
    for _ in range(CHUNK):
        trial = serial.ask()
        space.suggest(trial)
        alone.append(trial)
    count = 2 * CHUNK + 3
    results = []
    for processes in (1, 2):
        sampling = BatchSampling(config, space, processes=processes)
        try:
            assert sampling.chunked(count)
            results.append(
                sampling.sample(history, optuna.study.StudyDirection.MAXIMIZE, 7, count)
            )
        finally:
            sampling.close()
    assert _key(results[0]) == _key(results[1])
    found = results[0]
    assert len(found) == count
    assert _key(found[:CHUNK]) == _key(alone)
    assert len(set(_key(found))) == count  # chunks are seeded apart
    assert found[0].schedule == space.suggest(optuna.trial.FixedTrial(found[0].params))


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


def test_sequence_samplers_are_not_chunked() -> None:
    config = _config("qmc")  # a QMC sequence must not restart in every chunk
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
