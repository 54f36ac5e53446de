"""The LR range test: the run, its suggestion rule, its report and its MLflow record.

See ``docs/range_test.md``.
"""

from __future__ import annotations

from sweeps.range_test._report import plot_range_test
from sweeps.range_test._rule import DivergenceWatch, smooth, suggest
from sweeps.range_test._run import RangeTestSettings, run_range_test
from sweeps.range_test._session import record, run_for_config, settings_for

__all__ = [
    "DivergenceWatch",
    "RangeTestSettings",
    "plot_range_test",
    "record",
    "run_for_config",
    "run_range_test",
    "settings_for",
    "smooth",
    "suggest",
]
