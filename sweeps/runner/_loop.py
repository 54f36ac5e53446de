"""Create or resume a sweep in the store, and run trials until it has ``n_trials`` finished.

Everything a worker needs is read back from the store by the sweep's name: the validated
config, the Optuna study and the MLflow experiment and parent run. So ``onecycle run`` after an
interruption, and ``onecycle worker NAME`` from another process or machine, continue the same
sweep. A trial counts as finished when it is COMPLETE or PRUNED; a failed or diverged trial is
a recorded outcome and the sweep goes on, until failures pass ``search.max_failure_rate``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import optuna
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError

import schedulers
from storage import Store, SweepExists, SweepRecord
from storage.errors import StoreError, StoreUnavailable
from storage.schema_lock import store_lock
from storage.tracking import ProcessTracking
from sweeps.config import SweepConfig, parse_config
from sweeps.errors import SweepsError, UsageError
from sweeps.runner._fused import FusedContext
from sweeps.space._samplers import make_pruner, make_sampler
from sweeps.space._search_space import SearchSpace
from sweeps.tracking._sweep import ensure_experiment, log_sweep_summary, start_parent_run
from sweeps.trials._objective import MlflowTarget, Objective, TrialDiverged
from sweeps.trials._task import TrainSettings
from sweeps.trials._tracker import FAILURE_TAG
from sweeps.workloads import build_workload
from sweeps.workloads.base import Workload

T = TypeVar("T")
log = logging.getLogger(__name__)
MIN_TRIALS_FOR_FAILURE_RATE = 4
HEARTBEAT_ENV = "ONECYCLE_HEARTBEAT_S"
THREADS_ENV = "ONECYCLE_TORCH_THREADS"
STALE_REASON = "worker stopped sending heartbeats (killed or lost); the trial was retried"
LOST_REASON = "started but never sent a heartbeat (its worker lost the database or died)"


def resolve_device(name: str) -> torch.device:
    """``auto`` is the first CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"workload.device: {name!r} requested but no CUDA GPU is available")
    return device


def settings_of(config: SweepConfig) -> TrainSettings:
    """Training settings from the sweep file's workload and objective sections."""
    workload = config.workload
    return TrainSettings(
        epochs=workload.epochs,
        optimizer=workload.optimizer,
        weight_decay=workload.weight_decay,
        seed=workload.seed,
        metric=config.metric,
        direction=config.objective.direction,
        eval_every=workload.eval_every,
        target=workload.target,
    )


def workload_factory(config: SweepConfig, device: torch.device) -> Callable[[], Workload]:
    """Build the built-in workload once per process and reuse it across trials."""
    if config.workload.builtin is None:
        from sweeps.trials._function import entrypoint_workload

        return entrypoint_workload(config, device)
    cache: list[Workload] = []

    def make() -> Workload:
        if not cache:
            cache.append(
                build_workload(
                    config.workload.builtin or "",
                    config.workload.batch_size,
                    config.workload.seed,
                    device,
                    **config.workload.options,
                )
            )
        return cache[0]

    return make


def run_params(config: SweepConfig, device: torch.device) -> dict[str, Any]:
    """Training settings logged beside the OneCycle params of each trial."""
    workload = config.workload
    return {
        "workload": workload.builtin or workload.entrypoint,
        "batch_size": workload.batch_size,
        "epochs": workload.epochs,
        "optimizer": workload.optimizer,
        "seed": workload.seed,
        "device": str(device),
        "weight_decay": workload.weight_decay,
    }


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
    client = store.mlflow
    experiment = ensure_experiment(client, config.name, store.spec.artifact_location)
    parent = start_parent_run(
        client, experiment, config.name, config.name, config.model_dump(mode="json")
    )
    try:
        if config.needs_range_test:
            if on_range_test is not None:
                on_range_test(config)
            config = _with_range_test(store, config, experiment, parent)
        space = SearchSpace(config)
    except BaseException:
        client.set_terminated(parent, "FAILED")
        raise
    payload = config.model_dump(mode="json")
    study = optuna.create_study(
        study_name=config.name,
        storage=store.optuna_storage,
        direction=config.objective.direction,
        load_if_exists=True,
    )
    record = SweepRecord(
        name=config.name,
        config=payload,
        status="running",
        study_name=study.study_name,
        mlflow_experiment_id=experiment,
        mlflow_parent_run_id=parent,
    )
    try:
        created = store.sweeps.create(record)
    except SweepExists:  # another process created it first: join that one
        client.delete_run(parent)
        return _resume(store, store.sweeps.get(config.name), payload), False
    for params in space.enqueued:
        study.enqueue_trial(params, skip_if_exists=True)
    return created, True


