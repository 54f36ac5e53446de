"""Trial-steps per second: K trials fused into one stacked model against the same K one by one.

Both sides train the same K OneCycle schedules on the same task, data order and seed, with
no tracking (this measures the training path; the sweep-level bookkeeping share is reported by
the sweep itself and in docs/fused.md). Rounds are interleaved so machine noise hits both
alike; the figure per side is the best round. On a GPU, the one-by-one side trains a few trials
and its rate is per trial-step, so K can be large.

    python benchmarks/bench_fused.py                      # CPU: digits 3x512, 128x128, 64; K=16
    python benchmarks/bench_fused.py --device cuda --k 512 --hidden 512,512,512 --batch 256

Beside the MLPs (the stacked fast path) it measures the CNN of ``examples/cnn_task.py`` (a
user's task through a DataLoader, stacked through ``torch.func.vmap``, evaluated trial by
trial with its own ``evaluate``); ``--no-cnn`` leaves it out.

Goals (issue #7): >= 3x at K=16 for the digits MLP on 2 CPU cores; >= 50x on an H200.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from sweeps import Task
from sweeps.trials import TrainSettings, train
from sweeps.trials.fused import StackedModel, check_fusable, train_fused
from sweeps.workloads import build_workload

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def schedules(count: int, steps: int) -> list[dict[str, float]]:
    """K distinct, stable schedules whose cycle spans the run."""
    return [
        {
            "cycle_min_lr": 1e-3 * (1 + i % 5),
            "cycle_max_lr": 2e-2 * (1 + i % 7),
            "cycle_first_step_size": max(1, steps // 2),
            "cycle_min_mom": 0.85,
            "cycle_max_mom": 0.95,
        }
        for i in range(count)
    ]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    workload: Task,
    count: int,
    epochs: int,
    rounds: int,
    device: torch.device,
    sequential_trials: int,
) -> dict[str, float]:
    """Best-of-rounds trial-steps per second for both sides."""
    settings = TrainSettings(epochs=epochs, seed=0, metric=workload.metric)
    steps = workload.steps_per_epoch * epochs
    plans = schedules(count, steps)
    alone = plans[: min(sequential_trials, count)]
    train(workload, plans[0], settings)  # warm-up: allocator, kernels, data on device
    train_fused(workload, plans, settings)
    best = {"sequential": 0.0, "fused": 0.0}
    for _ in range(rounds):
        _sync(device)
        started = time.perf_counter()
        for plan in alone:
            train(workload, plan, settings)
        _sync(device)
        rate = len(alone) * steps / (time.perf_counter() - started)
        best["sequential"] = max(best["sequential"], rate)
        started = time.perf_counter()
        train_fused(workload, plans, settings)
        _sync(device)
        rate = count * steps / (time.perf_counter() - started)
        best["fused"] = max(best["fused"], rate)
    best["ratio"] = best["fused"] / best["sequential"]
    best["steps"] = steps
    return best


def flops_per_trial_step(model: torch.nn.Module, batch: int) -> float:
    """Matrix-product FLOPs of one update: forward, and the two backward products, per layer."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return 6.0 * batch * sum(layer.in_features * layer.out_features for layer in layers)


def peak_gflops(device: torch.device, size: int = 1024, repeat: int = 20) -> float:
    """This device's float32 matrix-product rate on one big well-shaped product (a ceiling)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeat):
        a @ b
    _sync(device)
    return 2.0 * size**3 * repeat / (time.perf_counter() - started) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workload", default="digits")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", action="append", help="widths, e.g. 512,512,512 (repeat)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--no-cnn", action="store_true", help="leave out the CNN (vmap) rows")
    parser.add_argument(
        "--cnn-channels", type=int, nargs="+", default=[8, 16], help="CNN widths to measure"
    )
    parser.add_argument(
        "--sequential-trials", type=int, default=0, help="trials timed one by one (0: all K)"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = args.hidden or ["512,512,512", "128,128", "64"]
    sequential = args.sequential_trials or args.k
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, workload {args.workload}, "
        f"batch {args.batch}, K={args.k}, epochs {args.epochs}, best of {args.rounds} rounds"
    )
    peak = peak_gflops(device)
    print(f"float32 matrix-product ceiling here: {peak:.1f} GFLOP/s (one 1024^3 product)")
    print(
        f"{'hidden':>14} {'steps':>6} {'one by one':>14} {'fused':>14} {'ratio':>7} "
        f"{'GFLOP/s alone':>14} {'fused':>7} {'ceiling ratio':>14}"
    )
    for shape in shapes:
        hidden = [int(w) for w in shape.split(",")]
        workload = build_workload(args.workload, args.batch, 0, device, hidden=hidden)
        found = measure(workload, args.k, args.epochs, args.rounds, device, sequential)
        flops = flops_per_trial_step(workload.build_model(), args.batch)
        alone = found["sequential"] * flops / 1e9
        fused = found["fused"] * flops / 1e9
        # The most stacking could give: the ceiling over what one trial at a time achieves.
        print(
            f"{shape:>14} {int(found['steps']):>6} {found['sequential']:>10.0f} t-s/s "
            f"{found['fused']:>10.0f} t-s/s {found['ratio']:>6.2f}x "
            f"{alone:>14.1f} {fused:>7.1f} {peak / alone:>13.2f}x"
        )
    if not args.no_cnn:
        sys.path.insert(0, str(EXAMPLES))
        from cnn_task import DigitsCNN

        for channels in args.cnn_channels:
            cnn = DigitsCNN(batch_size=args.batch, seed=0, device=device, channels=channels)
            assert not StackedModel(check_fusable(cnn), 2).fast  # the vmap path, not the MLP one
            found = measure(cnn, args.k, args.epochs, args.rounds, device, sequential)
            label = f"CNN c={channels}"
            print(
                f"{label:>14} {int(found['steps']):>6} {found['sequential']:>10.0f} t-s/s "
                f"{found['fused']:>10.0f} t-s/s {found['ratio']:>6.2f}x "
                f"{'(vmap path: examples/cnn_task.py, DataLoader)':>37}"
            )


if __name__ == "__main__":
    main()
