"""The sweep loop: create or resume a sweep, coordinate its workers, run and record trials.

A sweep file is read here too (:func:`load_config`): the schema, then the space and the
entrypoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sweeps._lazy import lazy_names

if TYPE_CHECKING:
    from sweeps.runner._coordination import (
        LOST_REASON,
        STALE_REASON,
        Heartbeats,
        fail_stale,
        fail_trials_without_heartbeat,
    )
    from sweeps.runner._lifecycle import create_or_resume
    from sweeps.runner._local_workers import run_local_workers, worker_env
    from sweeps.runner._loop import run_sweep
    from sweeps.runner._outcome import Progress, SweepOutcome, best_block, close_parent, outcome_of
    from sweeps.runner._settings import (
        check_workload,
        resolve_device,
        run_params,
        settings_of,
        workload_factory,
    )
    from sweeps.runner._slots import check_gpu_choice, gpu_slots
    from sweeps.runner._sweep_file import load_config, parse_config

#: Loaded on first use: most of the runner needs torch, and read-only commands need none.
_HOMES = {
    "Heartbeats": "sweeps.runner._coordination",
    "LOST_REASON": "sweeps.runner._coordination",
    "Progress": "sweeps.runner._outcome",
    "STALE_REASON": "sweeps.runner._coordination",
    "SweepOutcome": "sweeps.runner._outcome",
    "best_block": "sweeps.runner._outcome",
    "check_gpu_choice": "sweeps.runner._slots",
    "check_workload": "sweeps.runner._settings",
    "close_parent": "sweeps.runner._outcome",
    "create_or_resume": "sweeps.runner._lifecycle",
    "fail_stale": "sweeps.runner._coordination",
    "fail_trials_without_heartbeat": "sweeps.runner._coordination",
    "gpu_slots": "sweeps.runner._slots",
    "load_config": "sweeps.runner._sweep_file",
    "outcome_of": "sweeps.runner._outcome",
    "parse_config": "sweeps.runner._sweep_file",
    "resolve_device": "sweeps.runner._settings",
    "run_local_workers": "sweeps.runner._local_workers",
    "run_params": "sweeps.runner._settings",
    "run_sweep": "sweeps.runner._loop",
    "settings_of": "sweeps.runner._settings",
    "worker_env": "sweeps.runner._local_workers",
    "workload_factory": "sweeps.runner._settings",
}

__getattr__ = lazy_names(__name__, _HOMES)


__all__ = [
    "LOST_REASON",
    "STALE_REASON",
    "Heartbeats",
    "Progress",
    "SweepOutcome",
    "best_block",
    "check_gpu_choice",
    "check_workload",
    "close_parent",
    "create_or_resume",
    "fail_stale",
    "fail_trials_without_heartbeat",
    "gpu_slots",
    "load_config",
    "outcome_of",
    "parse_config",
    "resolve_device",
    "run_local_workers",
    "run_params",
    "run_sweep",
    "settings_of",
    "worker_env",
    "workload_factory",
]
