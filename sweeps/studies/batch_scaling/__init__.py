"""The batch-scaling study: Fixed, LinearScale and 1-Cycle at 8x the batch.

The tutorial's comparison, rerun; see ``docs/batch_scaling.md``.
"""

from __future__ import annotations

from sweeps.studies.batch_scaling._config import load_study, parse_study
from sweeps.studies.batch_scaling._report import table_rows, write_report
from sweeps.studies.batch_scaling._study import CURVE_TAG, run_study

__all__ = [
    "CURVE_TAG",
    "load_study",
    "parse_study",
    "run_study",
    "table_rows",
    "write_report",
]
