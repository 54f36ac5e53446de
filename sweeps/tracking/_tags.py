"""The names of what a trial's MLflow run is tagged with, shared by every kind of trial."""

from __future__ import annotations

FAILURE_TAG = "onecycle.failure_reason"
PRUNED_TAG = "pruned"
STATE_TAG = "onecycle.trial_state"
#: Optuna's trial state -> the MLflow run status it ends with (FAIL carries ``FAILURE_TAG``).
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
