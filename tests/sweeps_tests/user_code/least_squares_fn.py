"""The least-squares problem with a known stability edge, as a user's own training function.

Plain gradient descent on ``0.5 * mean((x @ w - y)^2)`` diverges for lr above
``2 / lambda_max`` (see ``tests/sweeps_tests/least_squares.py``, which builds the data).
"""

from __future__ import annotations

from typing import Any

import torch

from tests.sweeps_tests.least_squares import LeastSquares


def train(ctx: Any) -> dict[str, float]:
    """The loop a user would write, with the three lines that hand it to the sweep."""
    task = LeastSquares(batch_size=ctx.batch_size, seed=ctx.seed, **ctx.options)
    model = task.build_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.0)
    scheduler = ctx.scheduler(optimizer)
    for epoch in range(ctx.epochs):
        for x, y in task.batches(epoch):
            loss = task.loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            ctx.log_loss(loss)
            scheduler.step()
    return task.evaluate(model)
