"""The garbage collector kept off while modules load: their objects frozen out of its sweeps after."""

from __future__ import annotations

import json
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


# The ``onecycle`` command's own process: its command (here one that reports and waits) starts
# with the collector paused; the timer then freezes what was loaded and turns it back on.
ENTRY = """
import gc, json, os, sys, time, weakref
import storage.gc_freeze as gc_freeze
import sweeps.cli as cli

gc_freeze.START_UP_S = 0.3
seen = {}

class Made:
    pass

def command(argv=None):
    seen["paused"] = not gc.isenabled()
    early = Made()
    cycle = Made()
    cycle.me = cycle  # garbage the pause leaves: collected at its end, not frozen
    gone = weakref.ref(cycle)
    del cycle
    child = os.fork()  # a data loader's worker, say: its collector is on at once
    if child == 0:
        os._exit(0 if gc.isenabled() else 3)
    seen["child"] = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    time.sleep(1.0)
    later = Made()
    swept = gc.get_objects()
    seen["on_after"] = gc.isenabled()
    seen["early_frozen"] = not any(o is early for o in swept)
    seen["later_swept"] = any(o is later for o in swept)
    seen["cycle_freed"] = gone() is None
    print(json.dumps(seen), flush=True)
    return 7

sys.argv = ["onecycle"]
cli.main = command
cli.entry()
"""


def test_the_command_process_pauses_the_collector_at_start_then_freezes_what_it_loaded() -> None:
    done = subprocess.run([sys.executable, "-c", ENTRY], capture_output=True, text=True)
    assert done.returncode == 7, done.stderr  # the command's code, through the usual exit
    assert json.loads(done.stdout) == {
        "paused": True,
        "child": 0,
        "on_after": True,
        "early_frozen": True,
        "later_swept": True,
        "cycle_freed": True,
    }


def test_a_caller_with_the_collector_off_keeps_it_off() -> None:
    check = (
        "import gc, time\n"
        "from storage.gc_freeze import pause_for_start_up, end_start_up_pause\n"
        "gc.disable(); pause_for_start_up(0.05); time.sleep(0.3); end_start_up_pause()\n"
        "assert not gc.isenabled() and gc.get_freeze_count() == 0\n"
        "gc.enable(); pause_for_start_up(30); assert not gc.isenabled()\n"
        "end_start_up_pause(); assert gc.isenabled() and gc.get_freeze_count() > 0\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
