"""Sampling a fused batch's trials in parallel, in chunks of a fixed size.

Once the store writes are batched (``storage.bulk_trials``), the sampler itself is what a big
fused batch waits for: Optuna's TPE costs about 10 ms an ask in memory at a few hundred trials
of history, so 512 asks are five seconds, next to well under a second of GPU training for
small models. The asks of one batch are split into chunks of :data:`CHUNK`; each chunk is
asked in a process of its own from the same history, as if by one of several workers sharing
the study (TPE's constant liar spreads a chunk's trials apart, as it does for a worker's running
trials). Each ask is seeded by the number its trial gets in the sweep
(:mod:`sweeps.space._samplers`), and the chunking depends only on K, never on how many processes
there are, so a seeded sweep asks the same trials on any machine.

A batch of one chunk is asked in the calling process exactly as before. Only samplers whose
asks are independent of each other given the history are chunked (TPE, random, and QMC, whose
trial ``n`` is the sequence's point ``n``); grid and CMA-ES keep one sequence for the batch.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import pickle
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.space._samplers import make_sampler

if TYPE_CHECKING:
    from sweeps.config import SweepConfig
    from sweeps.space._search_space import SearchSpace

#: Asks per chunk: a batch of up to this many is asked in one sequence.
CHUNK = 32
#: Samplers whose chunks may be asked apart.
CHUNKABLE = ("tpe", "random", "qmc")


@dataclass(frozen=True)
class Sampled:
    """One asked trial: its params, their distributions, and the schedule they make."""

    params: dict[str, Any]
    distributions: dict[str, optuna.distributions.BaseDistribution]
    schedule: dict[str, Any]


def chunk_sizes(count: int) -> list[int]:
    """How ``count`` asks split into chunks: full chunks, then the rest."""
    sizes = [CHUNK] * (count // CHUNK)
    if count % CHUNK:
        sizes.append(count % CHUNK)
    return sizes


def _slim(history: Sequence[FrozenTrial]) -> bytes:
    """The history as the samplers need it, pickled once for every chunk.

    Failed trials are left out (no sampler here learns from them) and so are user
    attributes (the schedule, run ids), which samplers never read.
    """
    kept = [
        _without_user_attrs(trial)
        for trial in history
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    ]
    return pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL)


def _without_user_attrs(trial: FrozenTrial) -> FrozenTrial:
    slim = copy.copy(trial)
    slim.user_attrs = {}
    return slim


def sample_chunk(
    config: SweepConfig,
    space: SearchSpace,
    history: bytes,
    direction: optuna.study.StudyDirection,
    first_number: int,
    count: int,
) -> list[Sampled]:
    """Ask ``count`` trials of a fresh in-memory study holding ``history`` (in a pool process).

    ``first_number`` is the sweep's number for the chunk's first trial: the in-memory study
    numbers its trials after the (slimmed) history, and the sampler's seeds follow the sweep's.
    """
    trials = pickle.loads(history)
    sampler = make_sampler(config, space, offset=first_number - len(trials))
    study = optuna.create_study(direction=direction, sampler=sampler)
    study.add_trials(trials)
    asked = []
    for _ in range(count):
        trial = study.ask()
        schedule = space.suggest(trial)
        asked.append(Sampled(dict(trial.params), dict(trial.distributions), schedule))
    return asked


def _quiet() -> None:
    """A pool process logs no "new study created" line per chunk."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)


class BatchSampling:
    """Asks a batch's chunks in a pool of processes, started on first need and kept."""

    def __init__(self, config: SweepConfig, space: SearchSpace, processes: int = 0) -> None:
        self.config, self.space = config, space
        self.processes = processes or max(1, os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    def chunked(self, count: int) -> bool:
        """Whether a batch of ``count`` asks is sampled in chunks."""
        return self.config.search.sampler in CHUNKABLE and len(chunk_sizes(count)) > 1

    def sample(
        self,
        history: Sequence[FrozenTrial],
        direction: optuna.study.StudyDirection,
        first_number: int,
        count: int,
    ) -> list[Sampled]:
        """Ask ``count`` trials numbered from ``first_number`` on, chunk by chunk, in order."""
        sizes = chunk_sizes(count)
        starts = [first_number + sum(sizes[:index]) for index in range(len(sizes))]
        payload = _slim(history)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=min(self.processes, 64),
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_quiet,
            )
        futures = [
            self._pool.submit(
                sample_chunk,
                self.config,
                self.space,
                payload,
                direction,
                start,
                size,
            )
            for start, size in zip(starts, sizes, strict=True)
        ]
        return [asked for future in futures for asked in future.result()]

    def close(self) -> None:
        """Stop the pool's processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
