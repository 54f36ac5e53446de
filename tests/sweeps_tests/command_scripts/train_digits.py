"""A training script tuned as a command trial: digits, SGD, one process or several (gloo).

Run alone it trains with a fixed OneCycle; launched by a sweep (``torchrun --nproc_per_node 2
train_digits.py --output-dir {output_dir}``) it takes its schedule from the trial. Each rank
writes its process group id to the output folder, and rank 0 starts a child that would run
for minutes (a stand-in for a data loader worker): the sweep must end it with the trial.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import optuna
import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from torch import nn

import sweeps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output-dir", type=Path, default=Path("."))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    torch.set_num_threads(1)
    (args.output_dir / f"rank{rank}.pgid").write_text(str(os.getpgid(0)))
    if rank == 0:
        subprocess.Popen(["sleep", "300"])  # a straggler the trial's end must take with it
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    x_train, y_train, x_val, y_val = x[:1400], y[:1400], x[1400:], y[1400:]
    torch.manual_seed(0)
    model: nn.Module = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trial = sweeps.current_trial()
    scheduler = (
        trial.scheduler(optimizer) if trial else torch.optim.lr_scheduler.StepLR(optimizer, 10)
    )
    batch = 100 // world  # each rank its share of a batch of 100
    for _ in range(args.epochs):
        for start in range(0, len(x_train) - 100 + 1, 100):
            mine = slice(start + rank * batch, start + (rank + 1) * batch)
            loss = nn.functional.cross_entropy(model(x_train[mine]), y_train[mine])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if trial:
                trial.log_loss(loss)
            scheduler.step()
        with torch.no_grad():
            accuracy = float((model(x_val).argmax(1) == y_val).float().mean())
        if trial:
            try:
                trial.report({"val_accuracy": accuracy})
            except optuna.TrialPruned:
                (args.output_dir / f"pruned.rank{rank}").touch()  # every rank learns it
                raise
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
