"""``onecycle submit --slurm`` and ``onecycle cancel`` on the local SLURM cluster, for real.

The cluster is one node on this machine (``.ci/slurm-up``); the store is PostgreSQL with a
password (the test server trusts local users, so any password gets in), given in the URL of
``--store`` or as ``PGPASSWORD`` beside ``ONECYCLE_STORE``, which must reach the workers
through the store file only.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from storage import Store, StoreSpec, open_store, resolve_store
from sweeps.cli import main
from sweeps.runner._requeue import RETRY_OF
from sweeps.slurm import jobs_of
from sweeps.slurm._tools import active_jobs
from tests.conftest import store_args
from tests.fixtures import digits_sweep, unique_prefix, write_sweep
from tests.later_drops import drop_later
from tests.requirements import postgres_url, require_slurm

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]

PASSWORD = "slurm-test-pa55word"


@pytest.fixture
def spec() -> Iterator[StoreSpec]:
    """A fresh PostgreSQL store whose URL carries :data:`PASSWORD`."""
    require_slurm()
    server = make_url(postgres_url()).set(password=PASSWORD).render_as_string(False)
    prefix = unique_prefix("slurm")
    yield resolve_store(server, db_prefix=prefix, env={})
    drop_later(server, prefix)


def _submit(
    path: Path, spec: StoreSpec, folder: Path, store: list[str] | None = None, workers: int = 2
) -> str:
    flags = ["--slurm", "--workers", str(workers), "--dir", str(folder)]
    given = store_args(spec) if store is None else store
    assert main(["submit", str(path), *flags, *given]) == 0
    with open_store(spec) as store:
        study = _study(store, path.stem)
        return jobs_of(study)[-1]


def _study(store: Store, name: str) -> optuna.Study:
    record = store.sweeps.get(name)
    return optuna.load_study(study_name=record.study_name, storage=store.optuna_storage)


def _logs(folder: Path) -> str:
    return "\n".join(f"{p.name}: {p.read_text()[-1500:]}" for p in folder.rglob("*.log"))


def _wait_gone(job: str, folder: Path, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while active_jobs([job]):
        assert time.monotonic() < deadline, f"job {job} still there\n{_logs(folder)}"
        time.sleep(1)


def _study_trials(spec: StoreSpec, name: str) -> list[optuna.trial.FrozenTrial]:
    with open_store(spec) as store:
        return _study(store, name).get_trials(deepcopy=False)


def _training(study: optuna.Study, count: int) -> bool:
    """``count`` trials are running and have reported a value: the cancel lands mid-training."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return sum(1 for trial in running if trial.intermediate_values) >= count


def _workers(name: str) -> list[str]:
    found = subprocess.run(
        ["pgrep", "-f", f"sweeps worker {name} "], capture_output=True, text=True, check=False
    )
    return found.stdout.split()


def _secrets_not_in_job(job: str, folder: Path) -> None:
    """The script as written and as SLURM keeps it, and the job's record, lack the password."""
    script = next(folder.rglob("submit-*.sh")).read_text()
    assert PASSWORD not in script and "ONECYCLE_STORE_FILE=" in script
    shown = [
        subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout,
        subprocess.run(
            ["scontrol", "write", "batch_script", job, "-"], capture_output=True, text=True
        ).stdout,
    ]
    assert f"ArrayJobId={job}" in shown[0] and "exec " in shown[1]
    assert all(PASSWORD not in text for text in shown)


