"""A trial's lr/momentum PNG: drawn from a plan ahead of time, or from the run's history."""

from __future__ import annotations

import io
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric
from PIL import Image

from schedulers.schedules import OneCycleSchedule
from storage import open_store, resolve_store
from sweeps.runner._fused import drafted_handles
from sweeps.tracking import draft_trial_plot, trial_plot

SCHEDULE = {"cycle_min_lr": 0.01, "cycle_max_lr": 0.1, "cycle_first_step_size": 12}


def _png(client: MlflowClient, run_id: str, folder: Path) -> bytes | None:
    if "lr_momentum.png" not in {f.path for f in client.list_artifacts(run_id)}:
        return None
    return Path(client.download_artifacts(run_id, "lr_momentum.png", str(folder))).read_bytes()


def test_a_confirmed_draft_is_the_png_its_history_draws_and_an_unconfirmed_one_is_not_logged(
    tmp_path: Path,
) -> None:
    schedule = OneCycleSchedule(**SCHEDULE)
    lr = [schedule.lr(step) for step in range(40)]
    momentum = [schedule.momentum(step) for step in range(40)]
    with open_store(resolve_store(str(tmp_path / "store"), env={})) as store:
        client = store.mlflow
        experiment = client.create_experiment("plots")
        applied, planned_only = (client.create_run(experiment).info.run_id for _ in range(2))
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, value, now, step)
            for key, series in (("lr", lr), ("momentum", momentum))
            for step, value in enumerate(series)
        ]
        client.log_batch(applied, metrics=metrics)

        draft_trial_plot(client, applied, lr=lr, momentum=momentum)
        trial_plot(client, applied, drafted=True)
        from_draft = _png(client, applied, tmp_path / "a")
        trial_plot(client, applied)  # drawn again, from the metric history
        from_history = _png(client, applied, tmp_path / "b")
        assert from_draft is not None and from_draft == from_history

        # A run with no history at all gets its PNG only from a confirmed draft: so the
        # confirmed one above was the draft, not a drawing from history.
        draft_trial_plot(client, planned_only, lr=lr, momentum=None)
        trial_plot(client, planned_only)  # not confirmed: the draft is dropped, not logged
        assert _png(client, planned_only, tmp_path / "c") is None
        trial_plot(client, planned_only, drafted=True)  # nothing left to confirm
        assert _png(client, planned_only, tmp_path / "d") is None
        draft_trial_plot(client, planned_only, lr=lr, momentum=None)
        trial_plot(client, planned_only, drafted=True)
        single_panel = _png(client, planned_only, tmp_path / "e")
        assert single_panel is not None
    # No momentum in the plan: the lr panel alone.
    heights = [Image.open(io.BytesIO(png)).height for png in (from_draft, single_panel)]
    assert heights[1] < heights[0]


def test_only_trials_that_applied_every_planned_update_have_their_draft_logged() -> None:
    ran = {"full": 40, "pruned": 12, "diverged": 39, "failed": None}
    assert drafted_handles(40, ran) == {"full"}
    assert drafted_handles(0, {"full": 40}) == set()  # nothing drafted (too large a batch)
