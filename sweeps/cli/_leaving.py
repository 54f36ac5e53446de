"""Leaving the process without the interpreter's teardown of torch's and MLflow's modules.

Tearing down what ``import torch`` and ``import mlflow`` loaded costs the interpreter about a
second at exit (``benchmarks/bench_overhead.py``), after the command's work is done and its
output printed. The CLI exits as usual (other threads are waited for, then every ``atexit``
handler runs) and its own handler, registered first so that it runs last, flushes logging and
the standard streams and ends the process there. Library use (``sweeps.cli.main`` called in a
process of the user's) never registers it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys


class _Leaving:
    """The exit code the last handler ends the process with (1 until the command returns)."""

    code = 1


def skip_teardown() -> None:
    """Register the last ``atexit`` handler: it ends the process before module teardown."""
    atexit.register(_leave)


def set_code(code: int) -> None:
    """The exit code to end with, once the command has returned."""
    _Leaving.code = code


def _leave() -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(_Leaving.code)
