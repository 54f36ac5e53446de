"""A least-squares workload whose stability edge is known in closed form.

Loss ``0.5 * mean((x @ w - y)^2)`` has Hessian ``X^T X / n``; its features are built so that
this matrix has exactly the eigenvalues asked for. Plain gradient descent (no momentum)
diverges for lr above ``2 / lambda_max``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from sweeps.workloads.base import Problem, Split, SplitTask


class LeastSquares(SplitTask):
    """Linear regression on 2,048 generated samples in 32 dimensions."""

    key: ClassVar[str] = "least_squares"
    problem: ClassVar[Problem] = "binary"
    metric: ClassVar[str] = "val_loss"

    def __init__(
        self,
        batch_size: int,
        seed: int,
        lambda_max: float = 4.0,
        condition: float = 100.0,
        samples: int = 2048,
        dims: int = 32,
    ) -> None:
        super().__init__(batch_size, seed, torch.device("cpu"))
        self.lambda_max, self.condition = lambda_max, condition
        self.samples, self.dims = samples, dims

    @property
    def stability_limit(self) -> float:
        """The lr above which gradient descent diverges."""
        return 2.0 / self.lambda_max

    def load(self) -> Split:
        """Whitened Gaussian features rotated and scaled to the requested spectrum."""
        generator = torch.Generator().manual_seed(self.seed)
        n, d = self.samples, self.dims
        z = torch.randn(n, d, generator=generator, dtype=torch.float64)
        z = z - z.mean(0)
        chol = torch.linalg.cholesky(z.T @ z / n)
        z = torch.linalg.solve_triangular(chol, z.T, upper=False).T  # now z^T z / n = I
        eigen = torch.logspace(
            float(torch.log10(torch.tensor(self.lambda_max / self.condition))),
            float(torch.log10(torch.tensor(self.lambda_max))),
            d,
            dtype=torch.float64,
        )
        rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
        x = z @ torch.diag(eigen.sqrt()) @ rotation.T
        w = torch.randn(d, generator=generator, dtype=torch.float64)
        y = x @ w + 0.1 * torch.randn(n, generator=generator, dtype=torch.float64)
        x32, y32 = x.float(), y.float()
        return Split(x32, y32, x32[:256], y32[:256])

    def hessian_top(self) -> float:
        """The largest Hessian eigenvalue, measured."""
        x = self.split.x_train.double()
        return float(torch.linalg.eigvalsh(x.T @ x / x.shape[0]).max())

    def build_model(self) -> nn.Module:
        """One weight per feature, no bias."""
        return nn.Linear(self.dims, 1, bias=False)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Half the mean squared error (its Hessian is X^T X / n)."""
        return 0.5 * ((output.squeeze(-1) - target) ** 2).mean()
