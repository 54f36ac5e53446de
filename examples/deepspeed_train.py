"""A DeepSpeed training script, tuned by a sweep without changing how it is launched.

Alone::

    DS_ACCELERATOR=cpu deepspeed --num_gpus 2 deepspeed_train.py --deepspeed_config ds_config.json

In a sweep (``examples/deepspeed.yaml``) the same command runs once per trial with
``{deepspeed_config}``: the base config with the trial's OneCycle ``scheduler`` block in it, so
``deepspeed.initialize`` builds the trial's schedule itself. The two marked lines are all the
sweep needs: ``trial.track(engine)`` records the lr and momentum each ``engine.step()``
applied, ``trial.report`` sends the evaluation (and stops the script when the trial is pruned).
On GPUs it runs unchanged (the NCCL backend is chosen when CUDA is there).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import deepspeed
import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from torch import nn

import sweeps


def digits(device: torch.device) -> tuple[torch.Tensor, ...]:
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order].to(device), y[order].to(device)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deepspeed_config", type=Path, required=True)
    parser.add_argument("--local_rank", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--output-dir", type=Path, default=None)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.output_dir is not None:
        (args.output_dir / f"rank{rank}.pgid").write_text(str(__import__("os").getpgid(0)))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, config=str(args.deepspeed_config)
    )
    trial = sweeps.current_trial()
    if trial is not None:
        trial.track(engine)  # 1: every update's applied lr and momentum
    x_train, y_train, x_val, y_val = digits(engine.device)
    batch, micro = engine.train_batch_size(), engine.train_micro_batch_size_per_gpu()
    epochs = trial.epochs if trial is not None else args.epochs
    for _ in range(epochs):
        engine.train()
        for start in range(0, len(x_train) - batch + 1, batch):
            mine = slice(start + rank * micro, start + (rank + 1) * micro)
            loss = nn.functional.cross_entropy(engine(x_train[mine]), y_train[mine])
            engine.backward(loss)
            if trial is not None:
                trial.log_loss(loss)
            engine.step()
        engine.eval()
        with torch.no_grad():
            accuracy = float((engine(x_val).argmax(1) == y_val).float().mean())
        if trial is not None:
            trial.report({"val_accuracy": accuracy})  # 2: MLflow, Optuna, pruning
        elif rank == 0:
            print(f"val_accuracy {accuracy:.4f}")
    dist.barrier()
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
