"""Trial times the bulk writer writes read back as Optuna's own do, in any time zone.

Optuna 5 keeps trial times as naive UTC and Optuna 4 as naive local time; a writer or a check
that assumes one convention is off by the zone's offset under the other. Each zone runs in its
own interpreter (``TZ`` is read at start) with whichever Optuna is installed: `.ci/run` runs
this on the oldest allowed Optuna as well as the newest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.versions

SCRIPT = """
import json, sys
from datetime import datetime, timedelta
import optuna
from storage import open_store, resolve_store
from storage.bulk_trials import BulkTrialWriter, Finish, NewTrial
from storage.trial_queries import running_without_heartbeat
from storage.trial_times import keeps_utc, optuna_now

optuna.logging.set_verbosity(optuna.logging.WARNING)
with open_store(resolve_store(sys.argv[1], env={})) as store:
    study = optuna.create_study(study_name="times", storage=store.optuna_storage)
    api = study.ask()
    writer = BulkTrialWriter.for_engine(store.optuna_storage.engine)
    assert writer is not None, "the bulk writer stepped aside"
    bulk = writer.start(study._study_id, [NewTrial({}, {})])[0]
    minute = timedelta(minutes=1)
    lost_soon = running_without_heartbeat(study, optuna_now() + minute)
    lost_now = running_without_heartbeat(study, optuna_now() - minute)
    writer.finish([Finish(bulk.trial_id, "COMPLETE", 1.0)])
    study.tell(api, 2.0)
    now = datetime.now()
    trials = {t.number: t for t in study.get_trials()}
    print(json.dumps({
        "utc": keeps_utc(),
        "starts": [abs((t.datetime_start - now).total_seconds()) for t in trials.values()],
        "ends": [abs((t.datetime_complete - now).total_seconds()) for t in trials.values()],
        "lost_soon": sorted(number for _, number in lost_soon),
        "lost_now": lost_now,
    }))
"""


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Chatham"])
def test_bulk_and_api_trial_times_agree_in_every_zone(zone: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "store")],
        env={**os.environ, "TZ": zone},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    # Both trials, the API's and the bulk writer's, read back within a minute of local now
    # (a wrong convention is off by hours in three of the four zones).
    assert max(found["starts"]) < 60 and max(found["ends"]) < 60, found
    # The lost-trial check compares in the same convention: the API's trial (the bulk one has
    # a heartbeat from its start) is older than a minute from now, not older than a minute ago.
    assert found["lost_soon"] == [0] and found["lost_now"] == [], found
