"""Built-in workloads: :class:`sweeps.Task` subclasses on bundled or generated data.

Real data shipped with scikit-learn, or generated; no downloads.

Example:
    >>> import torch
    >>> workload = build_workload("digits", batch_size=64, seed=0, device=torch.device("cpu"))
    >>> workload.metric, workload.steps_per_epoch
    ('val_accuracy', 22)
"""

from __future__ import annotations

from typing import Any

import torch

from sweeps.workloads.base import Split, SplitTask
from sweeps.workloads.sklearn_data import BreastCancer, Digits
from sweeps.workloads.synthetic_ctr import SyntheticCTR

BUILTIN: dict[str, type[SplitTask]] = {
    cls.key: cls for cls in (Digits, BreastCancer, SyntheticCTR)
}


def build_workload(
    name: str, batch_size: int, seed: int, device: torch.device, **options: Any
) -> SplitTask:
    """Instantiate a built-in workload by name."""
    if name not in BUILTIN:
        raise ValueError(f"`workload.builtin` must be one of {sorted(BUILTIN)}, got {name!r}")
    return BUILTIN[name](batch_size, seed, device, **options)


__all__ = [
    "BUILTIN",
    "BreastCancer",
    "Digits",
    "Split",
    "SplitTask",
    "SyntheticCTR",
    "build_workload",
]
