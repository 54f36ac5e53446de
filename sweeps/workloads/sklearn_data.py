"""Built-in workloads on data scikit-learn ships: ``digits`` and ``breast_cancer``.

Both load from files inside the scikit-learn package (no download), split 80/20 with a seeded
permutation, and standardise features with the training split's statistics. The files are read
as the CSV they are, without importing scikit-learn: its import (SciPy's with it) took about a
second of each trial process, more than a one-epoch digits trial trains. Where the files are
not where this scikit-learn keeps them, its own loader reads them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from sweeps.workloads.base import Problem, Split, SplitTask, mlp, seeded_permutation


def standardised_split(x: Tensor, y: Tensor, seed: int, val_fraction: float = 0.2) -> Split:
    """Seeded split; features scaled by the training mean and standard deviation."""
    order = seeded_permutation(x.shape[0], seed)
    n_val = round(x.shape[0] * val_fraction)
    val, train = order[:n_val], order[n_val:]
    mean = x[train].mean(dim=0)
    std = x[train].std(dim=0)
    std = torch.where(std < 1e-3, torch.ones_like(std), std)  # constant pixels stay as they are
    scaled = (x - mean) / std
    return Split(scaled[train], y[train], scaled[val], y[val])


def bundled_path(file: str) -> Path | None:
    """Where scikit-learn keeps its bundled ``file``; None if not installed or kept elsewhere."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / file
    return path if path.is_file() else None


def bundled(file: str, header_lines: int, loader: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and target (the last column) of ``file`` in scikit-learn's bundled data.

    Read as CSV; where the file is not found, scikit-learn's ``loader`` reads it.
    """
    path = bundled_path(file)
    if path is None:
        import sklearn.datasets

        data = getattr(sklearn.datasets, loader)()
        return data.data, data.target
    table = np.loadtxt(path, delimiter=",", skiprows=header_lines, dtype=np.float64)
    return table[:, :-1], table[:, -1]


class Digits(SplitTask):
    """8x8 handwritten digits, 10 classes, 1797 images; an MLP; metric ``val_accuracy``.

    The default model is three hidden layers of 512, the MLP size the project's GPU and tracking
    figures refer to.
    """

    key: ClassVar[str] = "digits"
    problem: ClassVar[Problem] = "multiclass"
    metric: ClassVar[str] = "val_accuracy"
    hidden = (512, 512, 512)

    def load(self) -> Split:
        """Read the bundled digits and split them."""
        features, target = bundled("digits.csv.gz", 0, "load_digits")
        x = torch.tensor(features, dtype=torch.float32)
        y = torch.tensor(target, dtype=torch.long)
        return standardised_split(x, y, self.seed)

    def build_model(self) -> nn.Module:
        """64 -> hidden -> 10."""
        return mlp(64, self.hidden, 10)


class BreastCancer(SplitTask):
    """Wisconsin breast cancer, binary, 569 samples, 30 features; metric ``val_auc``."""

    key: ClassVar[str] = "breast_cancer"
    problem: ClassVar[Problem] = "binary"
    metric: ClassVar[str] = "val_auc"
    hidden = (64, 64)

    def load(self) -> Split:
        """Read the bundled data set and split it."""
        features, target = bundled("breast_cancer.csv", 1, "load_breast_cancer")
        x = torch.tensor(features, dtype=torch.float32)
        y = torch.tensor(target, dtype=torch.float32)
        return standardised_split(x, y, self.seed)

    def build_model(self) -> nn.Module:
        """30 -> hidden -> 1 (a logit)."""
        return mlp(30, self.hidden, 1)
