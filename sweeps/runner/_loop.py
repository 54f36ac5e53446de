"""A worker's loop: run trials of a sweep until it has ``n_trials`` finished.

A trial counts as finished when it is COMPLETE or PRUNED; a failed or diverged trial is
a recorded outcome and the sweep goes on, until failures pass ``search.max_failure_rate``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial

import optuna
import torch

from storage import Store, SweepRecord
from storage.bulk_trials import Finish
from storage.disk_full import full_part, is_disk_full, store_full
from storage.errors import StoreError
from storage.tracking import BULK_ENV, ProcessTracking
from storage.trial_recording import Asked, TrialRecorder, run_recorder
from sweeps.config import SweepConfig, parse_config
from sweeps.errors import UsageError, one_line
from sweeps.phases import phase
from sweeps.runner._agreement import make_runs_agree
from sweeps.runner._coordination import (
    STALE_AFTER_INTERVALS,
    Heartbeats,
    _StaleWatcher,
    heartbeat_interval,
    recorder_for,
    riding_out_outages,
    stale_trial_handler,
    start_under_lock,
)
from sweeps.runner._ending import Ending, reopen_if_ended, sweep_ending
from sweeps.runner._failure_rate import check_failure_rate
from sweeps.runner._fused import run_batch
from sweeps.runner._fused_ask import next_batch
from sweeps.runner._fused_batch import BatchTimes, FusedContext
from sweeps.runner._outcome import Progress, SweepOutcome, outcome_of
from sweeps.runner._settings import (
    THREADS_ENV,
    resolve_device,
    run_params,
    settings_of,
    workload_factory,
)
from sweeps.runner._slots import check_gpu_choice, gpu_slots, run_slots
from sweeps.runner._worker_tag import worker_tag
from sweeps.space import SearchSpace, make_pruner, make_sampler, search_space
from sweeps.tracking import SUMMARY_MODULES, log_parent_metrics
from sweeps.trials import (
    MlflowTarget,
    TrialDiverged,
    TrialObjective,
    TrialRunner,
    as_runner,
    split_command,
)

log = logging.getLogger(__name__)
#: What a sweep stopped by a full disk keeps, and how to go on.
KEPT = "the trials it finished are kept: free space and `onecycle run` again to resume it"


def run_sweep(
    store: Store,
    record: SweepRecord,
    progress: Progress | None = None,
    fused: int | str | None = None,
    gpus: Sequence[str] = (),
) -> SweepOutcome:
    """Run trials of ``record``'s sweep until ``n_trials`` are finished; update the record.

    Several workers (processes or machines) may run this on one sweep at once: starting a trial
    is serialised by a store-wide lock, so they never start more than ``n_trials`` between them.
    Running trials send heartbeats; one whose worker died is failed after two heartbeat
    intervals, retried once, and its MLflow run closed. ``fused`` (else the file's
    ``execution.fused_trials``) trains that many trials at a time as one stacked model. A
    command workload runs one trial per GPU slot at once (``gpus`` by ``gpus_per_trial``).
    However the worker ends, the sweep's status and its parent run's are recorded
    (:mod:`sweeps.runner._ending`).
    """
    worker = worker_tag()
    with phase("writer start"):
        tracking = ProcessTracking.for_uri(store.spec.mlflow_uri)
        tracking.store_ready()
        tracking.warm(*SUMMARY_MODULES)  # imported while it trains, not when it ends
    # The worker's MLflow work (its ending and summary too) runs in its tracking writer.
    routed, store.mlflow_via = store.mlflow_via, tracking
    try:
        with sweep_ending(store, record, worker) as ending:
            return _run(ending, progress or Progress(), fused, gpus, tracking)
    finally:
        store.mlflow_via = routed
        with phase("tracking flush"):
            tracking.close()


def _run(
    ending: Ending,
    progress: Progress,
    fused: int | str | None,
    gpus: Sequence[str],
    tracking: ProcessTracking,
) -> SweepOutcome:
    store, record, worker = ending.store, ending.record, ending.worker
    config = parse_config(record.config, f"sweep {record.name!r} in the store")
    space, device = search_space(config), resolve_device(config.workload.device)
    _share_cores(device)
    ending.interval = interval = heartbeat_interval()
    ending.study = study = _open_study(store, record, config, space, interval)
    _agree(store, study, record, STALE_AFTER_INTERVALS * interval)
    recorder = recorder_for(study)
    stop = threading.Event()
    makers = _slot_runners(store, config, device, gpus, stop)
    target = _mlflow_target(store, record, tracking)
    objective = _objective(config, space, device, makers[0], target, progress)
    n_trials = config.search.n_trials
    reopen = partial(reopen_if_ended, store, record.name)
    fused_context = _fused_context(
        config, fused, objective, target, store, recorder, space, worker, interval, progress
    )
    if fused_context is not None:  # a stopping worker may end the sweep; a batch reopens it
        fused_context.before_start = reopen
    since = riding_out_outages("count the trials", lambda: outcome_of(study, n_trials))
    watcher = _StaleWatcher(store, study, interval)
    starting, syncing = threading.Lock(), threading.Lock()  # one at a time per worker

    def one_round(slot: int) -> bool:
        outcome = riding_out_outages("count the trials", lambda: outcome_of(study, n_trials))
        progress.sweep(outcome, n_trials)
        check_failure_rate(outcome, since, config, record.name)
        if fused_context is not None:
            return _fused_batch(fused_context, n_trials)
        with starting, phase("sampling"):
            asked = _next_trial(store, recorder, n_trials, worker, interval, reopen)
        if asked is None:
            return False
        mine = replace(objective, get_runner=makers[slot])
        _one_trial(recorder, asked, mine, progress, makers[slot], config, interval)
        with syncing, phase("tracking flush"):
            target.tracking.sync().raise_errors()
        return True

    try:
        with _full_disk_named(store, record):
            if len(makers) > 1 and fused_context is None:
                run_slots(len(makers), one_round, stop)
            else:
                while one_round(0):
                    pass
            progress.sweep(outcome_of(study, n_trials), n_trials)
    finally:
        watcher.stop()
        if fused_context is not None and fused_context.sampling is not None:
            fused_context.sampling.close()
    return riding_out_outages("count the trials", lambda: outcome_of(study, n_trials))


def _objective(
    config: SweepConfig,
    space: SearchSpace,
    device: torch.device,
    get_runner: Callable[[], TrialRunner],
    target: MlflowTarget,
    progress: Progress,
) -> TrialObjective:
    """One trial's pipeline: suggest, train through the runner, track, tell."""
    return TrialObjective(
        suggest=space.suggest,
        get_runner=get_runner,
        settings=settings_of(config),
        run_params=run_params(config, device),
        mlflow=target,
        progress=progress.step,
    )


