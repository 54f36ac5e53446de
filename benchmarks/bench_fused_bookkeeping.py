"""A fused sweep's bookkeeping: Optuna's and MLflow's APIs against the bulk writers, in one run.

The same sweep (``digits``, a small MLP so that training is short and the bookkeeping shows,
K trials a batch, TPE, median pruner, tracking on) runs twice on fresh stores, in
subprocesses, interleaved: once with every trial written through Optuna's and MLflow's public
APIs (``ONECYCLE_OPTUNA_BULK=0 ONECYCLE_MLFLOW_BULK=0``), once with the bulk writers
(``storage/bulk_trials.py``, ``bulk_runs.py``, ``bulk_metrics.py``; the default). Each batch's
split is read back from the sweep's parent run (``fused/*`` metrics). Printed per side: the
sweep's wall time, and per batch after the first (whose TPE asks are random and which waits
for no earlier writes) the seconds of training, sampling (TPE in memory), the rest of the ask
(inserts, run creation), the tell, the wait for the tracking writer, and the bookkeeping share.

    python benchmarks/bench_fused_bookkeeping.py [--k 256] [--trials 768] [--store URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

from storage import open_store, resolve_store
from storage.postgres import drop_databases

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("train_s", "sample_s", "ask_s", "tell_s", "sync_s", "bookkeeping_share")


def sweep_file(folder: Path, k: int, trials: int, hidden: list[int], epochs: int) -> Path:
    config = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    config["name"] = "bookkeeping"
    config["workload"].update(epochs=epochs, device="cpu", options={"hidden": hidden})
    config["search"]["n_trials"] = trials
    config["execution"] = {"fused_trials": k}
    path = folder / "bookkeeping.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(
    path: Path, store: str, db_prefix: str, bulk: bool
) -> tuple[float, list[dict[str, float]]]:
    """Run the sweep in a subprocess; its wall time and each batch's ``fused/*`` figures."""
    env = {**os.environ, "ONECYCLE_OPTUNA_BULK": "1" if bulk else "0"}
    env["ONECYCLE_MLFLOW_BULK"] = env["ONECYCLE_OPTUNA_BULK"]
    command = [sys.executable, "-m", "sweeps", "run", str(path), "--store", store]
    if db_prefix:
        command += ["--db-prefix", db_prefix]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, capture_output=True)
    wall = time.perf_counter() - started
    spec = resolve_store(store, db_prefix=db_prefix or None, env={})
    with open_store(spec) as opened:
        client = opened.mlflow
        (experiment,) = [e for e in client.search_experiments() if e.name.endswith("bookkeeping")]
        (parent,) = client.search_runs(
            [experiment.experiment_id], "tags.`mlflow.parentRunId` IS NULL"
        )
        series = {
            key: sorted(
                client.get_metric_history(parent.info.run_id, f"fused/{key}"),
                key=lambda m: m.step,
            )
            for key in KEYS
        }
    batches = [{key: series[key][i].value for key in KEYS} for i in range(len(series["train_s"]))]
    return wall, batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument("--trials", type=int, default=768)
    parser.add_argument("--hidden", default="32", help="MLP widths, e.g. 128,128")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--store", default="", help="a PostgreSQL URL (default: SQLite dirs)")
    args = parser.parse_args()
    hidden = [int(w) for w in args.hidden.split(",")]
    print(
        f"digits MLP {args.hidden}, {args.epochs} epochs, {args.trials} trials, K={args.k}, "
        f"TPE, store {'PostgreSQL' if args.store else 'SQLite'}"
    )
    header = ("side", "wall s", "train s", "TPE s", "ask s", "tell s", "writer s", "share")
    print("{:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}".format(*header))
    walls: dict[str, list[float]] = {"api": [], "bulk": []}
    with tempfile.TemporaryDirectory() as folder:
        path = sweep_file(Path(folder), args.k, args.trials, hidden, args.epochs)
        for round_ in range(args.rounds):
            for side in ("api", "bulk"):
                if args.store:
                    store, prefix = args.store, f"ocs_bench_{uuid.uuid4().hex[:8]}"
                else:
                    store, prefix = str(Path(folder) / f"{side}-{round_}"), ""
                try:
                    wall, batches = run(path, store, prefix, bulk=side == "bulk")
                finally:
                    if args.store:
                        drop_databases(args.store, prefix)
                walls[side].append(wall)
                steady = batches[1:] or batches
                mean = {key: statistics.mean(b[key] for b in steady) for key in KEYS}
                print(
                    f"{side:>8} {wall:8.1f} {mean['train_s']:8.2f} {mean['sample_s']:8.2f} "
                    f"{mean['ask_s'] - mean['sample_s']:8.2f} {mean['tell_s']:8.2f} "
                    f"{mean['sync_s']:9.2f} {mean['bookkeeping_share']:6.0%}"
                )
    ratio = min(walls["api"]) / min(walls["bulk"])
    print(f"sweep wall time, API / bulk: {ratio:.2f}x (per-batch columns: means after batch 1)")


if __name__ == "__main__":
    main()
