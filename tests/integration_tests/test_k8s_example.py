"""``examples/k8s/``: an Indexed Job of workers, checked against the Job API and the CLI.

Kubernetes is not run here. The manifests are read as YAML and every key is checked against the
fields the ``batch/v1`` Job and ``v1`` Secret APIs define on the paths they use (a misspelt key,
which ``kubectl apply`` rejects, fails here), then against the project: the worker command
parses with the CLI, the store comes from the Secret and resolves, the password is in no spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from storage.spec import ENV_DB_PREFIX, ENV_MLFLOW, ENV_STORE, resolve_store
from sweeps.cli import app

ROOT = Path(__file__).resolve().parents[2]
JOB = yaml.safe_load((ROOT / "examples/k8s/workers-job.yaml").read_text())
SECRET = yaml.safe_load((ROOT / "examples/k8s/store-secret.example.yaml").read_text())

_META = {"name": str, "namespace": str, "labels": dict, "annotations": dict}
_ENV_VAR = {
    "name": str,
    "value": str,
    "valueFrom": {"secretKeyRef": {"name": str, "key": str, "optional": bool}},
}
_CONTAINER = {
    "name": str,
    "image": str,
    "imagePullPolicy": str,
    "command": list,
    "args": list,
    "workingDir": str,
    "env": [_ENV_VAR],
    "resources": {"limits": dict, "requests": dict},
    "volumeMounts": [{"name": str, "mountPath": str, "readOnly": bool}],
}
#: The fields of batch/v1 Job (and the PodSpec inside it) on the paths the example uses.
JOB_FIELDS = {
    "apiVersion": str,
    "kind": str,
    "metadata": _META,
    "spec": {
        "completionMode": str,
        "completions": int,
        "parallelism": int,
        "backoffLimit": int,
        "backoffLimitPerIndex": int,
        "activeDeadlineSeconds": int,
        "ttlSecondsAfterFinished": int,
        "template": {
            "metadata": _META,
            "spec": {
                "restartPolicy": str,
                "terminationGracePeriodSeconds": int,
                "securityContext": {"runAsNonRoot": bool, "runAsUser": int, "runAsGroup": int},
                "containers": [_CONTAINER],
                "volumes": [{"name": str, "secret": {"secretName": str, "defaultMode": int}}],
            },
        },
    },
}
SECRET_FIELDS = {
    "apiVersion": str,
    "kind": str,
    "metadata": _META,
    "type": str,
    "stringData": dict,
}


def unknown_fields(value: Any, schema: Any, path: str = "") -> list[str]:
    """Every path in ``value`` that ``schema`` does not define, or whose type is not its type."""
    if isinstance(schema, type):
        return [] if isinstance(value, schema) else [f"{path}: not a {schema.__name__}"]
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [
            p
            for i, item in enumerate(value)
            for p in unknown_fields(item, schema[0], f"{path}[{i}]")
        ]
    if not isinstance(value, dict):
        return [f"{path}: not a mapping"]
    found = []
    for key, item in value.items():
        if key not in schema:
            found.append(f"{path}.{key}: not a field")
        else:
            found += unknown_fields(item, schema[key], f"{path}.{key}")
    return found


def test_the_checker_catches_a_misspelt_or_mistyped_field() -> None:
    broken = yaml.safe_load(yaml.safe_dump(JOB))
    broken["spec"]["completion_mode"] = "Indexed"
    broken["spec"]["template"]["spec"]["containers"][0]["command"] = "onecycle worker x"
    assert sorted(unknown_fields(broken, JOB_FIELDS)) == [
        ".spec.completion_mode: not a field",
        ".spec.template.spec.containers[0].command: not a list",
    ]


def test_the_manifests_use_only_fields_their_apis_define() -> None:
    assert (JOB["apiVersion"], JOB["kind"]) == ("batch/v1", "Job")
    assert (SECRET["apiVersion"], SECRET["kind"]) == ("v1", "Secret")
    assert unknown_fields(JOB, JOB_FIELDS) == []
    assert unknown_fields(SECRET, SECRET_FIELDS) == []


def test_the_job_is_an_indexed_set_of_workers_with_a_gpu_each() -> None:
    spec = JOB["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] >= 1
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")  # what a Job's pods allow
    assert pod["securityContext"]["runAsUser"] == 1000  # the Dockerfile's user
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    command = container["command"]
    assert command[:2] == ["onecycle", "worker"]
    worker = app.get_command(click.Context(app), "worker")
    assert worker is not None
    parsed = worker.make_context("worker", list(command[2:]))
    assert parsed.params["name"] == command[2] and parsed.params["quiet"]


def test_the_store_comes_from_the_secret_and_no_password_is_in_the_job() -> None:
    env = {item["name"]: item for item in JOB["spec"]["template"]["spec"]["containers"][0]["env"]}
    reference = env[ENV_STORE]["valueFrom"]["secretKeyRef"]
    assert reference["name"] == SECRET["metadata"]["name"]
    url = SECRET["stringData"][reference["key"]]
    spec = resolve_store(
        url,
        db_prefix=env[ENV_DB_PREFIX]["value"],
        mlflow_uri=env[ENV_MLFLOW]["value"],
        env={},
    )
    assert spec.kind == "postgresql" and spec.mlflow_uri == "http://mlflow:5000"
    password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password and password not in (ROOT / "examples/k8s/workers-job.yaml").read_text()
    assert all("value" in item or "valueFrom" in item for item in env.values())


@pytest.mark.parametrize("name", ["workers-job.yaml", "store-secret.example.yaml"])
def test_the_deployment_docs_show_each_manifest(name: str) -> None:
    assert f"examples/k8s/{name}" in (ROOT / "docs/deployment.md").read_text()
