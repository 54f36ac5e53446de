"""What MLflow tracking adds to a trial: tracked vs untracked, side by side, in one run.

The trial: the CPU demo workload (``digits``, batch 64, SGD, OneCycle) for 100 epochs = 2,200
updates, each logging lr, momentum and train_loss (6,600 values) plus 100 evaluations. Variants,
interleaved round by round so that machine noise hits them alike:

* untracked: the same Optuna objective with tracking off;
* tracked: the project's tracking (run created, params, per-step values through the writer
  process, final metrics, artifacts, run ended). Two figures: the trial's wall time (the
  objective returning) and the time until every write is durable (``sync``);
* inline log_batch: the same buffered batches written in the training process (why a separate
  writer process: MLflow's SQL store spends its CPU under the GIL);
* naive per-step ``log_metric`` for lr and momentum, on a 220-update trial, extrapolated.

Goal: tracked adds under 2% to the trial's wall time. ``python benchmarks/bench_tracking.py``
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import torch
from mlflow import MlflowClient

from storage import open_store, resolve_store
from storage.tracking import InlineTracking, ProcessTracking, Tracking
from sweeps.tracking import ensure_experiment, start_parent_run
from sweeps.trials import MlflowTarget, TrainSettings, TrialObjective
from sweeps.workloads import build_workload

SCHEDULE = dict(
    cycle_min_lr=0.01,
    cycle_max_lr=0.2,
    cycle_first_step_size=1000,
    cycle_first_stair_count=0,
    decay_step_size=20,
    decay_lr_rate=0.1,
    cycle_min_mom=0.85,
    cycle_max_mom=0.95,
)


HIDDEN: list[int] | None = None


def objective(epochs: int, target: MlflowTarget | None) -> TrialObjective:
    workload = build_workload("digits", 64, 0, torch.device("cpu"), hidden=HIDDEN)
    _ = workload.split  # load once, outside the timed region
    return TrialObjective(
        suggest=lambda trial: dict(SCHEDULE),
        get_runner=lambda: workload,
        settings=TrainSettings(epochs=epochs),
        run_params={"workload": "digits", "batch_size": 64, "optimizer": "sgd", "seed": 0},
        mlflow=target,
    )


def run_trial(study: optuna.Study, make: TrialObjective) -> float:
    trial = study.ask()
    start = time.perf_counter()
    value = make(trial)
    elapsed = time.perf_counter() - start
    study.tell(trial, value)
    return elapsed


def naive_per_value(client: MlflowClient, experiment: str, epochs: int) -> tuple[float, float]:
    """Per-step log_metric of lr and momentum inside the loop: (trial seconds, untracked)."""

    class Naive:
        def __init__(self, run_id: str) -> None:
            self.run_id = run_id

        def on_step(self, step: int, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
            group = optimizer.param_groups[0]
            client.log_metric(self.run_id, "lr", group["lr"], step=step)
            client.log_metric(self.run_id, "momentum", group["momentum"], step=step)

        def on_eval(self, step: int, samples: int, metrics: object) -> None:
            pass

    from sweeps.trials import train

    workload = build_workload("digits", 64, 0, torch.device("cpu"), hidden=HIDDEN)
    _ = workload.split
    run_id = client.create_run(experiment).info.run_id
    start = time.perf_counter()
    train(workload, SCHEDULE, TrainSettings(epochs=epochs), Naive(run_id))
    naive = time.perf_counter() - start
    start = time.perf_counter()
    train(workload, SCHEDULE, TrainSettings(epochs=epochs))
    return naive, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--store", help="store to log into (default: a temporary directory)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--hidden", help="MLP widths, e.g. 128,128 (default: digits' 512,512,512)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    global HIDDEN
    HIDDEN = [int(w) for w in args.hidden.split(",")] if args.hidden else None
    if args.threads:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = tempfile.mkdtemp(prefix="bench-tracking-")
    spec = resolve_store(args.store or str(Path(folder) / "store"))
    store = open_store(spec)
    client = store.mlflow
    experiment = ensure_experiment(client, "bench-tracking", spec.artifact_location)
    parent = start_parent_run(client, experiment, "bench-tracking", "bench", {"bench": 1})
    started = time.perf_counter()
    process_writer = ProcessTracking(spec.mlflow_uri)
    process_writer.sync()
    writer_start = time.perf_counter() - started
    inline_writer = InlineTracking(spec.mlflow_uri)
    study = optuna.create_study(direction="maximize")

    def target(writer: Tracking) -> MlflowTarget:
        return MlflowTarget(writer, experiment, parent, "bench-tracking")

    times: dict[str, list[float]] = {
        "untracked": [],
        "tracked": [],
        "tracked+sync": [],
        "inline log_batch": [],
    }
    for warm in (None, target(process_writer), target(inline_writer)):  # warm-up, untimed
        run_trial(study, objective(args.epochs // 2, warm))
    process_writer.sync()
    for _ in range(args.rounds):
        times["untracked"].append(run_trial(study, objective(args.epochs, None)))
        start = time.perf_counter()
        times["tracked"].append(run_trial(study, objective(args.epochs, target(process_writer))))
        process_writer.sync()
        times["tracked+sync"].append(time.perf_counter() - start)
        times["inline log_batch"].append(
            run_trial(study, objective(args.epochs, target(inline_writer)))
        )
    report = process_writer.close()
    if report.errors:
        raise SystemExit(f"writer errors: {report.errors}")
    naive_epochs = max(1, args.epochs // 10)
    naive, plain = naive_per_value(client, experiment, naive_epochs)
    steps = args.epochs * 22
    base = statistics.median(times["untracked"])
    widths = HIDDEN or build_workload("digits", 64, 0, torch.device("cpu")).hidden
    model = "x".join(map(str, widths))
    print(
        f"trial: digits MLP {model}, {steps} updates, {3 * steps} per-step values; "
        f"median of {args.rounds} interleaved rounds; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; store {spec.describe()}"
    )
    print(f"writer process start (once per worker, not per trial): {writer_start:.2f} s")
    print(f"{'variant':34s} {'seconds':>8s} {'vs untracked':>13s}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:34s} {median:8.3f} {median / base:13.3f}")
    per_value = (naive - plain) / (2 * naive_epochs * 22)
    print(
        f"naive per-step log_metric (lr, momentum) on {naive_epochs * 22} updates: "
        f"{naive:.2f} s vs {plain:.2f} s untracked -> {per_value * 1000:.2f} ms per value, "
        f"~{per_value * 2 * steps:.0f} s extrapolated to {steps} updates"
    )
    overhead = statistics.median(times["tracked"]) / base - 1
    verdict = "met" if overhead < 0.02 else "NOT met"
    print(
        f"goal: tracking adds < 2% to the trial's wall time: {overhead * 100:+.2f}% -> {verdict}"
    )
    store.close()


if __name__ == "__main__":
    main()
