"""Cost of one scheduler ``step()``: ours against torch's OneCycleLR and DeepSpeed's OneCycle.

All variants run side by side in one process, interleaved round by round so that machine noise
hits them alike; the figure per variant is the best round's mean time per step. Ratios are
against ``torch.optim.lr_scheduler.OneCycleLR`` with momentum cycling. Goal: ours <= 0.5.

    python benchmarks/bench_scheduler.py [--steps 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings
from collections.abc import Callable

import torch

import schedulers

os.environ.setdefault("DS_ACCELERATOR", "cpu")
CONFIG = dict(
    cycle_min_lr=1e-3,
    cycle_max_lr=1e-2,
    cycle_first_step_size=5000,
    cycle_first_stair_count=0,
    decay_step_size=100,
    decay_lr_rate=0.01,
    cycle_min_mom=0.85,
    cycle_max_mom=0.95,
)


def _params() -> list[torch.Tensor]:
    return [torch.zeros(16, requires_grad=True)]


def variants(total_steps: int) -> dict[str, Callable[[], Callable[[], None]]]:
    """Each entry builds a fresh stepper; the stepper advances one batch."""

    def torch_onecycle() -> Callable[[], None]:
        opt = torch.optim.SGD(_params(), lr=0.01, momentum=0.9)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=0.01, total_steps=total_steps, cycle_momentum=True
        )
        return sched.step

    def torch_lambda() -> Callable[[], None]:
        opt = torch.optim.SGD(_params(), lr=0.01, momentum=0.9)
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (1 + k)).step

    def plain_loop() -> Callable[[], None]:
        opt = torch.optim.SGD(_params(), lr=0.01, momentum=0.9)
        counter = [0]

        def step() -> None:
            counter[0] += 1
            k = counter[0]
            for group in opt.param_groups:
                group["lr"] = 1e-3 + 1e-6 * k
                group["momentum"] = 0.95 - 1e-6 * k

        return step

    def ours_sgd() -> Callable[[], None]:
        opt = torch.optim.SGD(_params(), lr=0.01, momentum=0.9)
        return schedulers.OneCycle(opt, **CONFIG).step

    def ours_adamw() -> Callable[[], None]:
        opt = torch.optim.AdamW(_params(), lr=0.01)
        return schedulers.OneCycle(opt, **CONFIG).step

    found: dict[str, Callable[[], Callable[[], None]]] = {
        "torch OneCycleLR (SGD, momentum)": torch_onecycle,
        "torch LambdaLR": torch_lambda,
        "plain loop writing lr+momentum": plain_loop,
        "onecycle-sweeps OneCycle (SGD)": ours_sgd,
        "onecycle-sweeps OneCycle (AdamW)": ours_adamw,
    }
    try:
        logging.disable(logging.WARNING)
        from deepspeed.runtime.lr_schedules import OneCycle as DeepSpeedOneCycle

        def deepspeed_adamw() -> Callable[[], None]:
            opt = torch.optim.AdamW(_params(), lr=0.01)
            return DeepSpeedOneCycle(opt, **CONFIG).step  # type: ignore[no-any-return]

        found["DeepSpeed OneCycle (AdamW)"] = deepspeed_adamw
    except ImportError:
        print("deepspeed not installed: its row is left out (pip install '.[test]')")
    return found


def measure(steps: int, rounds: int) -> dict[str, float]:
    """Best-round mean seconds per step for each variant."""
    builders = variants(total_steps=steps * 2 + 10)
    best = {name: float("inf") for name in builders}
    warnings.simplefilter("ignore")
    for _ in range(rounds):
        for name, build in builders.items():
            step = build()
            for _ in range(200):  # warm-up
                step()
            start = time.perf_counter()
            for _ in range(steps):
                step()
            best[name] = min(best[name], (time.perf_counter() - start) / steps)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = measure(args.steps, args.rounds)
    reference = results["torch OneCycleLR (SGD, momentum)"]
    print(
        f"scheduler.step() cost, best of {args.rounds} rounds x {args.steps} steps, "
        f"torch {torch.__version__}"
    )
    print(f"{'variant':40s} {'us/step':>9s} {'vs OneCycleLR':>14s}")
    for name, seconds in results.items():
        print(f"{name:40s} {seconds * 1e6:9.2f} {seconds / reference:14.2f}")
    ours = max(
        results["onecycle-sweeps OneCycle (SGD)"], results["onecycle-sweeps OneCycle (AdamW)"]
    )
    ratio = ours / reference
    verdict = "met" if ratio <= 0.5 else "NOT met"
    print(f"goal: ours <= 0.5 x OneCycleLR; slower of ours = {ratio:.2f}x -> {verdict}")


if __name__ == "__main__":
    main()
