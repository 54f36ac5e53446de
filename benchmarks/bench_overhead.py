"""Fixed costs: each command of this project against its floor, side by side, as ratios.

A floor is the least the same work needs, measured the same way (a fresh process, wall time):
Python's own start for ``--help``; importing SQLAlchemy and Optuna for the commands that read a
study; importing torch and MLflow for ``run`` on a finished sweep. A tracked ``train`` is set
against the same ``train --no-track``, a fused sweep against the same sweep one trial at a
time, and a sweep trained in the command's process against the same without the garbage
collector's start-up pause (``storage/gc_freeze.py``). The two sides of a row run in turn
(A B A B ...), so machine noise hits both alike, and each figure is the median of ``--runs``.
Rows with a goal say whether it is met (issue #14).

    python benchmarks/bench_overhead.py [--runs 5] [--skip-fused]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONE = """\
name: one
workload: {builtin: digits, epochs: 1, device: cpu}
search:
  n_trials: 1
  sampler: random
  pruner: none
  space:
    cycle_min_lr: {low: 0.001, high: 0.01, log: true}
    cycle_max_lr: {low: 0.01, high: 0.1, log: true}
"""
#: ``train`` of about 8 s of training on 2 cores (the whole-process tracking ratio).
LONG = ONE.replace("name: one", "name: long").replace("epochs: 1", "epochs: 90")
FUSED = """\
name: fused
workload: {builtin: digits, epochs: 20, device: cpu, options: {hidden: [128, 128]}}
search:
  n_trials: 16
  sampler: random
  pruner: none
  seed: 0
  space:
    cycle_min_lr: {low: 0.001, high: 0.01, log: true}
    cycle_max_lr: {low: 0.01, high: 0.1, log: true}
"""
#: Four trials of ten epochs, trained in the command's own process: longer than the
#: collector's start-up pause (5 s), so that its end (one collection, the freeze) is counted.
FOUR = (
    ONE.replace("name: one", "name: four")
    .replace("epochs: 1", "epochs: 10")
    .replace("n_trials: 1", "n_trials: 4")
)
#: ``onecycle`` as its entry point runs it, less the collector's start-up pause.
UNPAUSED = (
    "import sys; from sweeps.cli import _leaving, main; _leaving.skip_teardown(); "
    "code = main(sys.argv[1:]); _leaving.set_code(code); sys.exit(code)"
)
PARAMS = '{"cycle_min_lr": 0.001, "cycle_max_lr": 0.05, "cycle_first_step_size": 20}\n'


@dataclass
class Row:
    """One line of the table: this project's command, its floor, and the goal if any."""

    what: str
    ours: Callable[[int], list[str]]
    floor: Callable[[int], list[str]]
    floor_name: str
    goal: str = ""
    #: The goal as a test of (ours s, floor s).
    met: Callable[[float, float], bool] | None = None


def cli(*args: str) -> list[str]:
    """The ``onecycle`` command as the console script runs it."""
    return [sys.executable, "-m", "sweeps", *args]


def python(code: str) -> list[str]:
    """A floor: a fresh interpreter doing ``code``."""
    return [sys.executable, "-c", code]


