"""One small training run, as an entrypoint function and as a script: the command benchmark's.

``train(ctx)`` is what an in-process trial calls; run as a script (``python
command_training.py``) it trains the same way with ``sweeps.current_trial()`` as its context.
"""

from __future__ import annotations

from typing import Any

import torch
from sklearn.datasets import load_digits
from torch import nn


def train(ctx: Any) -> dict[str, float]:
    """Digits, a small MLP, SGD under the trial's OneCycle; one report per epoch."""
    torch.manual_seed(ctx.seed)
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = ctx.scheduler(optimizer)
    accuracy = 0.0
    for _ in range(ctx.epochs):
        for start in range(0, 1400 - ctx.batch_size + 1, ctx.batch_size):
            xb, yb = x[start : start + ctx.batch_size], y[start : start + ctx.batch_size]
            loss = nn.functional.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            ctx.log_loss(loss)
            scheduler.step()
        with torch.no_grad():
            accuracy = float((model(x[1400:]).argmax(1) == y[1400:]).float().mean())
        ctx.report({"val_accuracy": accuracy})
    return {"val_accuracy": accuracy}


if __name__ == "__main__":
    import sweeps

    trial = sweeps.current_trial()
    if trial is not None:
        torch.set_num_threads(1)
        train(trial)
