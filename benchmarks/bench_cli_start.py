"""Wall time of the read-only commands, this tree against an earlier revision, side by side.

A read-only command (``onecycle list``, ``status``, ``best``, ``store info``, ``schedule``)
should answer at once: it reads the store (or a DeepSpeed block) and prints. The script makes
a small store with one finished sweep (using this tree), checks the earlier revision out into a
temporary git worktree, then runs each command from both trees in turn (A B A B ...) with the
same interpreter and store, and prints the median wall time of each and the ratio. It also
says whether each run imported torch.

    python benchmarks/bench_cli_start.py --before 4b99d69 [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = """\
name: bench-start
workload: {builtin: digits, epochs: 1, device: cpu, options: {hidden: [16]}}
search:
  n_trials: 3
  sampler: random
  pruner: none
  space:
    cycle_min_lr: {low: 0.001, high: 0.01, log: true}
    cycle_max_lr: {low: 0.01, high: 0.1, log: true}
"""
BLOCK = str(ROOT / "examples" / "onecycle.json")
#: Each command, and whether it reads the store (``--store`` is added to those).
COMMANDS = [
    (["list"], True),
    (["status", "bench-start"], True),
    (["best", "bench-start"], True),
    (["store", "info"], True),
    (["schedule", BLOCK], False),
]


def run(tree: Path, args: list[str], store: Path | None) -> tuple[float, bool]:
    """Seconds one command took from ``tree``, and whether it imported torch."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-X", "importtime", "-m", "sweeps", *args]
    if store is not None:
        command += ["--store", str(store)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tree)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {tree}: {done.stderr.strip()[-500:]}")
    return elapsed, any(
        line.split("|")[-1].strip() == "torch" for line in done.stderr.splitlines()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--before", required=True, help="the earlier revision (a commit)")
    parser.add_argument("--runs", type=int, default=7)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        before = work / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(before), options.before],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            store = work / "store"
            (work / "sweep.yaml").write_text(SWEEP)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "sweeps",
                    "run",
                    str(work / "sweep.yaml"),
                    "--store",
                    str(store),
                ],
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                check=True,
                capture_output=True,
            )
            print(f"{'command':<22} {'before s':>9} {'after s':>9} {'after/before':>13}  torch")
            for args, reads_store in COMMANDS:
                times: dict[str, list[float]] = {"before": [], "after": []}
                torch_seen = {"before": False, "after": False}
                for _ in range(options.runs):
                    for side, tree in (("before", before), ("after", ROOT)):
                        seconds, imported = run(tree, args, store if reads_store else None)
                        times[side].append(seconds)
                        torch_seen[side] |= imported
                old, new = (statistics.median(times[s]) for s in ("before", "after"))
                shown = "schedule onecycle.json" if args[0] == "schedule" else " ".join(args)
                print(
                    f"{shown:<22} {old:>9.2f} {new:>9.2f} {new / old:>13.2f}  "
                    f"{'yes' if torch_seen['before'] else 'no'} -> "
                    f"{'yes' if torch_seen['after'] else 'no'}"
                )
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False
            )


if __name__ == "__main__":
    main()