@contextlib.contextmanager
def _full_disk_named(store: Store, record: SweepRecord) -> Iterator[None]:
    """A disk that fills mid-sweep ends it with one line naming the full part, never retried."""
    try:
        yield
    except Exception as error:
        if is_disk_full(error, store.spec.directory):
            what, where = f"record sweep {record.name!r}", full_part(store.spec, error)
            raise store_full(what, where, error, KEPT) from None
        raise


def _slot_runners(
    store: Store,
    config: SweepConfig,
    device: torch.device,
    gpus: Sequence[str],
    stop: threading.Event,
) -> list[Callable[[], TrialRunner]]:
    """A trial runner factory per GPU slot (one slot unless a command shares ``gpus``)."""
    secrets = (store.spec.setting, store.spec.optuna_url, store.spec.mlflow_uri)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    slots = gpu_slots(gpus, config.workload.gpus_per_trial, torch.cuda.is_available(), visible)
    check_gpu_choice(split_command(config.workload.command or ""), slots)
    return [
        workload_factory(config, device, secrets=secrets, gpus=slot, stop=stop) for slot in slots
    ]


def _mlflow_target(store: Store, record: SweepRecord, tracking: ProcessTracking) -> MlflowTarget:
    """Where the worker's trials are tracked: child runs of the sweep's, through its writer."""
    bulk_runs = os.environ.get(BULK_ENV, "1") != "0"
    return MlflowTarget(
        tracking,
        record.mlflow_experiment_id or "",
        record.mlflow_parent_run_id or "",
        record.name,
        run_recorder(tracking, store.spec.mlflow_uri, bulk=bulk_runs),
    )


def _agree(store: Store, study: optuna.Study, record: SweepRecord, grace_s: float) -> None:
    """Make finished trials' runs agree with Optuna (a failure to do so waits for next time)."""
    try:
        make_runs_agree(store, study, record, grace_s)
    except Exception as error:  # the sweep itself will meet a store that is still failing
        log.warning("could not check that trials and runs agree: %s", one_line(str(error)))


def _share_cores(device: torch.device) -> None:
    """Leave a core to the tracking writer on a CPU (see ``docs/tracking.md``)."""
    if os.environ.get(THREADS_ENV):
        torch.set_num_threads(int(os.environ[THREADS_ENV]))
    elif device.type == "cpu" and (os.cpu_count() or 1) > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))


