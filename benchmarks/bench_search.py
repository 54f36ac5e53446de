"""Search quality at equal compute: random search, Optuna's defaults and the project's recipe.

Compute is optimizer updates: every trial counts the updates it ran (pruned and diverged ones
too), the recipe's LR range test counts its own. Each strategy runs one trial at a time until
the budget (``--budget`` full-length trials' worth) is spent, once per seed; the printed table
gives, per task, the median final best with its quartiles, and the compute each strategy needed
for its median best-so-far to reach strategy 2's final median best. The workload's own seed is
fixed, so a configuration always scores the same: what varies with the seed is the search.

    python benchmarks/bench_search.py               # 5 seeds, strategies and knobs (~10 min)
    python benchmarks/bench_search.py --seeds 10 --plot docs/images/search_quality.png  # the docs
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import torch
from search_report import Curve, print_tables, write_plot
from search_tasks import EXAMPLES, KNOBS, STRATEGIES, TASKS, BenchTask, sweep_file

from sweeps.config import SweepConfig
from sweeps.range_test import run_for_config, settings_for
from sweeps.runner import settings_of, workload_factory
from sweeps.space import SearchSpace, make_pruner, make_sampler, with_result
from sweeps.trials import TrialDiverged, TrialObjective


@dataclass
class Budget:
    """Counts each finished trial's updates and stops the study once the budget is spent."""

    limit: int
    spent: int
    curve: Curve = field(default_factory=Curve)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.spent += int(trial.user_attrs.get("steps", 0))
        done = trial.state == optuna.trial.TrialState.COMPLETE and trial.value is not None
        self.curve.add(self.spent, trial.value if done else None, trial.state.name)
        if self.spent >= self.limit:
            study.stop()


class Bench:
    """One task's runner, full-trial length and range test, shared by every strategy and seed."""

    def __init__(self, task: BenchTask) -> None:
        self.task = task
        base = SweepConfig.model_validate(sweep_file(task, "recipe", 0))
        self.runner = workload_factory(base, torch.device("cpu"), EXAMPLES)()
        self.full = self.runner.planned_steps(base.workload.epochs)
        outcome = run_for_config(base, torch.device("cpu"), settings_for(base), runner=self.runner)
        self.range_result = outcome.result()
        self.range_cost = len(outcome.trace.lrs)

    def run(self, strategy: str, seed: int, budget_trials: int) -> Curve:
        """Best-so-far against updates for one strategy and seed."""
        config = SweepConfig.model_validate(sweep_file(self.task, strategy, seed))
        spent = 0
        if config.needs_range_test:
            config = with_result(config, self.range_result)
            spent = self.range_cost
        space = SearchSpace(config)
        study = optuna.create_study(
            study_name=config.name,  # Hyperband assigns brackets by study name and trial number
            direction=config.objective.direction,
            sampler=make_sampler(config, space),
            pruner=make_pruner(config),
        )
        objective = TrialObjective(
            suggest=space.suggest, get_runner=lambda: self.runner, settings=settings_of(config)
        )
        budget = Budget(budget_trials * self.full, spent)
        budget.curve.add(spent, None, "range test" if spent else "start")
        study.optimize(objective, callbacks=[budget], catch=(TrialDiverged,))
        return budget.curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per strategy")
    parser.add_argument("--budget", type=int, default=20, help="full-length trials' worth")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["ctr", "cnn"])
    parser.add_argument(
        "--no-knobs", dest="knobs", action="store_false", help="skip the recipe's variants"
    )
    parser.add_argument("--only", nargs="+", help="run these strategies (names as printed)")
    parser.add_argument("--plot", type=Path, help="write best-so-far curves as a PNG here")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sys.path.insert(0, str(EXAMPLES))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    names = [*STRATEGIES, *(KNOBS if args.knobs else [])]
    if args.only:
        unknown = sorted(set(args.only) - {*STRATEGIES, *KNOBS})
        if unknown:
            parser.error(f"--only: one of {[*STRATEGIES, *KNOBS]}, got {unknown[0]!r}")
        names = ["optuna", *(n for n in args.only if n != "optuna")]
    results: dict[str, dict[str, list[Curve]]] = {}
    floors: dict[str, float] = {}
    budgets: dict[str, int] = {}
    for task_name in args.tasks:
        task = TASKS[task_name]
        bench = Bench(task)
        floors[task_name] = task.noise_floor()
        budgets[task_name] = args.budget * bench.full
        print(
            f"{task_name}: {bench.full} updates a full trial, budget {budgets[task_name]} "
            f"updates ({args.budget} full trials), range test {bench.range_cost} updates",
            flush=True,
        )
        for name in names:
            started = time.perf_counter()
            curves = [bench.run(name, seed, args.budget) for seed in range(args.seeds)]
            results.setdefault(task_name, {})[name] = curves
            trials = sum(len(c.points) - 1 for c in curves) / len(curves)
            print(
                f"  {name:28s} {trials:6.1f} trials a seed, "
                f"{time.perf_counter() - started:6.1f} s for {args.seeds} seeds",
                flush=True,
            )
    print_tables(results, budgets, floors, args.seeds)
    if args.plot:
        main_three = {
            t: {n: c for n, c in r.items() if n in STRATEGIES} for t, r in results.items()
        }
        write_plot(main_three, budgets, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
