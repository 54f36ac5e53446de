"""Per-trial overhead of a command trial against the same training in-process, side by side.

The same training (``benchmarks/command_training.py``: digits, a small MLP, ``--epochs``
epochs of 64-sample updates, one report per epoch) runs as ``--trials`` trials of two sweeps on
a fresh SQLite store through the real worker loop: once as an entrypoint function in the
worker, once as ``workload.command: python command_training.py`` (a process per trial, the
channel, the teardown of its process group, its logs as artifacts). Printed: seconds per trial
for each, the difference (the command's overhead per trial) and the ratio, and for reference
what starting a Python process with the script's imports (torch, sklearn, sweeps) costs on
this machine, the largest part of that overhead.

    python benchmarks/bench_command_trials.py [--trials 4] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from trial_clock import Clock

from storage import open_store, resolve_store
from sweeps.runner import create_or_resume, parse_config, run_sweep

HERE = Path(__file__).resolve().parent


def per_trial(kind: str, trials: int, epochs: int, folder: Path) -> float:
    """Median seconds per trial of a sweep whose workload is ``kind``."""
    workload = (
        {"entrypoint": "command_training:train"}
        if kind == "in-process"
        else {"command": f"{sys.executable} command_training.py", "workdir": str(folder)}
    )
    config = parse_config(
        {
            "name": f"bench-{kind}",
            "workload": {**workload, "batch_size": 64, "epochs": epochs, "device": "cpu"},
            "search": {
                "n_trials": trials,
                "sampler": "random",
                "pruner": "none",
                "space": {"cycle_max_lr": {"low": 0.05, "high": 0.2}},
            },
            "scheduler": {"cycle_min_lr": 0.01, "cycle_first_step_size": 20},
        },
        base=HERE,
    )
    with open_store(resolve_store(str(folder / kind), env={})) as store:
        record, _ = create_or_resume(store, config)
        clock = Clock()
        run_sweep(store, record, clock)
    # the first interval also holds the worker's setup; the following ones are trials
    intervals = [b - a for a, b in zip(clock.ends, clock.ends[1:], strict=False)][1:]
    return statistics.median(intervals[:trials])


def process_start() -> float:
    """Seconds to start Python with the script's imports (torch, sklearn, sweeps; median of 3)."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        code = "import sklearn.datasets, torch, sweeps; sweeps.current_trial()"
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    torch.set_num_threads(1)  # the same threads as the script's, for a fair comparison
    with tempfile.TemporaryDirectory(prefix="bench-command-") as folder:
        # the script runs there, so its trials' folders (onecycle-trials/) go there too
        shutil.copy(HERE / "command_training.py", folder)
        inside = per_trial("in-process", args.trials, args.epochs, Path(folder))
        command = per_trial("command", args.trials, args.epochs, Path(folder))
    start = process_start()
    updates = args.epochs * (1400 // 64)
    print(f"{args.trials} trials of {updates} updates each, median seconds per trial")
    print(f"{'in-process':>12} {'command':>9} {'overhead':>9} {'ratio':>6} {'python+imports':>15}")
    print(
        f"{inside:12.2f} {command:9.2f} {command - inside:9.2f} "
        f"{command / inside:6.2f} {start:15.2f}"
    )


if __name__ == "__main__":
    main()
