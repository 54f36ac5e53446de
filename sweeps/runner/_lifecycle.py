"""Creating a sweep in the store, or resuming one, with its study, experiment and parent run.

Everything a worker needs is read back from the store by the sweep's name, so ``onecycle run``
after an interruption and ``onecycle worker NAME`` elsewhere continue the same sweep; a resume
with a different config is refused, naming the first key that differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from pydantic import BaseModel

from storage import Store, SweepExists, SweepRecord
from sweeps.config import Search, SweepConfig, Workload
from sweeps.errors import UsageError
from sweeps.runner._ending import STOPPED_REASON, end_reason, reopen
from sweeps.space import search_space
from sweeps.tracking import (
    direct_experiment_and_parent,
    discard_parent,
    end_parent,
    ensure_experiment,
    start_parent_run,
)


def create_or_resume(
    store: Store,
    config: SweepConfig,
    on_range_test: Callable[[SweepConfig], None] | None = None,
) -> tuple[SweepRecord, bool]:
    """The sweep's record, created with its study, experiment and parent run if new.

    A new sweep with ``auto`` bounds runs the LR range test first (``on_range_test`` is told
    before it starts), logs it as a child run of the sweep, and stores its result in the
    record, so every worker resolves the same bounds.
    """
    existing = store.sweeps.find(config.name)
    if existing is not None:
        return _resume(store, existing, config.model_dump(mode="json")), False
    call = store.mlflow_call  # in the tracking writer when the caller set one
    dumped = config.model_dump(mode="json")
    made = direct_experiment_and_parent(
        store.spec.mlflow_uri, config.name, store.spec.artifact_location, dumped
    )
    if made is None:
        experiment = call(ensure_experiment, config.name, store.spec.artifact_location)
        made = experiment, call(start_parent_run, experiment, config.name, config.name, dumped)
    experiment, parent = made
    try:
        config = _resolved(store, config, experiment, parent, on_range_test)
        space = search_space(config)
        created = _record_new(store, config, experiment, parent)
    except SweepExists:  # another process created it first: join that one, or be refused
        call(discard_parent, experiment, parent)
        return _resume(store, store.sweeps.get(config.name), config.model_dump(mode="json")), False
    except KeyboardInterrupt:
        call(end_parent, parent, "stopped", STOPPED_REASON)
        raise
    except BaseException as error:
        call(end_parent, parent, "failed", end_reason(error))
        raise
    study = optuna.load_study(study_name=created.study_name, storage=store.optuna_storage)
    for params in space.enqueued:
        study.enqueue_trial(params, skip_if_exists=True)
    return created, True


def _resolved(
    store: Store,
    config: SweepConfig,
    experiment: str,
    parent: str,
    on_range_test: Callable[[SweepConfig], None] | None,
) -> SweepConfig:
    """``config`` with its ``auto`` bounds resolved by the range test, when it has any."""
    if not config.needs_range_test:
        return config
    if on_range_test is not None:
        on_range_test(config)
    return _with_range_test(store, config, experiment, parent)


def _record_new(store: Store, config: SweepConfig, experiment: str, parent: str) -> SweepRecord:
    """The new sweep's study and record; :class:`SweepExists` if another process was first."""
    study = optuna.create_study(
        study_name=config.name,
        storage=store.optuna_storage,
        direction=config.objective.direction,
        load_if_exists=True,
    )
    record = SweepRecord(
        name=config.name,
        config=config.model_dump(mode="json"),
        status="running",
        study_name=study.study_name,
        mlflow_experiment_id=experiment,
        mlflow_parent_run_id=parent,
    )
    return store.sweeps.create(record)


def _with_range_test(
    store: Store, config: SweepConfig, experiment: str, parent: str
) -> SweepConfig:
    from sweeps.range_test import record, run_for_config, settings_for
    from sweeps.runner._settings import resolve_device
    from sweeps.space import with_result

    device = resolve_device(config.workload.device)
    try:
        outcome = run_for_config(config, device, settings_for(config))
    except ValueError as error:
        raise UsageError(f"range test for `auto` bounds: {error}") from None
    record(store.mlflow_call, experiment, config, outcome, device, parent_run_id=parent)
    resolved = with_result(config, outcome.result())
    try:
        search_space(resolved)
    except ValueError as error:
        raise UsageError(f"`auto` bounds from the range test: {error}") from None
    return resolved


def _comparable(config: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """``config`` as a stored config would hold it (range test result, defaults of new keys)."""
    result = dict(config)
    section = dict(result.get("range_test") or {})
    stored_section = stored.get("range_test") or {}
    if section and section.get("result") is None:
        section["result"] = stored_section.get("result")
    result["range_test"] = section
    return result


def _resume(store: Store, record: SweepRecord, payload: dict[str, Any]) -> SweepRecord:
    stored, payload = _same_sweep(record, payload)
    if stored["search"]["n_trials"] != payload["search"]["n_trials"]:
        record = store.sweeps.update(record.name, config=payload)
    return reopen(store, record)


def finished_already(store: Store, config: SweepConfig) -> SweepRecord | None:
    """The sweep's record if it is finished with this very config; else None.

    A config that differs is refused as :func:`create_or_resume` refuses it; a new
    ``n_trials`` is work to do, so that sweep is not finished. Reads the store only: no MLflow.
    """
    record = store.sweeps.find(config.name)
    if record is None or record.status != "finished":
        return None
    stored, payload = _same_sweep(record, config.model_dump(mode="json"))
    return record if stored["search"]["n_trials"] == payload["search"]["n_trials"] else None


def _same_sweep(
    record: SweepRecord, payload: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored and the given config, made comparable; :class:`UsageError` if they differ."""
    stored = dict(record.config)
    # Records written before range tests existed have no range_test section: the default.
    stored.setdefault("range_test", {**payload.get("range_test", {}), "result": None})
    # Records written before a workload key existed (`task`, `command`, ...) lack it: its default.
    stored["workload"] = {**_defaults(Workload), **stored.get("workload", {})}
    # And before a search key existed (`tpe`, `hyperband`): its default.
    stored["search"] = {**_defaults(Search), **stored.get("search", {})}
    payload = _comparable(payload, stored)
    # `execution` says how trials run, not what the sweep is: a resume may change it.
    before = {k: v for k, v in stored.items() if k not in ("search", "execution")}
    after = {k: v for k, v in payload.items() if k not in ("search", "execution")}
    search_before = {k: v for k, v in stored["search"].items() if k != "n_trials"}
    search_after = {k: v for k, v in payload["search"].items() if k != "n_trials"}
    if before != after or search_before != search_after:
        key = _first_difference(
            {**before, "search": search_before}, {**after, "search": search_after}
        )
        raise UsageError(
            f"sweep {record.name!r} already exists in the store with a different config "
            f"(first difference: `{key}`); use a new name, or the file it was created with"
        )
    return stored, payload


def _defaults(section: type[BaseModel]) -> dict[str, Any]:
    """Every key's default in a sweep-file ``section``, as a stored config holds it (JSON)."""
    fields = section.model_fields.items()
    values = {name: field.get_default(call_default_factory=True) for name, field in fields}
    return {
        k: v.model_dump(mode="json") if isinstance(v, BaseModel) else v for k, v in values.items()
    }


def _first_difference(left: Any, right: Any, path: str = "") -> str:
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            if left.get(key) != right.get(key):
                return _first_difference(left.get(key), right.get(key), f"{path}{key}.")
    return path.rstrip(".") or "(root)"
