"""TPE against random search on the demo sweep (examples/digits.yaml), over several seeds.

Each sampler runs the sweep's search space for ``n_trials`` (in memory, untracked, median
pruner as in the file), once per seed. Both are compared with the sweep's enqueued baseline
config, trained alone with the same workload seed. Printed: best value per seed, mean, and the
trial at which each run first beat the baseline.

    python benchmarks/bench_samplers.py [--seeds 0 1 2] [--trials 24]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import optuna
import torch

from sweeps.runner import load_config, settings_of, workload_factory
from sweeps.space import SearchSpace, make_pruner
from sweeps.trials import NoHooks, TrialDiverged, TrialObjective

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits.yaml"


def run(sampler_name: str, seed: int, trials: int) -> list[float | None]:
    config = load_config(EXAMPLE)
    space = SearchSpace(config)
    sampler = (
        optuna.samplers.TPESampler(seed=seed)
        if sampler_name == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=make_pruner(config))
    objective = TrialObjective(
        suggest=space.suggest,
        get_runner=workload_factory(config, torch.device("cpu")),
        settings=settings_of(config),
    )
    study.optimize(objective, n_trials=trials, catch=(TrialDiverged,))
    return [t.value if t.state == optuna.trial.TrialState.COMPLETE else None for t in study.trials]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=24)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    config = load_config(EXAMPLE)
    baseline_params = SearchSpace(config).known(config.enqueue[0])
    runner = workload_factory(config, torch.device("cpu"))()
    baseline = runner.run(baseline_params, settings_of(config), NoHooks()).final[config.metric]
    print(
        f"demo sweep space, {args.trials} trials per run, seeds {args.seeds}; "
        f"baseline (enqueued config) {config.metric} = {baseline:.4f}"
    )
    header = f"{'sampler':8s} {'seed':>4s} {'best':>7s} {'beats baseline at trial':>24s}"
    print(f"{header} {'seconds':>8s}")
    summary: dict[str, list[float]] = {}
    for name in ("tpe", "random"):
        for seed in args.seeds:
            start = time.perf_counter()
            values = run(name, seed, args.trials)
            elapsed = time.perf_counter() - start
            finite = [v for v in values if v is not None]
            best = max(finite) if finite else float("nan")
            first = next((i for i, v in enumerate(values) if v is not None and v > baseline), None)
            summary.setdefault(name, []).append(best)
            beat = "never" if first is None else str(first)
            print(f"{name:8s} {seed:4d} {best:7.4f} {beat:>24s} {elapsed:8.1f}")
    for name, bests in summary.items():
        print(
            f"{name}: mean best {statistics.mean(bests):.4f} "
            f"(min {min(bests):.4f}, max {max(bests):.4f}) vs baseline {baseline:.4f}"
        )


if __name__ == "__main__":
    main()
