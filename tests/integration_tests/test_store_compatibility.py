"""A store written by the code before the layout change opens and resumes after it.

The sweep is created by the last revision before ``sweeps/`` became feature subpackages
(``git archive`` of it, run with the same interpreter), then resumed with a raised ``n_trials``
by this tree: the same study, experiment and parent run, the new trials beside the old ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import optuna
import pytest
import yaml

from storage import open_store, resolve_store
from sweeps.cli import main
from tests.conftest import store_args

ROOT = Path(__file__).resolve().parents[2]
BEFORE_LAYOUT = "4b99d69"


def _old_tree(target: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", BEFORE_LAYOUT, "schedulers", "storage", "sweeps"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        pytest.fail(f"git archive {BEFORE_LAYOUT} failed: {archive.stderr.decode()[-300:]}")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target


@pytest.mark.slow
def test_a_store_from_before_the_layout_resumes(tmp_path: Path) -> None:
    old = _old_tree(tmp_path / "old")
    assert (old / "sweeps" / "sweep_runner.py").exists()  # really the flat layout
    sweep = {
        "name": "compat",
        "workload": {
            "builtin": "digits",
            "batch_size": 256,
            "epochs": 1,
            "device": "cpu",
            "options": {"hidden": [8]},
        },
        "search": {
            "n_trials": 2,
            "sampler": "random",
            "pruner": "none",
            "space": {
                "cycle_min_lr": {"low": 1e-3, "high": 1e-2, "log": True},
                "cycle_max_lr": {"low": 1e-2, "high": 0.1, "log": True},
            },
        },
    }
    path = tmp_path / "compat.yaml"
    path.write_text(yaml.safe_dump(sweep))
    spec = resolve_store(str(tmp_path / "store"), env={})
    created = subprocess.run(
        [sys.executable, "-m", "sweeps", "run", str(path), *store_args(spec)],
        env={**os.environ, "PYTHONPATH": str(old)},
        cwd=old,
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr[-2000:]
    with open_store(spec) as store:
        before = store.sweeps.get("compat")
    sweep["search"]["n_trials"] = 4
    path.write_text(yaml.safe_dump(sweep))
    assert main(["run", str(path), *store_args(spec)]) == 0
    with open_store(spec) as store:
        after = store.sweeps.get("compat")
        assert (after.study_name, after.mlflow_parent_run_id) == (
            before.study_name,
            before.mlflow_parent_run_id,
        )
        study = optuna.load_study(study_name="compat", storage=store.optuna_storage)
        trials = study.get_trials()
        assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
        assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
        parent = store.mlflow.get_run(after.mlflow_parent_run_id)
        assert json.loads(parent.data.tags["onecycle.summary"]) == {"finished": 4}
