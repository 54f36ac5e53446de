"""Per-trial overhead of the sweep machinery as a study grows, on SQLite and PostgreSQL.

A sweep of ``--trials`` trials (default 2000) whose objective does no training
(``benchmarks/trivial_training.py``) runs through the real worker loop: the store-wide lock,
``ask``, heartbeats, the MLflow child run (create, params, metrics through the writer process,
final metrics, artifacts, end) and ``tell``. The random sampler is used so that the sampler's
own cost, which grows with the study, is not counted; ``--sampler tpe`` gives TPE's figures for
reference. Printed per backend: the mean seconds per trial over trials 1-100 and over the last
100, and their ratio. Goal: the ratio at 2000 trials is at most 1.5.

    python benchmarks/bench_coordination.py [--trials 2000] [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

import optuna
from trial_clock import Clock

from storage import open_store, resolve_store
from sweeps.runner import create_or_resume, parse_config, run_sweep

HERE = Path(__file__).resolve().parent


def run(backend: str, trials: int, sampler: str) -> list[float]:
    name = f"coord-{sampler}-{uuid.uuid4().hex[:6]}"
    if backend == "sqlite":
        spec = resolve_store(tempfile.mkdtemp(prefix="bench-coord-"), env={})
    else:
        url = os.environ.get("SWEEPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/")
        spec = resolve_store(
            url,
            db_prefix=f"bench_{uuid.uuid4().hex[:8]}",
            artifacts=tempfile.mkdtemp(prefix="bench-coord-art-"),
            env={},
        )
    config = parse_config(
        {
            "name": name,
            "workload": {"entrypoint": "trivial_training:train", "device": "cpu", "epochs": 1},
            "search": {
                "n_trials": trials,
                "sampler": sampler,
                "pruner": "none",
                "seed": 0,
                "max_failure_rate": 1.0,
                "space": {
                    "cycle_min_lr": {"low": 1e-4, "high": 1e-2, "log": True},
                    "cycle_max_lr": {"low": 1e-2, "high": 1.0, "log": True},
                    "cycle_first_step_size": {"low": 10, "high": 1000},
                    "decay_lr_rate": {"low": 0.0, "high": 1.0},
                },
            },
        },
        base=HERE,
    )
    clock = Clock()
    with open_store(spec) as store:
        record, _ = create_or_resume(store, config)
        run_sweep(store, record, clock)
    ends = clock.ends[1:]  # the first call reports the state before any trial
    return [b - a for a, b in itertools.pairwise(ends)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--sampler", default="random", choices=["random", "tpe"])
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    logging.disable(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(f"{args.trials} trials, {args.sampler} sampler, trivial objective, tracking on")
    print(f"{'backend':10s} {'first 100 s/trial':>18s} {'last 100 s/trial':>17s} {'ratio':>6s}")
    for backend in args.backends:
        durations = run(backend, args.trials, args.sampler)
        first = statistics.mean(durations[:100])
        last = statistics.mean(durations[-100:])
        print(f"{backend:10s} {first:18.4f} {last:17.4f} {last / first:6.2f}")


if __name__ == "__main__":
    main()