def timed(command: list[str], cwd: Path) -> float:
    """Wall seconds of one run of ``command``; a failure stops the benchmark."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip()[-800:]}")
    return elapsed


def rows(work: Path) -> list[Row]:
    """The table of issue #14, in its order."""
    store = str(work / "done-store")
    return [
        Row(
            "onecycle --help",
            lambda i: cli("--help"),
            lambda i: python("pass"),
            "Python start",
            "<= 0.3 s",
            lambda ours, floor: ours <= 0.3,
        ),
        *[
            Row(
                f"onecycle {' '.join(args)}",
                lambda i, args=args: cli(*args, "--store", store),
                lambda i: python("import sqlalchemy, optuna"),
                "import sqlalchemy, optuna",
                "<= 2x floor",
                lambda ours, floor: ours <= 2 * floor,
            )
            for args in (("list",), ("status", "one"), ("best", "one"))
        ],
        Row(
            "onecycle store info",
            lambda i: cli("store", "info", "--store", store),
            lambda i: python("import sqlalchemy, optuna"),
            "import sqlalchemy, optuna",
        ),
        Row(
            "run, sweep already finished",
            lambda i: cli("run", str(work / "one.yaml"), "--store", store),
            lambda i: python("import torch, mlflow"),
            "import torch, mlflow",
            "<= 1.5x floor",
            lambda ours, floor: ours <= 1.5 * floor,
        ),
        Row(
            "run, fresh store, 1 trial x 1 epoch",
            lambda i: cli("run", str(work / "one.yaml"), "--store", str(work / f"fresh-{i}")),
            lambda i: python("import torch, mlflow"),
            "import torch, mlflow",
            "<= 4 s",
            lambda ours, floor: ours <= 4.0,
        ),
        Row(
            "run, fresh, 4 trials x 10 epochs: paused",
            lambda i: cli("run", str(work / "four.yaml"), "--store", str(work / f"four-{i}")),
            lambda i: [
                *python(UNPAUSED),
                *("run", str(work / "four.yaml"), "--store", str(work / f"four-unpaused-{i}")),
            ],
            "the same, not paused",
        ),
        Row(
            "train 1 epoch: tracked vs --no-track",
            lambda i: cli(
                "train",
                str(work / "one.yaml"),
                "--params",
                str(work / "p.json"),
                "--store",
                str(work / "train-store"),
            ),
            lambda i: cli(
                "train", str(work / "one.yaml"), "--params", str(work / "p.json"), "--no-track"
            ),
            "the same, --no-track",
            "<= floor + 1 s",
            lambda ours, floor: ours <= floor + 1.0,
        ),
        Row(
            "train ~8 s of training: tracked vs --no-track",
            lambda i: cli(
                "train",
                str(work / "long.yaml"),
                "--params",
                str(work / "p.json"),
                "--store",
                str(work / "train-store"),
            ),
            lambda i: cli(
                "train", str(work / "long.yaml"), "--params", str(work / "p.json"), "--no-track"
            ),
            "the same, --no-track",
            "<= 1.10x",
            lambda ours, floor: ours <= 1.10 * floor,
        ),
    ]


def fused_row(work: Path) -> Row:
    """16 trials of the 128x128 MLP: the whole sweep fused against one at a time."""
    return Row(
        "16 trials 128x128 MLP, whole sweep: fused",
        lambda i: cli(
            "run", str(work / "fused.yaml"), "--fused", "16", "--store", str(work / f"fused-{i}")
        ),
        lambda i: cli(
            "run", str(work / "fused.yaml"), "--fused", "1", "--store", str(work / f"single-{i}")
        ),
        "one at a time",
        ">= 2.5x faster",
        lambda ours, floor: floor >= 2.5 * ours,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per side (median shown)")
    parser.add_argument("--skip-fused", action="store_true", help="leave out the fused row")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "one.yaml").write_text(ONE)
        (work / "long.yaml").write_text(LONG)
        (work / "four.yaml").write_text(FOUR)
        (work / "fused.yaml").write_text(FUSED)
        (work / "p.json").write_text(PARAMS)
        timed(cli("run", str(work / "one.yaml"), "--store", str(work / "done-store")), work)
        table = rows(work) + ([] if options.skip_fused else [fused_row(work)])
        print(f"{'what':<46} {'ours s':>7} {'floor s':>8} {'ratio':>6}  {'goal':<15} floor")
        for row in table:
            ours, floor = [], []
            for i in range(options.runs):
                ours.append(timed(row.ours(i), work))
                floor.append(timed(row.floor(i), work))
            a, b = statistics.median(ours), statistics.median(floor)
            verdict = "" if row.met is None else (" met" if row.met(a, b) else " MISSED")
            print(
                f"{row.what:<46} {a:>7.2f} {b:>8.2f} {a / b:>6.2f}  "
                f"{(row.goal + verdict):<15} {row.floor_name}",
                flush=True,
            )


if __name__ == "__main__":
    main()
