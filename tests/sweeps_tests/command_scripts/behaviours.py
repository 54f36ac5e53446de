"""A trial script that does something different in each trial, for the lifecycle test.

Trial 0 and 5 train a least-squares fit and report; 1 raises; 2 hangs; 3 exits 0 without a
report; 4 diverges. Every trial first writes what it was given (environment, arguments) to its
output folder, so the test can check that no store URL or password reached it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

import sweeps


def fit(trial: sweeps.ScriptTrialContext, loss_scale: float = 1.0) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=generator)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    weights = torch.zeros(4, requires_grad=True)
    optimizer = torch.optim.SGD([weights], lr=0.1, momentum=0.9)
    scheduler = trial.scheduler(optimizer)
    for epoch in range(2):
        for start in range(0, 256, 32):
            loss = ((x[start : start + 32] @ weights - y[start : start + 32]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            trial.log_loss(loss * loss_scale ** (epoch * 8 + start // 32))
            scheduler.step()
        trial.report({"val_accuracy": float(-((x @ weights - y) ** 2).mean())})


def main() -> None:
    output = Path(sys.argv[1])
    (output / "seen.json").write_text(json.dumps({"env": dict(os.environ), "argv": sys.argv}))
    trial = sweeps.current_trial()
    assert trial is not None
    kind = trial.trial % 6
    if kind == 1:
        raise ValueError("boom from the trial script")
    if kind == 2:
        time.sleep(600)
    if kind == 3:
        return
    fit(trial, loss_scale=10.0 if kind == 4 else 1.0)


if __name__ == "__main__":
    main()
