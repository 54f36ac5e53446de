"""The environment of the MLflow servers this project starts: no background job runner.

MLflow 3's server starts a job runner and a pool of Huey consumers (eight more processes, each
importing MLflow) for GenAI jobs, such as scorers and trace roll-ups, that sweeps never queue.
They cost more memory and start-up CPU than the server itself, and slow its restart. The
storage proxy's server and ``onecycle ui`` therefore run with job execution off. A user who
wants it sets ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true``, and that setting is kept.
"""

from __future__ import annotations

from collections.abc import Mapping

#: MLflow's own switch for its server's job execution.
JOBS_SWITCH = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


def mlflow_server_env(base: Mapping[str, str], **settings: str) -> dict[str, str]:
    """``base`` plus ``settings``, with MLflow's server jobs off unless ``base`` says otherwise.

    Example:
        >>> mlflow_server_env({"PATH": "/bin"})
        {'PATH': '/bin', 'MLFLOW_SERVER_ENABLE_JOB_EXECUTION': 'false'}
        >>> mlflow_server_env({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"})
        {'MLFLOW_SERVER_ENABLE_JOB_EXECUTION': 'true'}
    """
    env = {**base, **settings}
    env.setdefault(JOBS_SWITCH, "false")
    return env
