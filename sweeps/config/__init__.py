"""The sweep-file schema: pydantic models of what a sweep file may say (a leaf of sweeps/).

Only what the schema can check is checked here; the loader (:func:`sweeps.runner.load_config`)
adds what the search space and the entrypoint must check.
"""

from __future__ import annotations

from sweeps.config._files import load_mapping
from sweeps.config._recipe import RECIPE_HYPERBAND, RECIPE_MAX_LR, RECIPE_MIN_LR, RECIPE_TPE
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
from sweeps.config._search_options import HyperbandOptions, TpeOptions
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
    "RECIPE_HYPERBAND",
    "RECIPE_MAX_LR",
    "RECIPE_MIN_LR",
    "RECIPE_TPE",
    "SCHEDULE_KEYS",
    "WORKLOAD_KINDS",
    "AutoRange",
    "Choices",
    "Execution",
    "HyperbandOptions",
    "Objective",
    "OptimizerName",
    "Range",
    "RangeTest",
    "RangeTestResult",
    "Search",
    "SpaceEntry",
    "Strict",
    "SweepConfig",
    "TpeOptions",
    "Workload",
    "format_error",
    "load_mapping",
    "parse_config",
]
