"""Trial times as Optuna's RDB storage keeps them, whichever Optuna is installed.

Optuna 5 keeps ``datetime_start`` and ``datetime_complete`` as naive UTC; Optuna 4 kept naive
local time. Everything of ours that writes those columns (the bulk trial writer) or compares
with them (the lost-trial check) takes its times from here, so both agree with the Optuna that
reads them back in any time zone.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone

__all__ = ["keeps_utc", "optuna_now"]


@functools.cache
def keeps_utc() -> bool:
    """Whether the installed Optuna keeps trial times as naive UTC (5.0 on) or local time."""
    from optuna.storages._rdb import models

    return hasattr(models.TrialModel, "_datetime_start_utc")


def optuna_now() -> datetime:
    """Now, naive, in the convention the installed Optuna writes trial times in."""
    if keeps_utc():
        return datetime.now(timezone.utc).replace(tzinfo=None)
    return datetime.now()