def test_submitted_workers_run_the_sweep_to_n_trials_and_never_see_the_password(
    spec: StoreSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, n_trials = "slurm-e2e", 6
    path = write_sweep(tmp_path, digits_sweep(name, n_trials, epochs=3))
    folder = tmp_path / "slurm"
    # The store from the environment, its password in libpq's PGPASSWORD and in a variable of
    # the user's own: the workers get it from the store file alone.
    monkeypatch.setenv(
        "ONECYCLE_STORE", make_url(postgres_url()).set(password=None).render_as_string(False)
    )
    monkeypatch.setenv("ONECYCLE_DB_PREFIX", spec.db_prefix)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    monkeypatch.setenv("MY_DSN", f"host=db password={PASSWORD}")
    job = _submit(path, spec, folder, store=[])

    # Where a job's secrets could show: the script, the job's record, and each running
    # worker's command line and environment.
    _secrets_not_in_job(job, folder)
    deadline = time.monotonic() + 120
    while not _workers(name) and active_jobs([job]) and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = _workers(name)
    assert pids, f"no worker process seen\n{_logs(folder)}"
    for pid in pids:
        with (
            open(f"/proc/{pid}/cmdline", "rb") as cmdline,
            open(f"/proc/{pid}/environ", "rb") as environ,
        ):
            assert PASSWORD.encode() not in cmdline.read() + environ.read()

    _wait_gone(job, folder)
    with open_store(spec) as store:
        record = store.sweeps.get(name)
        trials = _study(store, name).get_trials(deepcopy=False)
        runs = store.mlflow.search_runs(
            [record.mlflow_experiment_id], filter_string="tags.`onecycle.trial_number` != ''"
        )
        artifacts = store.mlflow.list_artifacts(record.mlflow_parent_run_id, "slurm")
    assert record.status == "finished", _logs(folder)
    assert [t.number for t in trials] == list(range(n_trials))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    tags = [str(t.user_attrs["worker"]) for t in trials]
    assert all(re.fullmatch(rf"\S+:\d+ slurm:{job}_[01]", tag) for tag in tags), tags
    assert len(runs) == n_trials and all(run.info.status != "RUNNING" for run in runs)
    assert [a.path for a in artifacts] == [f"slurm/submit-{job}.sh"]
    (store_file,) = (folder / name).glob("store-*.env")
    assert store_file.stat().st_mode & 0o777 == 0o600 and PASSWORD in store_file.read_text()

    capsys.readouterr()
    assert main(["status", name, "--json", *store_args(spec)]) == 0
    (shown,) = json.loads(capsys.readouterr().out)
    assert shown["slurm_jobs"] == [job]
    assert {row["slurm_task"] for row in shown["trials"]} <= {f"{job}_0", f"{job}_1"}
    assert len(shown["trials"]) == n_trials
    assert main(["status", name, *store_args(spec)]) == 0
    assert f"SLURM jobs: {job} " in capsys.readouterr().out


def test_cancel_ends_the_jobs_leaves_nothing_running_and_a_second_submit_finishes(
    spec: StoreSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, n_trials = "slurm-cancel", 2
    # Each trial trains, reports, then waits while the hold file exists: the cancel lands while
    # both run, however loaded the machine, and the waiting costs no CPU (1,500 epochs of
    # digits did the same for 80 CPU-s). The second submit's retries find the file gone.
    hold = tmp_path / "hold"
    hold.touch()
    config = digits_sweep(name, n_trials, objective={"metric": "val_accuracy"})
    config["workload"] = {
        "entrypoint": "tests.failures_tests.user_code:held",
        "epochs": 1,
        "options": {"hold": str(hold)},
    }
    path = write_sweep(tmp_path, config)
    folder = tmp_path / "slurm"
    try:
        first = _submit(path, spec, folder)  # the password in --store's URL this time
        _secrets_not_in_job(first, folder)
        deadline = time.monotonic() + 180
        with open_store(spec) as store:
            study = _study(store, name)
            while not _training(study, n_trials):
                assert time.monotonic() < deadline, f"the trials never started\n{_logs(folder)}"
                assert active_jobs([first]), f"the job ended early\n{_logs(folder)}"
                time.sleep(0.5)
        capsys.readouterr()
        assert main(["cancel", name, *store_args(spec)]) == 0
        assert f"cancelled SLURM jobs {first} of sweep {name}" in capsys.readouterr().out
        assert not active_jobs([first])
        with open_store(spec) as store:
            record = store.sweeps.get(name)
            trials = _study(store, name).get_trials(deepcopy=False)
            runs = store.mlflow.search_runs([record.mlflow_experiment_id])
        assert record.status == "stopped"
        interrupted = [t for t in trials if t.state == TrialState.FAIL]
        originals = [t for t in interrupted if RETRY_OF not in t.user_attrs]
        # Each interrupted trial is queued again. A retry may already have been taken by a worker
        # still stopping, so the retries are counted in any state, none of them RUNNING; one that
        # the stopping worker failed in turn is queued again only if that worker got so far before
        # SLURM's kill (on a loaded CI machine it did not), so only the originals are counted.
        queued = [t for t in trials if RETRY_OF in t.user_attrs]
        assert len(originals) >= n_trials, trials
        assert not [t for t in trials if t.state == TrialState.RUNNING]
        reasons = {t.number: str(t.user_attrs.get("failure_reason")) for t in interrupted}
        assert all(reason.startswith("KeyboardInterrupt") for reason in reasons.values()), reasons
        retried = sorted(t.user_attrs[RETRY_OF] for t in queued)
        assert set(retried) >= {t.number for t in originals}, trials
        assert len(retried) == len(set(retried)), trials  # each queued once
        assert runs and all(run.info.status != "RUNNING" for run in runs)  # the parent's too

    finally:
        hold.unlink(missing_ok=True)  # a failure above leaves no job waiting on it
    second = _submit(path, spec, folder)
    assert second != first
    _wait_gone(second, folder, timeout_s=900)
    with open_store(spec) as store:
        record = store.sweeps.get(name)
        trials = _study(store, name).get_trials(deepcopy=False)
        runs = store.mlflow.search_runs([record.mlflow_experiment_id])
    assert record.status == "finished", _logs(folder)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == n_trials
    retries = [t for t in _study_trials(spec, name) if RETRY_OF in t.user_attrs]
    by_number = {t.number: t for t in retries}
    for retry in [t for t in retries if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]:
        original = next(t for t in interrupted if t.number == retry.user_attrs[RETRY_OF])
        assert retry.params == original.params  # the same configuration
    assert by_number
    assert all(f"slurm:{second}_" in str(t.user_attrs["worker"]) for t in finished)
    assert all(run.info.status != "RUNNING" for run in runs)


def test_cancel_fails_and_queues_again_a_trial_a_killed_worker_left_running(
    spec: StoreSpec, tmp_path: Path
) -> None:
    """A worker SLURM SIGKILLed (past KillWait) never closed its trial: cancel does, once its
    job is out of the queue, and ends the trial's run."""
    from sweeps.runner import create_or_resume, load_config
    from sweeps.slurm._cancel import CANCELLED_REASON
    from sweeps.slurm._jobs import record_job

    name = "slurm-left"
    config = load_config(write_sweep(tmp_path, digits_sweep(name, 3)))
    with open_store(spec) as store:
        record, _ = create_or_resume(store, config)
        study = _study(store, name)
        record_job(study, "999999", 1, "submit.sh")  # a job id SLURM no longer knows
        left = study.ask()
        left.suggest_float("cycle_max_lr", 0.01, 0.1)
        left.set_user_attr("worker", "node3:4242 slurm:999999_0")
        run = store.mlflow.create_run(record.mlflow_experiment_id)
        left.set_user_attr("mlflow_run_id", run.info.run_id)
        other = study.ask()  # a workstation's worker: not the job's to close
        other.set_user_attr("worker", "laptop:77")
        # A worker killed after failing its trial as interrupted, before queuing it again.
        failed = study.ask()
        failed.suggest_float("cycle_max_lr", 0.01, 0.1)
        failed.set_user_attr("worker", "node3:4343 slurm:999999_1")
        failed.set_user_attr("failure_reason", "KeyboardInterrupt: SIGTERM")
        study.tell(failed, state=TrialState.FAIL)
        # A queued retry a stopping worker took and failed before it tagged it.
        study.enqueue_trial({"cycle_max_lr": 0.05}, user_attrs={RETRY_OF: 99, "retry": 1})
        untagged = study.ask()
        untagged.suggest_float("cycle_max_lr", 0.01, 0.1)
        study.tell(untagged, state=TrialState.FAIL)
    assert main(["cancel", name, *store_args(spec)]) == 0
    with open_store(spec) as store:
        trials = _study(store, name).get_trials(deepcopy=False)
        status = store.mlflow.get_run(run.info.run_id).info.status
        record = store.sweeps.get(name)
    by_number = {t.number: t for t in trials}
    assert by_number[left.number].state == TrialState.FAIL
    assert by_number[left.number].user_attrs["failure_reason"] == CANCELLED_REASON
    assert by_number[other.number].state == TrialState.RUNNING
    queued = {t.user_attrs[RETRY_OF]: t for t in trials if t.state == TrialState.WAITING}
    assert sorted(queued) == [left.number, failed.number, untagged.number]
    for number, retry in queued.items():
        assert retry.system_attrs["fixed_params"] == by_number[number].params
    assert status == "FAILED"
    assert record.status != "stopped"  # another worker's trial still runs
