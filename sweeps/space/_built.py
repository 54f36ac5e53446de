"""One search space per sweep config and process.

The sweep file's check, the sweep's record and its runner all need the config's space, and
building one checks every corner of it and builds a grid sampler's whole grid: built once,
the others get the same one (it is not changed after it is built).
"""

from __future__ import annotations

from collections import OrderedDict

from sweeps.config import SweepConfig
from sweeps.space._search_space import SearchSpace

#: Spaces kept, by the config they were built from; a process that runs many commands (tests,
#: a notebook calling ``sweeps.cli.main``) keeps the last few.
KEPT = 8
_BUILT: OrderedDict[str, SearchSpace] = OrderedDict()


def search_space(config: SweepConfig) -> SearchSpace:
    """``SearchSpace(config)``, built once for equal configs; a refused one raises every time."""
    key = config.model_dump_json()
    space = _BUILT.get(key)
    if space is None:
        space = _BUILT[key] = SearchSpace(config)
        while len(_BUILT) > KEPT:
            _BUILT.popitem(last=False)
    else:
        _BUILT.move_to_end(key)
    return space


def check_space(config: SweepConfig) -> None:
    """Refuse (``ValueError``) a space where some sampled configuration is no valid schedule.

    A space with ``auto`` bounds is checked once the range test has set them.
    """
    if not config.needs_range_test:
        search_space(config)
