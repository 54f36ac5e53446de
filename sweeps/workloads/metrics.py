"""Validation metrics computed with torch on the training device (no scikit-learn round trip)."""

from __future__ import annotations

import torch
from torch import Tensor


def binary_auc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve via the rank-sum statistic, ties given their average rank.

    Example:
        >>> binary_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0.0, 0.0, 1.0, 1.0]))
        0.75
    """
    scores = scores.detach().double().flatten()
    labels = labels.detach().flatten() > 0.5
    positives = int(labels.sum())
    negatives = int(labels.numel()) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    sorted_scores, order = torch.sort(scores)
    ranks = torch.empty_like(sorted_scores)
    ranks[order] = torch.arange(1, scores.numel() + 1, dtype=torch.float64, device=scores.device)
    # Average ranks over ties: give every member of a run of equal scores the run's mean rank.
    unique, inverse, counts = torch.unique_consecutive(
        sorted_scores, return_inverse=True, return_counts=True
    )
    ends = torch.cumsum(counts, 0).double()
    mean_rank = ends - (counts.double() - 1) / 2
    ranks[order] = mean_rank[inverse]
    del unique
    rank_sum = float(ranks[labels].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
