"""Built-in workloads: real bundled data or generated data, deterministic, the right metric."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from sklearn.metrics import roc_auc_score

from sweeps.trials import TrainSettings, train
from sweeps.workloads import BUILTIN, build_workload
from sweeps.workloads.metrics import binary_auc

CPU = torch.device("cpu")
SCHEDULE = dict(
    cycle_min_lr=0.005,
    cycle_max_lr=0.05,
    cycle_first_step_size=30,
    cycle_min_mom=0.85,
    cycle_max_mom=0.95,
)
CASES = {
    "digits": ({"hidden": [64]}, 64, "val_accuracy", 0.85),
    "breast_cancer": ({}, 32, "val_auc", 0.95),
    "synthetic_ctr": ({"rows": 20_000, "hidden": [64]}, 256, "val_auc", 0.70),
}


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_workload_learns_and_reports_its_metric(name: str) -> None:
    options, batch, metric, floor = CASES[name]
    workload = build_workload(name, batch, 0, CPU, **options)
    assert workload.metric == metric
    result = train(workload, SCHEDULE, TrainSettings(epochs=4, metric=metric))
    assert result.diverged is None
    assert result.final[metric] >= floor, result.final
    assert result.steps == 4 * workload.steps_per_epoch


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_same_seed_same_run_on_cpu(name: str) -> None:
    options, batch, metric, _ = CASES[name]
    runs = [
        train(
            build_workload(name, batch, 3, CPU, **options),
            SCHEDULE,
            TrainSettings(epochs=2, seed=3, metric=metric),
        )
        for _ in range(2)
    ]
    assert runs[0].evaluations == runs[1].evaluations


def test_synthetic_ctr_size_and_base_rate_are_configurable() -> None:
    workload = build_workload("synthetic_ctr", 512, 0, CPU, rows=300_000)
    split = workload.split
    assert split.x_train.shape[0] + split.x_val.shape[0] == 300_000
    assert 0.05 < float(split.y_train.mean()) < 0.5
    with pytest.raises(ValueError, match=r"`rows` must be >= 1000, got 10"):
        build_workload("synthetic_ctr", 512, 0, CPU, rows=10)


def test_auc_matches_scikit_learn_with_ties() -> None:
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 20, (500,), generator=generator).float()
    labels = torch.bernoulli(torch.full((500,), 0.3), generator=generator)
    assert binary_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_unknown_workload_and_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match=r"`workload\.builtin` must be one of"):
        build_workload("mnist", 64, 0, CPU)
    with pytest.raises(ValueError, match="`hidden` must list positive layer widths"):
        build_workload("digits", 64, 0, CPU, hidden=[0])


@pytest.mark.parametrize(
    ("file", "header", "loader"),
    [("digits.csv.gz", 0, "load_digits"), ("breast_cancer.csv", 1, "load_breast_cancer")],
)
def test_bundled_data_read_without_scikit_learn_is_scikit_learns(
    file: str, header: int, loader: str
) -> None:
    import numpy as np
    import sklearn.datasets

    from sweeps.workloads.sklearn_data import bundled, bundled_path

    assert bundled_path(file) is not None, "scikit-learn keeps its data elsewhere: its loader runs"
    found = bundled(file, header, loader)
    data = getattr(sklearn.datasets, loader)()
    assert np.array_equal(found[0], data.data)
    assert np.array_equal(found[1], data.target)


def test_a_builtin_workload_trains_without_importing_scikit_learn() -> None:
    script = (
        "import sys, torch; from sweeps.workloads import build_workload; "
        "[build_workload(n, 32, 0, torch.device('cpu')).split "
        "for n in ('digits', 'breast_cancer')]; print('sklearn' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "False"
