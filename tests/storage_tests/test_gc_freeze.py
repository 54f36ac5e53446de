"""Imports frozen out of the garbage collector: off while they run, restored as it was after."""

from __future__ import annotations

import subprocess
import sys

# Run in a fresh interpreter: freezing here would freeze the test process's own objects.
CHECK = """
import gc
from storage.gc_freeze import imports_frozen

class Made:
    pass

with imports_frozen():
    assert not gc.isenabled()
    import decimal, json  # noqa: F401
    inside = Made()
after = Made()
assert gc.isenabled()
# What the block made is out of the collector's sweeps; what comes after is in them.
swept = gc.get_objects()
assert gc.is_tracked(inside) and not any(o is inside for o in swept)
assert any(o is after for o in swept)
gc.disable()  # a caller that had it off keeps it off
with imports_frozen():
    import fractions  # noqa: F401
assert not gc.isenabled()
gc.enable()
try:
    with imports_frozen():
        raise KeyError("an import that fails")
except KeyError:
    assert gc.isenabled()
print("ok")
"""


def test_the_collector_is_off_during_the_imports_and_as_it_was_after() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
