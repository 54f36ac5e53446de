"""Imports kept out of the cyclic garbage collector's full sweeps.

Importing MLflow, matplotlib or torch adds hundreds of thousands of objects that live as long
as the process. CPython runs a full collection each time its oldest generation has grown by a
quarter, so a process that imports them walks its whole heap again and again while doing so:
0.43 s of the tracking writer's CPU in a 16-trial fused sweep (six full collections, each
longer than the last), on the path that sweep's end waits on. Module objects are never garbage:
they are frozen out of the collector (:func:`gc.freeze`) instead of swept.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def imports_frozen() -> Iterator[None]:
    """Run the block (imports) with the collector off, then freeze what it left alive.

    Only for processes this project owns (the tracking writer): freezing in a caller's process
    would also keep that process's own garbage cycles of the moment for good.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
