"""What ``onecycle submit --slurm`` writes and refuses, before SLURM is involved.

The job array script, the store file only its owner reads, the environment handed to sbatch
without the store's password, and the one-line refusals. The cluster itself is exercised in
``tests/integration_tests/test_slurm.py``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from storage import resolve_store
from storage.errors import StoreConfigError
from storage.store_file import ENV_STORE_FILE, read_store_file, write_store_file
from sweeps.cli import main
from sweeps.errors import UsageError
from sweeps.runner._worker_tag import pid_of, slurm_job_of, slurm_task_of, worker_tag
from sweeps.slurm import JobRequest, batch_script
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
        "--gpus-per-task=2",
        "--mem=16G",
        "--constraint=h200",
    ]
    assert f"export {ENV_STORE_FILE}={tmp_path / 'store.env'}" in lines
    assert lines[-1] == "exec /venv/bin/python -m sweeps worker s1 --quiet --fused auto"


@pytest.mark.parametrize(
    ("request_", "flag"),
    [
        (JobRequest("s", 0), "--workers"),
        (JobRequest("s", 1, gpus_per_worker=-1), "--gpus-per-worker"),
        (JobRequest("s", 1, sbatch_args=("mem=16G",)), "--sbatch-arg"),
        (JobRequest("s", 1, sbatch_args=("--mem=1G\nrm -rf /",)), "--sbatch-arg"),
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
    }
    assert job_environment(PASSWORD, env) == {"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "0"}


def test_the_worker_tag_names_the_slurm_task_it_runs_in() -> None:
    assert " " not in worker_tag({})
    tag = worker_tag(
        {"SLURM_ARRAY_JOB_ID": "812", "SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "815"}
    )
    assert tag.endswith(" slurm:812_3") and pid_of(tag) == str(os.getpid())
    assert (slurm_job_of(tag), slurm_task_of(tag)) == ("812", "812_3")
    plain = worker_tag({"SLURM_JOB_ID": "77"})
    assert (slurm_job_of(plain), slurm_task_of(plain)) == ("77", "77")


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
