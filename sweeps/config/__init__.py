"""The sweep-file schema: pydantic models of what a sweep file may say (a leaf of sweeps/).

Only what the schema can check is checked here; the loader (:func:`sweeps.runner.load_config`)
adds what the search space and the entrypoint must check.
"""

from __future__ import annotations

from sweeps.config._files import load_mapping
from sweeps.config._schema import (
    AUTO_KEYS,
    BUILTIN_METRICS,
    SCHEDULE_KEYS,
    AutoRange,
    Choices,
    Execution,
    Objective,
    Range,
    RangeTest,
    RangeTestResult,
    Search,
    SpaceEntry,
    SweepConfig,
    format_error,
    parse_config,
)
from sweeps.config._strict import Strict
from sweeps.config._workload import (
    FUSED_NEEDS_TASK,
    PLACEHOLDERS,
    WORKLOAD_KINDS,
    OptimizerName,
    Workload,
)

__all__ = [
    "AUTO_KEYS",
    "BUILTIN_METRICS",
    "FUSED_NEEDS_TASK",
    "PLACEHOLDERS",
    "SCHEDULE_KEYS",
    "WORKLOAD_KINDS",
    "AutoRange",
    "Choices",
    "Execution",
    "Objective",
    "OptimizerName",
    "Range",
    "RangeTest",
    "RangeTestResult",
    "Search",
    "SpaceEntry",
    "Strict",
    "SweepConfig",
    "Workload",
    "format_error",
    "load_mapping",
    "parse_config",
]