def _with_range_test(
    store: Store, config: SweepConfig, experiment: str, parent: str
) -> SweepConfig:
    from sweeps.range_test._session import record, run_for_config, settings_for
    from sweeps.space._auto_bounds import with_result

    device = resolve_device(config.workload.device)
    try:
        outcome = run_for_config(config, device, settings_for(config))
    except ValueError as error:
        raise UsageError(f"range test for `auto` bounds: {error}") from None
    record(store.mlflow, experiment, config, outcome, device, parent_run_id=parent)
    resolved = with_result(config, outcome.result())
    try:
        SearchSpace(resolved)
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
    stored = dict(record.config)
    # Records written before range tests existed have no range_test section: the default.
    stored.setdefault("range_test", {**payload.get("range_test", {}), "result": None})
    payload = _comparable(payload, stored)
    # `execution` says how trials run, not what the sweep is: a resume may change it.
    before = {k: v for k, v in stored.items() if k not in ("search", "execution")}
    after = {k: v for k, v in payload.items() if k not in ("search", "execution")}
    search_before = {k: v for k, v in stored["search"].items() if k != "n_trials"}
    search_after = {k: v for k, v in payload["search"].items() if k != "n_trials"}
    if before != after or search_before != search_after:
        key = _first_difference(stored, payload)
        raise UsageError(
            f"sweep {record.name!r} already exists in the store with a different config "
            f"(first difference: `{key}`); use a new name, or the file it was created with"
        )
    if stored["search"]["n_trials"] != payload["search"]["n_trials"]:
        record = store.sweeps.update(record.name, config=payload)
    if record.status != "running":
        record = store.sweeps.update(record.name, status="running")
    return record


def _first_difference(left: Any, right: Any, path: str = "") -> str:
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            if left.get(key) != right.get(key):
                return _first_difference(left.get(key), right.get(key), f"{path}{key}.")
    return path.rstrip(".") or "(root)"


@dataclass
class SweepOutcome:
    """What a worker leaves behind."""

    finished: int
    complete: int
    pruned: int
    failed: int
    best_value: float | None
    best_params: dict[str, Any] | None
    done: bool


def rdb_storage(study: optuna.Study) -> optuna.storages.RDBStorage | None:
    """The study's RDB storage, looking through the cache Optuna wraps it in; else None."""
    storage = getattr(study._storage, "_backend", study._storage)
    return storage if isinstance(storage, optuna.storages.RDBStorage) else None


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state, lower-case names.

    On an RDB storage this is one ``GROUP BY`` on Optuna's ``trials`` table: loading every
    trial (what ``get_n_trials`` does) made each new trial cost more as the study grew.
    """
    found = {state.name.lower(): 0 for state in TrialState}
    storage = rdb_storage(study)
    if storage is not None:
        study_id = storage.get_study_id_from_name(study.study_name)
        with storage.engine.connect() as connection:
            rows = connection.execute(
                text("select state, count(*) from trials where study_id = :id group by state"),
                {"id": study_id},
            ).all()
        for state, number in rows:
            name = state.name if isinstance(state, TrialState) else str(state)
            found[name.lower()] = int(number)
        return found
    for trial in study.get_trials(deepcopy=False):
        found[trial.state.name.lower()] += 1
    return found


class Progress:
    """What the runner reports while it works; the CLI draws it with rich."""

    def sweep(self, outcome: SweepOutcome, n_trials: int) -> None:
        """After every trial."""

    def trial_started(self, number: int, total_steps: int) -> None:
        """A trial began."""

    def batch_started(self, numbers: list[int], total_steps: int) -> None:
        """A fused batch of trials began (one progress line for all of them)."""
        self.trial_started(numbers[0], total_steps)

    def step(self, number: int, steps_done: int) -> None:
        """A trial advanced (called every few updates)."""


def heartbeat_interval() -> int:
    """Seconds between a running trial's heartbeats (``ONECYCLE_HEARTBEAT_S``, default 10)."""
    raw = os.environ.get(HEARTBEAT_ENV, "10")
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(
            f"{HEARTBEAT_ENV} must be a whole number of seconds, got {raw!r}"
        ) from None
    if value < 1:
        raise UsageError(f"{HEARTBEAT_ENV} must be >= 1, got {value}")
    return value


