"""docker-compose.yml matches the code: services, variables, ports, the worker's command."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from storage.spec import ENV_DB_PREFIX, ENV_MLFLOW, ENV_STORE, resolve_store
from sweeps.cli import app

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
ENV_EXAMPLE = dict(
    line.split("=", 1)
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#")
)


def test_services_and_their_wiring() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "mlflow", "worker"}
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["mlflow"]
    assert services["worker"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]


def test_every_variable_is_in_env_example_and_no_secret_is_committed() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{(\w+)\}", text))
    assert used <= set(ENV_EXAMPLE), used - set(ENV_EXAMPLE)
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    assert not (ROOT / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text()


def test_mlflow_is_published_on_loopback_only() -> None:
    ports = COMPOSE["services"]["mlflow"]["ports"]
    assert ports and all(port.startswith("127.0.0.1:") for port in ports)
    assert "ports" not in COMPOSE["services"]["postgres"]


def test_worker_command_and_environment_match_the_cli_and_the_store() -> None:
    worker = COMPOSE["services"]["worker"]
    command = worker["command"]
    assert command[:2] == ["onecycle", "worker"]
    import click

    worker_cli = app.get_command(click.Context(app), command[1])
    assert worker_cli is not None
    parsed = worker_cli.make_context(command[1], ["some-sweep"])
    assert parsed.params["name"] == "some-sweep"
    environment = worker["environment"]
    assert set(environment) == {ENV_STORE, ENV_DB_PREFIX, ENV_MLFLOW}
    assert environment[ENV_MLFLOW] == "http://mlflow:5000"
    store_url = (
        environment[ENV_STORE]
        .replace("${POSTGRES_USER}", "u")
        .replace("${POSTGRES_PASSWORD}", "p")
    )
    spec = resolve_store(store_url, db_prefix="onecycle", mlflow_uri="http://mlflow:5000", env={})
    assert spec.kind == "postgresql" and spec.optuna_url.split("/")[-1].startswith(
        "onecycle_optuna"
    )


def test_databases_created_by_the_init_script_are_the_ones_the_store_uses() -> None:
    script = (ROOT / "docker" / "postgres-init.sh").read_text()
    assert "for suffix in optuna mlflow" in script and "${ONECYCLE_DB_PREFIX}_${suffix}" in script
    backend = COMPOSE["services"]["mlflow"]["command"]
    uri = backend[backend.index("--backend-store-uri") + 1]
    assert uri.endswith("/${ONECYCLE_DB_PREFIX}_mlflow")
    assert uri.startswith("postgresql+psycopg://")
    mounted = COMPOSE["services"]["postgres"]["volumes"][1]
    assert mounted.startswith("./docker/postgres-init.sh:/docker-entrypoint-initdb.d/")


def test_dockerfile_installs_the_project_with_postgres() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("schedulers", "storage", "sweeps"):
        assert f"COPY {package} ./{package}" in dockerfile
    assert 'pip install ".[postgres]"' in dockerfile


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker-compose")
    command = [docker] if docker else None
    if command is None and shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        command = ["docker", "compose"] if probe.returncode == 0 else None
    if command is None:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    for name in ("docker-compose.yml", "Dockerfile", ".env.example"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "docker", tmp_path / "docker")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    result = subprocess.run(
        [*command, "config", "--quiet"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
