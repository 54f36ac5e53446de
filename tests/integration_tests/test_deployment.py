"""docker-compose.yml matches the code: services, variables, ports, the worker's command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from storage.server_env import JOBS_SWITCH
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


#: What keeps MLflow's telemetry off in a service, and its default in .env.example.
TELEMETRY_OFF = {"ONECYCLE_TELEMETRY": "0", "MLFLOW_DISABLE_TELEMETRY": "true"}


def test_every_service_running_mlflow_has_its_telemetry_off() -> None:
    for name in ("mlflow", "worker"):
        environment = COMPOSE["services"][name]["environment"]
        assert environment["MLFLOW_DISABLE_TELEMETRY"] == "${MLFLOW_DISABLE_TELEMETRY}", name
    assert COMPOSE["services"]["worker"]["environment"]["ONECYCLE_TELEMETRY"] == (
        "${ONECYCLE_TELEMETRY}"
    )
    assert {key: ENV_EXAMPLE[key] for key in TELEMETRY_OFF} == TELEMETRY_OFF


def test_the_mlflow_service_runs_no_job_runner_unless_asked() -> None:
    environment = COMPOSE["services"]["mlflow"]["environment"]
    assert environment[JOBS_SWITCH] == f"${{{JOBS_SWITCH}:-false}}"
    assert ENV_EXAMPLE[JOBS_SWITCH] == "false"


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
    assert set(environment) == {ENV_STORE, ENV_DB_PREFIX, ENV_MLFLOW, *TELEMETRY_OFF}
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


#: What ``docker compose config`` would refuse, checked here without docker.
SERVICE_KEYS = {
    "image", "build", "command", "environment", "volumes", "ports", "depends_on",
    "healthcheck", "restart", "deploy",
}  # fmt: skip
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
RESTART = {"no", "always", "on-failure", "unless-stopped"}
DURATION = re.compile(r"^\d+(ms|s|m|h)$")


def _interpolated(value: object) -> object:
    """``value`` with ``${VAR}`` taken from .env.example and ``$$`` unescaped, as compose does."""
    if isinstance(value, str):
        missing = set(re.findall(r"(?<!\$)\$\{(\w+)\}", value)) - set(ENV_EXAMPLE)
        assert not missing, f"{value!r} uses {missing}, not in .env.example"
        text = re.sub(r"(?<!\$)\$\{(\w+)\}", lambda m: ENV_EXAMPLE[m.group(1)], value)
        return text.replace("$$", "$")
    if isinstance(value, list):
        return [_interpolated(item) for item in value]
    if isinstance(value, dict):
        return {key: _interpolated(item) for key, item in value.items()}
    return value


def test_compose_file_structure_is_valid_without_docker() -> None:
    """The checks ``docker compose config`` makes that need no docker: always run, CI or not."""
    _check_structure(COMPOSE)


def _check_structure(raw: dict[str, Any]) -> None:
    compose = _interpolated(raw)
    assert isinstance(compose, dict) and set(compose) == {"services", "volumes"}
    named_volumes = set(compose["volumes"])
    for name, service in compose["services"].items():
        assert set(service) <= SERVICE_KEYS, (name, set(service) - SERVICE_KEYS)
        assert "image" in service or "build" in service, f"{name}: neither image nor build"
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file(), name
        if "image" in service:
            assert re.fullmatch(r"[a-z0-9./-]+:[\w.-]+", service["image"]), service["image"]
        assert service.get("restart", "no") in RESTART, name
        for key, value in service.get("environment", {}).items():
            assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", key) and value, (name, key)
        for port in service.get("ports", []):
            host, published, target = port.split(":")
            assert host == "127.0.0.1", f"{name}: {port} is published beyond loopback"
            assert 0 < int(published) < 65536 and 0 < int(target) < 65536, port
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in compose["services"] and dependency != name, (name, dependency)
            assert rule["condition"] in CONDITIONS, (name, rule)
        if "healthcheck" in service:
            check = service["healthcheck"]
            assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name
            assert DURATION.match(check["interval"]) and DURATION.match(check["timeout"]), name
            assert int(check["retries"]) > 0, name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: bind source {source} is missing"
            else:
                assert source in named_volumes, f"{name}: volume {source} is not declared"
        assert all(isinstance(part, str) and part for part in service.get("command", ["x"]))


def test_the_structure_check_catches_a_broken_file() -> None:
    """The check above can fail: a public port, an undeclared volume, a missing variable."""
    broken = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    broken["services"]["mlflow"]["ports"] = ["5000:5000"]
    with pytest.raises(ValueError):  # no host part: three fields expected
        _check_structure(broken)
    broken["services"]["mlflow"]["ports"] = ["0.0.0.0:5000:5000"]
    with pytest.raises(AssertionError, match="beyond loopback"):
        _check_structure(broken)
    del broken["services"]["mlflow"]["ports"]
    broken["services"]["worker"]["volumes"] = ["cache:/cache"]
    with pytest.raises(AssertionError, match="volume cache is not declared"):
        _check_structure(broken)
    broken["services"]["worker"]["environment"]["EXTRA"] = "${NOT_IN_ENV_EXAMPLE}"
    with pytest.raises(AssertionError, match="NOT_IN_ENV_EXAMPLE"):
        _check_structure(broken)


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker-compose")
    if docker:
        return [docker]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    """Docker's own parser, where it is installed; the structure test runs without it.

    Missing docker skips, CI or not (CI machines here have none); set
    ``SWEEPS_TEST_REQUIRE_DOCKER=1`` where docker exists to make its absence a failure.
    """
    command = _compose_command()
    if command is None:
        message = "neither docker-compose nor the docker compose plugin is installed"
        if os.environ.get("SWEEPS_TEST_REQUIRE_DOCKER") == "1":
            pytest.fail(f"SWEEPS_TEST_REQUIRE_DOCKER=1 but {message}")
        pytest.skip(f"{message}; the file's structure is checked without it")
    for name in ("docker-compose.yml", "Dockerfile", ".env.example"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "docker", tmp_path / "docker")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    result = subprocess.run(
        [*command, "config", "--quiet"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