def stale_trial_handler(store: Store) -> Callable[[optuna.Study, FrozenTrial], None]:
    """Retry a trial whose worker died, once, and close its MLflow run as FAILED."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=1)

    def on_stale(study: optuna.Study, trial: FrozenTrial) -> None:
        retry(study, trial)
        run_id = trial.user_attrs.get("mlflow_run_id")
        if not run_id:
            return
        client = store.mlflow
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_tag(run_id, FAILURE_TAG, STALE_REASON)
            client.set_terminated(run_id, "FAILED")

    return on_stale


def run_sweep(
    store: Store,
    record: SweepRecord,
    progress: Progress | None = None,
    fused: int | str | None = None,
) -> SweepOutcome:
    """Run trials of ``record``'s sweep until ``n_trials`` are finished; update the record.

    Several workers (processes or machines) may run this on one sweep at once: starting a trial
    is serialised by a store-wide lock, so they never start more than ``n_trials`` between them.
    Running trials send heartbeats; one whose worker died is failed after 1.5 heartbeat
    intervals, retried once, and its MLflow run closed. ``fused`` (else the file's
    ``execution.fused_trials``) trains that many trials at a time as one stacked model.
    """
    progress = progress or Progress()
    config = parse_config(record.config, f"sweep {record.name!r} in the store")
    space = SearchSpace(config)
    device = resolve_device(config.workload.device)
    if device.type == "cpu" and (os.cpu_count() or 1) > 1 and not os.environ.get(THREADS_ENV):
        # Leave a core to the tracking writer: see docs/tracking.md for the measurements.
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    elif os.environ.get(THREADS_ENV):
        torch.set_num_threads(int(os.environ[THREADS_ENV]))
    interval = heartbeat_interval()
    # Stale after 1.5 intervals without a heartbeat, checked every half interval: a dead
    # worker's trial is failed within two intervals of its last heartbeat.
    storage = store.heartbeat_storage(
        interval, math.ceil(1.5 * interval), stale_trial_handler(store)
    )
    study = optuna.load_study(
        study_name=record.study_name,
        storage=storage,
        sampler=make_sampler(config, space),
        pruner=make_pruner(config),
    )
    make_workload = workload_factory(config, device)
    tracking = ProcessTracking(store.spec.mlflow_uri)
    target = MlflowTarget(
        store.mlflow,
        tracking,
        record.mlflow_experiment_id or "",
        record.mlflow_parent_run_id or "",
        record.name,
    )
    objective = Objective(
        suggest=space.suggest,
        make_workload=make_workload,
        settings=settings_of(config),
        run_params=run_params(config, device),
        mlflow=target,
        progress=progress.step,
    )
    worker = f"{socket.gethostname()}:{os.getpid()}"
    n_trials = config.search.n_trials
    fused_context = _fused_context(
        config, fused, objective, target, store, study, space, worker, interval, progress
    )
    status = "running"
    watcher = _StaleWatcher(study, interval)
    try:
        while True:
            outcome = riding_out_outages("count the trials", lambda: _outcome(study, n_trials))
            progress.sweep(outcome, n_trials)
            ended = outcome.finished + outcome.failed
            if (
                not outcome.done
                and ended >= MIN_TRIALS_FOR_FAILURE_RATE
                and outcome.failed / ended > config.search.max_failure_rate
            ):
                status = "failed"
                raise SweepsError(
                    f"sweep {record.name!r} stopped: {outcome.failed} of {ended} trials failed, "
                    f"above search.max_failure_rate={config.search.max_failure_rate}; see the "
                    "failure reasons with `onecycle status`"
                )
            if fused_context is not None:
                if not _fused_batch(fused_context, n_trials):
                    status = "finished"
                    progress.sweep(_outcome(study, n_trials), n_trials)
                    break
                continue
            trial = _next_trial(store, study, n_trials, worker, interval)
            if trial is None:
                status = "finished"
                progress.sweep(_outcome(study, n_trials), n_trials)
                break
            _one_trial(study, trial, objective, progress, make_workload, config, interval)
            report = tracking.sync()
            report.raise_errors()
    except KeyboardInterrupt:
        status = "stopped"
        raise
    finally:
        watcher.stop()
        if fused_context is not None and fused_context.sampling is not None:
            fused_context.sampling.close()
        tracking.close()
        if status != "running":
            store.sweeps.update(record.name, status=status)
        if status == "finished":
            close_parent(store, record, study)
    return riding_out_outages("count the trials", lambda: _outcome(study, n_trials))


def _fused_context(
    config: SweepConfig,
    fused: int | str | None,
    objective: Objective,
    target: MlflowTarget,
    store: Store,
    study: optuna.Study,
    space: SearchSpace,
    worker: str,
    interval: int,
    progress: Progress,
) -> FusedContext | None:
    """The fused-batch context when more than one trial is to be stacked, else None."""
    setting = config.execution.fused_trials if fused is None else fused
    if setting == 1:
        return None
    if config.workload.builtin is None:
        raise UsageError(
            "--fused / execution.fused_trials: fused trials stack a builtin workload's model; "
            f"this sweep runs entrypoint {config.workload.entrypoint!r}"
        )
    from sweeps.space._parallel import BatchSampling
    from sweeps.trials.fused._sizing import auto_fused_trials

    if setting == "auto":
        size = auto_fused_trials(
            objective.make_workload(), objective.settings, config.search.n_trials
        )
        log.info("fused_trials: auto chose %d", size)
    else:
        size = int(setting)
    return FusedContext(
        store=store,
        study=study,
        config=config,
        space=space,
        settings=objective.settings,
        make_workload=objective.make_workload,
        make_sampler=lambda offset: make_sampler(config, space, offset),
        make_pruner=lambda: make_pruner(config),
        tracking=target.tracking,
        experiment_id=target.experiment_id,
        parent_run_id=target.parent_run_id,
        run_params={**objective.run_params, "fused_trials": size},
        worker=worker,
        interval=interval,
        fused=size,
        progress_start=progress.batch_started,
        progress_step=progress.step,
        sampling=BatchSampling(config, space),
    )


def _fused_batch(context: FusedContext, n_trials: int) -> bool:
    """Ask, train and tell one fused batch; False when the sweep is done."""
    from sweeps.runner._fused import BatchTimes, next_batch, run_batch

    started = time.perf_counter()
    members = riding_out_outages("start the next batch", lambda: next_batch(context, n_trials))
    if members is None:
        return False
    times = BatchTimes(
        len(members), ask_s=time.perf_counter() - started, sample_s=context.last_sample_s
    )
    run_batch(context, members, times)
    context.batches.append(times)
    with contextlib.suppress(Exception):  # figures for the record, not worth failing a sweep
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), len(context.batches) - 1
        figures = {
            "fused/bookkeeping_share": times.bookkeeping_share,
            "fused/ask_s": times.ask_s,
            "fused/sample_s": times.sample_s,
            "fused/train_s": times.train_s,
            "fused/tell_s": times.tell_s,
            "fused/sync_s": times.sync_s,
            "fused/trials": float(times.trials),
        }
        context.store.mlflow.log_batch(
            context.parent_run_id,
            metrics=[Metric(key, value, now, step) for key, value in figures.items()],
        )
    return True


def riding_out_outages(what: str, action: Callable[[], T], patience_s: float = 60.0) -> T:
    """Run ``action``, retrying while the database is unreachable (a restart, a failover).

    Gives up after ``patience_s`` seconds with :class:`storage.StoreUnavailable`.
    """
    deadline = time.monotonic() + patience_s
    pause = 0.5
    while True:
        try:
            return action()
        except (OperationalError, InterfaceError, optuna.exceptions.StorageInternalError) as error:
            if time.monotonic() + pause > deadline:
                raise StoreUnavailable(
                    f"cannot {what}: the database stayed unreachable for {patience_s:.0f} s "
                    f"({type(error).__name__})"
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def _next_trial(
    store: Store, study: optuna.Study, n_trials: int, worker: str, interval: int
) -> optuna.Trial | None:
    return riding_out_outages(
        "start the next trial", lambda: _start_next(store, study, n_trials, worker, interval)
    )


def _start_next(
    store: Store, study: optuna.Study, n_trials: int, worker: str, interval: int
) -> optuna.Trial | None:
    """Start the next trial, or return None when the sweep has ``n_trials`` finished."""

    def ask(room: int) -> optuna.Trial:
        with warnings.catch_warnings():  # we run the heartbeats ourselves (_Heartbeat)
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = study.ask()
        trial.set_user_attr("worker", worker)
        study._storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
        return trial

    return start_under_lock(store, study, n_trials, interval, ask)


def optuna_now() -> datetime:
    """Now, as Optuna's RDB storage writes trial times.

    Naive UTC where Optuna's ``TrialModel`` keeps ``_datetime_start_utc`` (Optuna 5), naive
    local time before; comparing one with the other is off by the UTC offset.
    """
    from optuna.storages._rdb import models

    if hasattr(models.TrialModel, "_datetime_start_utc"):
        return datetime.now(timezone.utc).replace(tzinfo=None)
    return datetime.now()


def fail_trials_without_heartbeat(study: optuna.Study, grace_s: int) -> list[int]:
    """Fail RUNNING trials that never recorded a heartbeat and started over ``grace_s`` ago.

    A trial is created (``ask``) and then gets its first heartbeat; a database outage or a
    killed worker between the two leaves a RUNNING trial that Optuna's stale check never sees
    (it only looks at trials with a heartbeat), and that would hold a place in the sweep for
    ever. Such a trial never trained, so it is failed, not retried. Returns their numbers.
    """
    storage = rdb_storage(study)
    if storage is None:
        return []
    study_id = storage.get_study_id_from_name(study.study_name)
    cutoff = optuna_now() - timedelta(seconds=grace_s)
    query = text(
        "select t.trial_id, t.number from trials t "
        "left join trial_heartbeats h on h.trial_id = t.trial_id "
        "where t.study_id = :id and t.state = 'RUNNING' and h.trial_id is null "
        "and t.datetime_start < :cutoff"
    )
    with storage.engine.connect() as connection:
        rows = connection.execute(query, {"id": study_id, "cutoff": cutoff}).all()
    failed = []
    for trial_id, number in rows:
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            storage.set_trial_user_attr(trial_id, "failure_reason", LOST_REASON)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            failed.append(int(number))
    if failed:
        log.warning("failed trials %s: started but never sent a heartbeat", failed)
    return failed


def start_under_lock(
    store: Store,
    study: optuna.Study,
    n_trials: int,
    interval: int,
    start: Callable[[int], T],
) -> T | None:
    """``start(room)`` once there is room for more trials; None when the sweep is done.

    Counting and starting happen under the store's lock, so concurrent workers see each
    other's new trials; ``room`` is how many more may start now (``n_trials`` minus finished
    and running ones). A worker waits while the running trials would fill the sweep.
    """
    while True:
        with store_lock(store.spec, store.spec.optuna_url, f"sweep-{study.study_name}"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            fail_trials_without_heartbeat(study, math.ceil(1.5 * interval))
            found = counts(study)
            finished = found["complete"] + found["pruned"]
            if finished >= n_trials:
                return None
            room = n_trials - finished - found["running"]
            if room > 0:
                return start(room)
        time.sleep(min(1.0, interval / 2))


class _Heartbeat:
    """Record a trial's heartbeat every ``interval`` seconds while it runs."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial, interval: int) -> None:
        self._stop = threading.Event()
        storage, trial_id = study._storage, trial._trial_id

        def beat() -> None:
            while not self._stop.wait(interval):
                with contextlib.suppress(Exception):  # a missed beat is retried next interval
                    storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]

        self._thread = threading.Thread(target=beat, name="onecycle-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class _StaleWatcher:
    """Fail trials of dead workers promptly, even while this worker is busy with a long trial."""

    def __init__(self, study: optuna.Study, interval: int) -> None:
        self._stop = threading.Event()

        def watch() -> None:
            while not self._stop.wait(max(0.5, interval / 2)):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        optuna.storages.fail_stale_trials(study)
                except Exception as error:  # retried at the next check
                    log.warning("checking for stale trials failed: %s", error)

        self._thread = threading.Thread(target=watch, name="onecycle-stale-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _one_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    objective: Objective,
    progress: Progress,
    make_workload: Callable[[], Workload],
    config: SweepConfig,
    interval: int,
) -> None:
    workload = make_workload()
    progress.trial_started(trial.number, workload.steps_per_epoch * config.workload.epochs)
    heartbeat = _Heartbeat(study, trial, interval)
    try:
        value = objective(trial)
    except optuna.TrialPruned:
        _tell(study, trial, state=TrialState.PRUNED)
    except StoreError:
        _tell(study, trial, state=TrialState.FAIL)
        raise
    except (KeyboardInterrupt, SystemExit):
        _tell(study, trial, state=TrialState.FAIL)
        raise
    except (TrialDiverged, Exception):  # user code that raised, or a diverged loss: recorded
        _tell(study, trial, state=TrialState.FAIL)
    else:
        _tell(study, trial, value)
    finally:
        heartbeat.stop()


def _tell(
    study: optuna.Study,
    trial: optuna.Trial,
    value: float | None = None,
    state: TrialState | None = None,
) -> None:
    """Tell the outcome, unless another worker already failed the trial as stale."""

    def tell() -> None:
        # skip_if_finished: Optuna 5 refuses to tell a finished trial with a ValueError.
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            study.tell(trial, value, state=state, skip_if_finished=True)

    riding_out_outages(f"record the outcome of trial {trial.number}", tell)


def _outcome(study: optuna.Study, n_trials: int) -> SweepOutcome:
    found = counts(study)
    finished = found["complete"] + found["pruned"]
    best_value: float | None = None
    best_params: dict[str, Any] | None = None
    if found["complete"]:
        best = study.best_trial
        best_value = best.value
        best_params = best.user_attrs.get("deepspeed_params")
    return SweepOutcome(
        finished=finished,
        complete=found["complete"],
        pruned=found["pruned"],
        failed=found["fail"],
        best_value=best_value,
        best_params=best_params,
        done=finished >= n_trials,
    )


def best_block(study: optuna.Study) -> dict[str, Any] | None:
    """DeepSpeed's ``{"scheduler": {...}}`` for the best trial, every key spelled out."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    params = study.best_trial.user_attrs["deepspeed_params"]
    return {
        "scheduler": {"type": "OneCycle", "params": schedulers.with_defaults("OneCycle", params)}
    }


SUMMARY_TAG = "onecycle.summary"


def _summarised(client: Any, parent: str, finished: int) -> bool:
    """Whether the parent run already holds the summary of ``finished`` trials (or more)."""
    run = client.get_run(parent)
    try:
        written = int(json.loads(run.data.tags.get(SUMMARY_TAG, "{}")).get("finished", -1))
    except (TypeError, ValueError):
        return False
    return run.info.status == "FINISHED" and written >= finished


def close_parent(store: Store, record: SweepRecord, study: optuna.Study) -> None:
    """Write the sweep's summary to its parent run once, whichever worker finishes last.

    Every worker of a finished sweep gets here, often at the same moment: under the store's
    lock the first one writes and the others find the summary of the same trials in place.
    Where the store has no lock to offer (an MLflow server over HTTP beside another store), a
    write that loses the race is forgiven once the winner's summary is found.
    """
    client = store.mlflow
    parent = record.mlflow_parent_run_id
    if not parent:
        return
    with store_lock(store.spec, store.spec.optuna_url, f"summary-{study.study_name}"):
        outcome = _outcome(study, 0)
        if _summarised(client, parent, outcome.finished):
            return
        try:
            log_sweep_summary(client, parent, study, best_block(study))
            if outcome.best_value is not None:
                client.log_metric(parent, "best_value", outcome.best_value)
            client.set_tag(parent, SUMMARY_TAG, json.dumps({"finished": outcome.finished}))
            client.set_terminated(parent, "FINISHED")
        except Exception:
            for _ in range(10):  # the winner may still be writing
                if _summarised(client, parent, outcome.finished):
                    return
                time.sleep(0.5)
            raise
