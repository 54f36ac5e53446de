"""The sweep's place in MLflow: one experiment, one parent run, a summary at the end.

The experiment carries ``mlflow.experimentKind = custom_model_development``: MLflow 3's UI
otherwise treats a new experiment as GenAI and files runs under "Evaluation runs". Trials are
child runs (``mlflow.parentRunId``) of the sweep's parent run.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from storage.bulk_experiments import BulkExperimentWriter
from storage.bulk_runs import BulkRunWriter, NewRun
from storage.errors import StoreUnavailable
from storage.redact import scrub
from storage.tracking import BULK_ENV, MAX_PARAM_LENGTH, MAX_PARAMS_PER_CALL
from sweeps.errors import one_line

if TYPE_CHECKING:
    import optuna
    from mlflow import MlflowClient

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
SWEEP_TAG = "onecycle.sweep"
STUDY_TAG = "onecycle.study"
ROLE_TAG = "onecycle.role"


def ensure_experiment(client: MlflowClient, sweep: str, artifact_root: str) -> str:
    """The sweep's experiment id, created (or tagged) as model training if needed."""
    existing = client.get_experiment_by_name(sweep)
    if existing is not None:
        if existing.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            client.set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return str(existing.experiment_id)
    location, tags = _new_experiment(sweep, artifact_root)
    return str(client.create_experiment(sweep, artifact_location=location, tags=tags))


def _new_experiment(sweep: str, artifact_root: str) -> tuple[str | None, dict[str, str]]:
    """A new sweep experiment's artifact location and tags, the same by MLflow's API or SQL."""
    location = f"{artifact_root.rstrip('/')}/{sweep}" if artifact_root else None
    return location, {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, SWEEP_TAG: sweep}


def ensure_experiment_direct(
    writer: BulkExperimentWriter, sweep: str, artifact_root: str
) -> str | None:
    """:func:`ensure_experiment` in SQL (:mod:`storage.bulk_experiments`).

    None where MLflow's API must do it: no artifact root given, a deleted experiment of that
    name, values the writer cannot mirror.
    """
    location, tags = _new_experiment(sweep, artifact_root)
    if location is None or not writer.usable(sweep, location, tags):
        return None
    found = writer.find(sweep)
    if found is None:
        made = writer.create(sweep, location, tags)
        if made is not None:
            return made
        found = writer.find(sweep)  # another process made it a moment ago
    if found is None or not found.active:
        return None
    if found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        writer.set_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return found.experiment_id


def direct_experiment_and_parent(
    mlflow_uri: str, sweep: str, artifact_root: str, config: dict[str, Any]
) -> tuple[str, str] | None:
    """A new sweep's experiment and parent run, made in SQL here without MLflow's import.

    None where only MLflow's API may make them (a tracking server, an untested schema,
    ``ONECYCLE_MLFLOW_BULK=0``, a database error before the parent run is written: finding or
    making the experiment again through the API is safe). A failure writing the parent run is
    the store's (:class:`~storage.errors.StoreUnavailable`): it may have been committed.
    """
    if os.environ.get(BULK_ENV, "1") == "0":
        return None
    experiments: BulkExperimentWriter | None = None
    try:
        try:
            experiments = BulkExperimentWriter.for_uri(mlflow_uri)
            if experiments is None:
                return None
            runs = BulkRunWriter.for_engine(experiments.engine)
            if runs is None:
                return None
            experiment = ensure_experiment_direct(experiments, sweep, artifact_root)
        except SQLAlchemyError:
            return None
        if experiment is None:
            return None
        try:
            (parent,) = runs.create(experiment, [parent_run(sweep, sweep, config)])
        except SQLAlchemyError as error:
            detail = scrub(one_line(str(error)))
            raise StoreUnavailable(f"cannot create the sweep's parent run: {detail}") from None
        return experiment, parent
    finally:
        if experiments is not None:
            experiments.engine.dispose()


def flatten(config: Any, prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``: a nested config as MLflow params.

    Example:
        >>> flatten({"workload": {"builtin": "digits", "epochs": 15}})
        {'workload.builtin': 'digits', 'workload.epochs': '15'}
    """
    if isinstance(config, dict):
        flat: dict[str, str] = {}
        for key, value in config.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {
        prefix.rstrip("."): scrub(json.dumps(config) if isinstance(config, list) else str(config))
    }


def parent_run(sweep: str, study: str, config: dict[str, Any]) -> NewRun:
    """The sweep's parent run as :func:`start_parent_run` makes it, to be created elsewhere."""
    tags = {SWEEP_TAG: sweep, STUDY_TAG: study, ROLE_TAG: "sweep"}
    return NewRun(f"sweep {sweep}", tags, flatten(config))


def start_parent_run(
    client: MlflowClient, experiment_id: str, sweep: str, study: str, config: dict[str, Any]
) -> str:
    """Create the sweep's parent run, tagged and with the sweep config as params."""
    from mlflow.entities import Param

    run = client.create_run(
        experiment_id,
        run_name=f"sweep {sweep}",
        tags={SWEEP_TAG: sweep, STUDY_TAG: study, ROLE_TAG: "sweep"},
    )
    params = [Param(k, v[:MAX_PARAM_LENGTH]) for k, v in flatten(config).items()]
    for start in range(0, len(params), MAX_PARAMS_PER_CALL):
        client.log_batch(run.info.run_id, params=params[start : start + MAX_PARAMS_PER_CALL])
    return str(run.info.run_id)


#: What :func:`log_sweep_summary` imports: a worker has its writer import them while it trains.
SUMMARY_MODULES = ("optuna.visualization.matplotlib", "optuna.importance")


def log_sweep_summary(
    client: MlflowClient,
    parent_run_id: str,
    study: optuna.Study,
    best_block: dict[str, Any] | None,
) -> list[str]:
    """Optimization history, parameter importances and the best DeepSpeed config on the parent.

    Returns the artifact names written (importances need two finished trials or more).
    """
    import matplotlib
    import optuna

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as optuna_plots

    written: list[str] = []
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    plots: list[tuple[str, Callable[[optuna.Study], Any]]] = []
    if complete:
        plots.append(("optimization_history.png", optuna_plots.plot_optimization_history))
    if len(complete) >= 2 and any(t.params for t in complete):
        # Named, so every Optuna version draws the same one (and no scikit-learn is needed).
        evaluator = PedAnovaImportanceEvaluator()
        importances = partial(optuna_plots.plot_param_importances, evaluator=evaluator)
        plots.append(("param_importances.png", importances))
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # e.g. PED-ANOVA's "importances will be equal" for a few trials: the plot shows that
        warnings.filterwarnings("ignore", category=UserWarning, module="optuna.importance")
        for name, draw in plots:
            try:
                axis = draw(study)
            except (RuntimeError, ValueError):  # e.g. importances of identical trials
                continue
            path = Path(folder) / name
            figure = axis.get_figure()
            figure.savefig(path, dpi=110, bbox_inches="tight")
            plt.close("all")
            client.log_artifact(parent_run_id, str(path))
            written.append(name)
    if best_block is not None:
        client.log_dict(parent_run_id, best_block, "best_deepspeed_config.json")
        written.append("best_deepspeed_config.json")
    counts = {state.name.lower(): 0 for state in TrialState}
    for trial in study.trials:
        counts[trial.state.name.lower()] += 1
    client.set_tag(parent_run_id, "onecycle.trials", json.dumps(counts))
    return written
