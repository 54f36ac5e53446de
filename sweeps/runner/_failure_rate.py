"""When a sweep stops for its failures: a share of them past ``search.max_failure_rate``.

A worker checks before each trial it starts; see ``docs/failures.md`` (sections 3 and 4).
"""

from __future__ import annotations

from sweeps.config import SweepConfig
from sweeps.errors import TooManyFailures
from sweeps.runner._outcome import SweepOutcome

#: Ended trials a worker waits for before a share of failures can stop the sweep.
MIN_TRIALS_FOR_FAILURE_RATE = 4


def check_failure_rate(
    outcome: SweepOutcome, since: SweepOutcome, config: SweepConfig, name: str
) -> None:
    """Stop the sweep (:class:`TooManyFailures`) once failures pass ``search.max_failure_rate``.

    Counted over the trials ended since this worker started (``since``), so a sweep stopped for
    its failures resumes once its code is fixed. Where nothing succeeds, a rate of 1.0 still
    stops after ``n_trials`` failures rather than retrying forever.
    """
    failed = outcome.failed - since.failed
    ended = outcome.finished + outcome.failed - since.finished - since.failed
    if outcome.done or ended < MIN_TRIALS_FOR_FAILURE_RATE:
        return
    rate = config.search.max_failure_rate
    if failed / ended > rate:
        raise TooManyFailures(
            f"sweep {name!r} stopped: {failed} of {ended} trials failed, above "
            f"search.max_failure_rate={rate}; see the failure reasons with `onecycle status`"
        )
    if failed == ended >= config.search.n_trials:
        raise TooManyFailures(
            f"sweep {name!r} stopped: all {ended} trials failed (as many as search.n_trials; "
            f"search.max_failure_rate={rate} never stops it); see the failure reasons with "
            "`onecycle status`"
        )
