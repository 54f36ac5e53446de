"""A trial script that records its process group and then waits: for the interruption test."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import sweeps


def main() -> None:
    trial = sweeps.current_trial()
    assert trial is not None
    (Path(sys.argv[1]) / "script.pgid").write_text(str(os.getpgid(0)))
    time.sleep(600)


if __name__ == "__main__":
    main()