def _open_study(
    store: Store, record: SweepRecord, config: SweepConfig, space: SearchSpace, interval: int
) -> optuna.Study:
    """The sweep's study, on a storage that fails a trial whose worker went quiet.

    Stale after two heartbeat intervals, checked every half interval: within two and a half.
    """
    storage = store.heartbeat_storage(
        interval, STALE_AFTER_INTERVALS * interval, stale_trial_handler(store)
    )
    sampler, pruner = make_sampler(config, space), make_pruner(config)
    return optuna.load_study(
        study_name=record.study_name, storage=storage, sampler=sampler, pruner=pruner
    )


def _fused_context(
    config: SweepConfig,
    fused: int | str | None,
    objective: TrialObjective,
    target: MlflowTarget,
    store: Store,
    recorder: TrialRecorder,
    space: SearchSpace,
    worker: str,
    interval: int,
    progress: Progress,
) -> FusedContext | None:
    """The fused-batch context when more than one trial is to be stacked, else None."""
    setting = config.execution.fused_trials if fused is None else fused
    if setting == 1:
        return None
    from sweeps.space import BatchSampling
    from sweeps.trials.fused import auto_fused_trials, fusable_task

    try:
        task = fusable_task(as_runner(objective.get_runner()))
    except ValueError as error:
        raise UsageError(f"--fused / execution.fused_trials: {error}") from None
    if setting == "auto":
        size = auto_fused_trials(task, objective.settings, config.search.n_trials)
        log.info("fused_trials: auto chose %d", size)
    else:
        size = int(setting)
    return FusedContext(
        store=store,
        study=recorder.study,
        recorder=recorder,
        runs=target.runs or run_recorder(target.tracking, "", bulk=False),
        config=config,
        space=space,
        settings=objective.settings,
        get_runner=lambda: task,
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
    started = time.perf_counter()
    with phase("sampling"):
        members = riding_out_outages("start the next batch", lambda: next_batch(context, n_trials))
    if members is None:
        return False
    times = BatchTimes(
        len(members), ask_s=time.perf_counter() - started, sample_s=context.last_sample_s
    )
    run_batch(context, members, times)
    context.batches.append(times)
    with contextlib.suppress(Exception):  # figures for the record, not worth failing a sweep
        figures = {
            "fused/bookkeeping_share": times.bookkeeping_share,
            "fused/ask_s": times.ask_s,
            "fused/sample_s": times.sample_s,
            "fused/train_s": times.train_s,
            "fused/tell_s": times.tell_s,
            "fused/sync_s": times.sync_s,
            "fused/trials": float(times.trials),
        }
        step = len(context.batches) - 1
        context.tracking.post(log_parent_metrics, context.parent_run_id, figures, step)
    return True


def _next_trial(
    store: Store,
    recorder: TrialRecorder,
    n_trials: int,
    worker: str,
    interval: int,
    before_start: Callable[[], None],
) -> Asked | None:
    """Start the next trial, or return None when the sweep has ``n_trials`` finished."""

    def ask(room: int) -> Asked:
        asked = recorder.ask()
        asked.trial.set_user_attr("worker", worker)
        return asked

    return riding_out_outages(
        "start the next trial",
        lambda: start_under_lock(store, recorder.study, n_trials, interval, ask, before_start),
    )


def _one_trial(
    recorder: TrialRecorder,
    asked: Asked,
    objective: TrialObjective,
    progress: Progress,
    get_runner: Callable[[], TrialRunner],
    config: SweepConfig,
    interval: int,
) -> None:
    # Beating from the start: a worker's first workload can take longer than the stale-trial
    # grace to build (first imports, a loaded machine), and the trial would be failed as stale.
    heartbeat = Heartbeats(recorder, [asked.trial_id], interval)
    try:
        runner = get_runner()
        progress.trial_started(asked.number, runner.planned_steps(config.workload.epochs))
        value = objective(asked.trial)
    except optuna.TrialPruned:
        _tell(recorder, asked, "PRUNED")
    except StoreError:
        _tell(recorder, asked, "FAIL")
        raise
    except (KeyboardInterrupt, SystemExit) as error:
        if "failure_reason" not in asked.trial.user_attrs:  # stopped before its objective ran
            with contextlib.suppress(Exception):
                asked.trial.set_user_attr("failure_reason", f"{type(error).__name__}: {error}")
        _tell(recorder, asked, "FAIL")
        raise
    except (TrialDiverged, Exception):  # user code that raised, or a diverged loss: recorded
        _tell(recorder, asked, "FAIL")
    else:
        _tell(recorder, asked, "COMPLETE", value)
    finally:
        heartbeat.stop()


def _tell(recorder: TrialRecorder, asked: Asked, state: str, value: float | None = None) -> None:
    """Record the outcome, unless another worker already failed the trial as stale."""
    riding_out_outages(
        f"record the outcome of trial {asked.number}",
        lambda: recorder.finish([Finish(asked.trial_id, state, value)], set()),
    )
