"""The batch-scaling study's training as a script: generated CTR data, one or N processes.

``examples/batch_scaling_command.yaml`` runs the study with this script: the baseline as
``python ctr_train.py`` and the large-batch runs as ``torchrun --nproc_per_node N`` (N GPUs,
or N CPU processes with gloo), as in DeepSpeed's tutorial. Each rank trains on its share of
every global batch (DDP averages the gradients) and rank 0's evaluation is reported.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

import sweeps
from sweeps.trials import make_optimizer
from sweeps.workloads import build_workload


def main() -> None:
    trial = sweeps.current_trial()
    if trial is None:
        raise SystemExit("run this script through `onecycle study batch-scaling`")
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    if rank == 0:
        print(f"training on {world} processes, global batch {trial.batch_size}", flush=True)
    workload = build_workload(
        "synthetic_ctr", trial.batch_size, trial.seed, torch.device("cpu"), **trial.options
    )
    torch.manual_seed(trial.seed)
    model: nn.Module = workload.build_model()
    optimizer = make_optimizer(model, "sgd")
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    scheduler = trial.scheduler(optimizer)
    every = trial.eval_every or workload.steps_per_epoch
    step = 0
    for epoch in range(trial.epochs):
        for x, y in workload.batches(epoch):
            share = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
            loss = workload.loss(model(x[share]), y[share])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            trial.log_loss(loss)
            scheduler.step()
            step += 1
            if step % every == 0:
                trial.report(workload.evaluate(model.module if world > 1 else model))
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
