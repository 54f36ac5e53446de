"""What ``onecycle submit --slurm`` writes and refuses, before SLURM is involved.

The job array script, the store file only its owner reads, the environment handed to sbatch
without the store's password, and the one-line refusals. The cluster itself is exercised in
``tests/integration_tests/test_slurm.py``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from storage import resolve_store
from storage.errors import StoreConfigError
from storage.store_file import ENV_STORE_FILE, KEYS, read_store_file, write_store_file
from sweeps.cli import main
from sweeps.cli._submit import store_settings
from sweeps.errors import UsageError
from sweeps.runner._requeue import MAX_RETRIES, RETRY, interrupted_trials, requeue
from sweeps.runner._worker_tag import (
    SUBMITTED,
    pid_of,
    requeues_when_stopped,
    slurm_job_of,
    slurm_task_of,
    worker_tag,
)
from sweeps.slurm import JobRequest, batch_script, loopback_hosts, refuse_local_store
from sweeps.slurm._store_reach import settings_with_password
from sweeps.slurm._tools import job_environment
from tests.fixtures import digits_sweep, write_sweep

PASSWORD = "pa55-word_for-tests"
URL = f"postgresql://ann:{PASSWORD}@db.example:5432/"


def test_the_script_is_a_job_array_of_workers_with_the_asked_resources(tmp_path: Path) -> None:
    request = JobRequest(
        "s1",
        4,
        gpus_per_worker=2,
        partition="gpu",
        time="01:30:00",
        sbatch_args=("--mem=16G", "--constraint=h200"),
        fused="auto",
        cpus_per_worker=8,
    )
    text = batch_script(request, "/venv/bin/python", tmp_path / "store.env", tmp_path / "logs")
    lines = text.splitlines()
    sbatch = [line.removeprefix("#SBATCH ") for line in lines if line.startswith("#SBATCH")]
    assert sbatch == [
        "--job-name=onecycle-s1",
        "--array=0-3",
        "--ntasks=1",
        f"--output={tmp_path / 'logs' / 's1-%A_%a.log'}",
        "--partition=gpu",
        "--time=01:30:00",
        "--signal=B:TERM@120",
        "--cpus-per-task=8",
        "--gpus-per-task=2",
        "--mem=16G",
        "--constraint=h200",
    ]
    assert f"export {ENV_STORE_FILE}={tmp_path / 'store.env'}" in lines
    assert f"unset {' '.join(KEYS)}" in lines and f"export {SUBMITTED}=1" in lines
    assert lines[-1] == "exec /venv/bin/python -m sweeps worker s1 --quiet --fused auto"


@pytest.mark.parametrize(
    ("request_", "flag"),
    [
        (JobRequest("s", 0), "--workers"),
        (JobRequest("s", 1, gpus_per_worker=-1), "--gpus-per-worker"),
        (JobRequest("s", 1, sbatch_args=("mem=16G",)), "--sbatch-arg"),
        (JobRequest("s", 1, sbatch_args=("--mem=1G\nrm -rf /",)), "--sbatch-arg"),
        (JobRequest("s", 1, sbatch_args=("--clusters=other",)), "--sbatch-arg"),
        (JobRequest("s", 1, sbatch_args=("-Mother",)), "--sbatch-arg"),
        (JobRequest("s", 1, sbatch_args=("--cluster=other",)), "--sbatch-arg"),
        (JobRequest("s", 1, cpus_per_worker=-2), "--cpus-per-worker"),
        (JobRequest("s", 1, partition="gpu\n#SBATCH --uid=0"), "--partition"),
        (JobRequest("s", 1, time="1:00 "), "--time"),
        (JobRequest("s", 1, time=""), "--time"),
    ],
)
def test_a_request_sbatch_would_misread_is_refused_naming_its_flag(
    request_: JobRequest, flag: str, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match=f"^{flag}"):
        batch_script(request_, "python", tmp_path / "f", tmp_path)


def test_the_store_file_is_the_owners_alone_and_resolves_the_store(tmp_path: Path) -> None:
    path = write_store_file(tmp_path / "job" / "store.env", {"ONECYCLE_STORE": URL})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    spec = resolve_store(env={ENV_STORE_FILE: str(path)})
    assert spec.kind == "postgresql" and PASSWORD in spec.optuna_url
    # The job's own variables win over the file.
    other = resolve_store(env={ENV_STORE_FILE: str(path), "ONECYCLE_DB_PREFIX": "mine"})
    assert other.db_prefix == "mine"
    # Rewriting a file someone loosened makes it the owner's again.
    path.chmod(0o644)
    write_store_file(path, {"ONECYCLE_STORE": URL})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_store_file_others_may_read_or_with_other_lines_is_refused(tmp_path: Path) -> None:
    path = write_store_file(tmp_path / "store.env", {"ONECYCLE_STORE": URL})
    path.chmod(0o640)
    with pytest.raises(StoreConfigError, match=r"mode 0600.*got mode 0640") as refused:
        read_store_file(str(path))
    assert PASSWORD not in str(refused.value)
    path.chmod(0o600)
    path.write_text(f"ONECYCLE_STORE={URL}\nPATH=/evil\n")
    with pytest.raises(StoreConfigError, match=r"line 2 .* got name 'PATH'"):
        read_store_file(str(path))
    with pytest.raises(StoreConfigError, match="readable store file"):
        read_store_file(str(tmp_path / "missing.env"))


def test_the_jobs_environment_holds_neither_the_store_nor_its_password() -> None:
    env = {
        "PATH": "/usr/bin",
        "ONECYCLE_STORE": URL,
        "ONECYCLE_MLFLOW_URI": "http://mlflow:5000",
        "PGPASSWORD": PASSWORD,
        "MY_DSN": f"host=db password={PASSWORD}",
        "CUDA_VISIBLE_DEVICES": "0",
        "SBATCH_CLUSTERS": "other",  # would send the job where cancel cannot follow it
    }
    kept = {"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "0"}
    assert job_environment([PASSWORD], env) == kept
    assert job_environment(["", "other"], env) == {**kept, "MY_DSN": env["MY_DSN"]}


def test_the_worker_tag_names_the_slurm_task_it_runs_in() -> None:
    assert " " not in worker_tag({})
    tag = worker_tag(
        {"SLURM_ARRAY_JOB_ID": "812", "SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "815"}
    )
    assert tag.endswith(" slurm:812_3") and pid_of(tag) == str(os.getpid())
    assert (slurm_job_of(tag), slurm_task_of(tag)) == ("812", "812_3")
    plain = worker_tag({"SLURM_JOB_ID": "77"})
    assert (slurm_job_of(plain), slurm_task_of(plain)) == ("77", "77")
    # Only a worker onecycle submitted queues its trial again when stopped: Ctrl+C in
    # `srun --pty` or `salloc` is its user stopping it.
    assert requeues_when_stopped(tag, {SUBMITTED: "1"})
    assert not requeues_when_stopped(tag, {}) and not requeues_when_stopped("laptop:9", {})


def test_submit_refuses_a_sqlite_store_and_a_missing_scheduler(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_sweep(tmp_path, digits_sweep("local", 2))
    store = ["--store", str(tmp_path / "store")]
    assert main(["submit", str(path), "--workers", "2", *store]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("--slurm: the scheduler to submit to (SLURM is the one so far), got none")
    )
    assert main(["submit", str(path), "--slurm", *store]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--store: SLURM workers on several nodes need a PostgreSQL" in err
    assert not (tmp_path / "store").exists()  # refused before anything was created
    assert main(["submit", str(path), "--slurm", "--sbatch-arg", "mem=1G", *store]) == 2
    assert "--sbatch-arg" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("store", "overrides", "flag"),
    [
        ("dir", {}, "--store"),
        (URL, {"optuna_storage": "sqlite:////shared/o.db"}, "--optuna-storage"),
        (URL, {"mlflow_uri": "file:///home/ann/mlruns"}, "--mlflow-uri"),
        (URL, {"mlflow_uri": "sqlite:////home/ann/m.db"}, "--mlflow-uri"),
    ],
)
def test_a_store_part_on_this_machines_disk_is_refused_naming_its_flag(
    store: str, overrides: dict[str, str], flag: str, tmp_path: Path
) -> None:
    spec = resolve_store(str(tmp_path / store) if store == "dir" else store, env={}, **overrides)
    with pytest.raises(UsageError, match=f"^{flag}: SLURM workers on several nodes") as refused:
        refuse_local_store(spec, allow_sqlite=False)
    assert PASSWORD not in str(refused.value)
    refuse_local_store(spec, allow_sqlite=True)  # every node shares that filesystem


def test_servers_every_node_reaches_are_accepted_and_loopback_ones_named(tmp_path: Path) -> None:
    # A directory store whose two parts are servers keeps nothing on this disk but artifacts.
    servers = resolve_store(
        str(tmp_path / "dir"),
        optuna_storage="postgresql://ann@db.example/o",
        mlflow_uri="http://mlflow.example:5000",
        env={},
    )
    for spec in (servers, resolve_store(URL, env={}), resolve_store("onecycle://proxy:13000")):
        refuse_local_store(spec, allow_sqlite=False)
        assert loopback_hosts(spec) == []
    local = resolve_store("postgresql://ann@localhost/", mlflow_uri="http://[::1]:5000", env={})
    assert loopback_hosts(local) == ["localhost", "::1"]
    socket = resolve_store(URL, optuna_storage="postgresql:///o?host=/run/pg", env={})
    assert loopback_hosts(socket) == ["a Unix socket"]
    assert loopback_hosts(resolve_store("onecycle://127.0.0.1:13000", env={})) == ["127.0.0.1"]


def test_pgpassword_goes_into_the_store_files_urls_that_lack_one() -> None:
    settings = {
        "ONECYCLE_STORE": "postgresql://ann@db:5432/",
        "ONECYCLE_OPTUNA_STORAGE": "postgresql+psycopg://ann@db/o?connect_timeout=3",
        "ONECYCLE_MLFLOW_URI": "http://mlflow:5000",
        "ONECYCLE_DB_PREFIX": "team",
    }
    assert settings_with_password(settings, {}) == settings
    done = settings_with_password(settings, {"PGPASSWORD": "p@ss:w/rd"})
    assert done["ONECYCLE_STORE"] == "postgresql://ann:p%40ss%3Aw%2Frd@db:5432/"
    assert done["ONECYCLE_OPTUNA_STORAGE"].startswith("postgresql+psycopg://ann:p%40ss%3Aw%2Frd@")
    assert done["ONECYCLE_MLFLOW_URI"] == "http://mlflow:5000"
    # A URL's own password wins, as libpq's does; a URL without a user gets PGUSER.
    assert settings_with_password({"ONECYCLE_STORE": URL}, {"PGPASSWORD": "x"}) == {
        "ONECYCLE_STORE": URL
    }
    bare = settings_with_password(
        {"ONECYCLE_STORE": "postgresql://db/"}, {"PGPASSWORD": "x", "PGUSER": "bob"}
    )
    assert bare == {"ONECYCLE_STORE": "postgresql://bob:x@db/"}
    assert resolve_store(env=done).optuna_url.startswith("postgresql+psycopg://ann:p%40ss")
    # A space (or any character a URL must encode) in PGPASSWORD still makes a URL the job reads.
    spaced = settings_with_password(
        {"ONECYCLE_STORE": "postgresql://ann@db/"}, {"PGPASSWORD": "a b"}
    )
    assert spaced == {"ONECYCLE_STORE": "postgresql://ann:a%20b@db/"}
    assert resolve_store(env=spaced).kind == "postgresql"


@pytest.mark.parametrize(
    ("store", "overrides"),
    [
        ("dir", {}),
        (URL, {}),
        (URL, {"mlflow_uri": "http://mlflow:5000", "db_prefix": "team"}),
        ("dir", {"optuna_storage": "postgresql://ann@db/o", "artifacts": "/shared/art"}),
        ("postgresql://ann:a%20b%40c@db:5432/", {"mlflow_uri": "postgresql://x:y%20z@h/m"}),
        ("onecycle://proxy:13000", {}),
    ],
)
def test_the_store_file_resolves_to_the_store_submit_resolved(
    store: str, overrides: dict[str, str], tmp_path: Path
) -> None:
    spec = resolve_store(str(tmp_path / store) if store == "dir" else store, env={}, **overrides)
    path = write_store_file(tmp_path / "store.env", store_settings(spec))
    again = resolve_store(env={ENV_STORE_FILE: str(path)})
    assert (again.kind, again.optuna_url, again.mlflow_uri, again.db_prefix) == (
        spec.kind,
        spec.optuna_url,
        spec.mlflow_uri,
        spec.db_prefix,
    )
    assert again.artifact_location == spec.artifact_location


def test_an_interrupted_configuration_is_queued_again_at_most_max_retries_times() -> None:
    study = optuna.create_study()
    study.enqueue_trial({"x": 0.5})
    worker = "n1:7 slurm:5_0"
    for attempt in range(MAX_RETRIES + 1):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("failure_reason", "KeyboardInterrupt: SIGTERM")
        study.tell(trial, state=TrialState.FAIL)
        interrupted = interrupted_trials(study, worker)
        queued = requeue(study, interrupted)
        assert queued == ([trial.number] if attempt < MAX_RETRIES else []), attempt
        assert requeue(study, interrupted) == []  # once per trial
    params = {t.params["x"] for t in study.get_trials(deepcopy=False)}
    assert params == {0.5} and len(study.trials) == MAX_RETRIES + 1
    retries = [t.user_attrs.get(RETRY) for t in study.get_trials(deepcopy=False)]
    assert retries == [None, *range(1, MAX_RETRIES + 1)]
