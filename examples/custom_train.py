"""An existing PyTorch training loop, adapted to an onecycle sweep in three lines.

Use it with ``entrypoint: "custom_train:train"`` in a sweep file next to this one (see
``examples/custom.yaml``). The marked lines are the only changes to a plain training loop.
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_breast_cancer
from torch import nn

import sweeps


def _data(seed: int) -> tuple[torch.Tensor, ...]:
    data = load_breast_cancer()
    x = torch.tensor(data.data, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.float32)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    x = (x - x[:455].mean(0)) / x[:455].std(0)
    return x[:455], y[:455], x[455:], y[455:]


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((model(x).squeeze(-1) > 0).float() == y).float().mean())


def train(ctx: sweeps.TrialContext) -> dict[str, float]:
    x_train, y_train, x_val, y_val = (t.to(ctx.device) for t in _data(ctx.seed))
    model = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 1)).to(ctx.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = ctx.scheduler(optimizer)  # 1: the trial's OneCycle, tracked
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(ctx.epochs):
        for start in range(0, len(x_train) - ctx.batch_size + 1, ctx.batch_size):
            xb, yb = (
                x_train[start : start + ctx.batch_size],
                y_train[start : start + ctx.batch_size],
            )
            loss = loss_fn(model(xb).squeeze(-1), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            ctx.log_loss(loss)  # 2: train_loss per update, divergence check
            scheduler.step()
        ctx.report({"val_accuracy": _accuracy(model, x_val, y_val)})  # 3: evaluation, pruning
    return {"val_accuracy": _accuracy(model, x_val, y_val)}
