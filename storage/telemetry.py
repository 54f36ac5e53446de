"""MLflow's usage telemetry is off in every process this project runs, unless its user asks.

MLflow 3 reports usage to its developers from every process that imports it (and its UI server
from there too) unless ``MLFLOW_DISABLE_TELEMETRY`` is set. Sweeps run on private models and
data send nothing anywhere unasked. Importing ``storage``, which every command, worker and the
tracking writer does before MLflow, sets the switch in the process's environment, and every
process started from there inherits it: the tracking writer, local workers, a trial's command,
``onecycle ui``. ``ONECYCLE_TELEMETRY=1`` leaves MLflow's own setting as the user has it.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: Set to 1 to leave MLflow's telemetry setting alone.
TELEMETRY_ENV = "ONECYCLE_TELEMETRY"
#: MLflow's own switch.
MLFLOW_SWITCH = "MLFLOW_DISABLE_TELEMETRY"


def keep_telemetry_off(environ: MutableMapping[str, str] | None = None) -> None:
    """Turn MLflow's telemetry off in ``environ`` (this process's), unless the user opted in.

    Example:
        >>> env = {}
        >>> keep_telemetry_off(env)
        >>> env
        {'MLFLOW_DISABLE_TELEMETRY': 'true'}
        >>> env = {"ONECYCLE_TELEMETRY": "1"}
        >>> keep_telemetry_off(env)
        >>> env
        {'ONECYCLE_TELEMETRY': '1'}
    """
    target = os.environ if environ is None else environ
    if target.get(TELEMETRY_ENV) == "1":
        return
    target[MLFLOW_SWITCH] = "true"
