"""A training function that does no training: the coordination benchmark's objective."""

from __future__ import annotations

import random
import time
from typing import Any


def train(ctx: Any) -> dict[str, float]:
    """Report one evaluation and return at once, so only the sweep machinery is timed.

    ``options.sleep_s`` waits that long first: a trial that is still running when something
    else happens (the storage proxy restarting, in its test).
    """
    time.sleep(float((ctx.options or {}).get("sleep_s", 0.0)))
    value = random.Random(hash(tuple(sorted(ctx.params.items())))).random()
    ctx.report({"val_accuracy": value})
    return {"val_accuracy": value}
