"""A short trial that notes which GPUs it was given and when it ran (for the GPU-slot test)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

import sweeps

trial = sweeps.current_trial()
assert trial is not None
started = time.time()
weight = torch.nn.Parameter(torch.ones(1))
optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
scheduler = trial.scheduler(optimizer)
for _ in range(5):
    loss = (weight**2).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    trial.log_loss(loss)
    scheduler.step()
time.sleep(3)  # long enough for the other slot's trial to be running too
trial.report({"val_accuracy": float(-(weight.item() ** 2))})
seen = {"gpus": os.environ["CUDA_VISIBLE_DEVICES"], "start": started, "end": time.time()}
Path(sys.argv[1], "slot.json").write_text(json.dumps(seen))
