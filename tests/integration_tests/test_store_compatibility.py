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

from storage import open_store, resolve_store
from sweeps.cli import main
from tests.conftest import store_args
from tests.fixtures import CONTINUOUS_SPACE, digits_sweep, write_sweep

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
    space = {key: CONTINUOUS_SPACE[key] for key in ("cycle_min_lr", "cycle_max_lr")}
    sweep = digits_sweep("compat", 2, space=space, batch_size=256, hidden=[8], seed=None)
    path = write_sweep(tmp_path, sweep)
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
    write_sweep(tmp_path, sweep)
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
