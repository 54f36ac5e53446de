"""What a sweep and its trials write to MLflow: experiment, parent run, summary, artifacts."""

from __future__ import annotations

from sweeps.tracking._artifacts import (
    draft_trial_plot,
    trial_artifacts,
    trial_files,
    trial_plot,
)
from sweeps.tracking._parent import (
    PARENT_STATUS,
    SUMMARY_TAG,
    discard_parent,
    end_parent,
    log_parent_metrics,
    reopen_parent,
    write_summary,
)
from sweeps.tracking._sweep import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    ROLE_TAG,
    STUDY_TAG,
    SUMMARY_MODULES,
    SWEEP_TAG,
    direct_experiment_and_parent,
    ensure_experiment,
    log_sweep_summary,
    parent_run,
    start_parent_run,
)
from sweeps.tracking._tags import FAILURE_TAG, PRUNED_TAG, RUN_STATUS, STATE_TAG

__all__ = [
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "FAILURE_TAG",
    "PARENT_STATUS",
    "PRUNED_TAG",
    "ROLE_TAG",
    "RUN_STATUS",
    "STATE_TAG",
    "STUDY_TAG",
    "SUMMARY_MODULES",
    "SUMMARY_TAG",
    "SWEEP_TAG",
    "direct_experiment_and_parent",
    "discard_parent",
    "draft_trial_plot",
    "end_parent",
    "ensure_experiment",
    "log_parent_metrics",
    "log_sweep_summary",
    "parent_run",
    "reopen_parent",
    "start_parent_run",
    "trial_artifacts",
    "trial_files",
    "trial_plot",
    "write_summary",
]
