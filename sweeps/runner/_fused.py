"""Run a sweep K trials at a time as one stacked model (``execution.fused_trials``).

A batch is asked, trained and told as a unit, and the bookkeeping is batched with it:

* **Asking**: one read of the study's trials into an in-memory *mirror* study, which numbers
  new trials as the store will; the sweep's own sampler (each ask seeded by the sweep seed and
  the trial's number, :mod:`sweeps.space._samplers`) samples K parameter sets there, in parallel
  chunks for big batches
  (:mod:`sweeps.space._parallel`). Enqueued trials are taken first. On an RDB store, asking
  through the stored study costs tens of milliseconds a trial (each ask reloads the history).
* **Starting**: the K trials go into the store in one transaction
  (:class:`storage.bulk_trials.BulkTrialWriter`), their MLflow runs into MLflow's in one more
  (:class:`storage.bulk_runs.BulkRunWriter`), so each trial carries its run id from the start;
  one UPDATE a heartbeat interval keeps all K alive until they are told.
* **Pruning** is decided in the mirror (the sweep's pruner over the same history), so an
  evaluation point does not cost K reloads of the study; the intermediate values are written to
  the store with the tell.
* **Telling** is one transaction for the batch; the runs are ended by the tracking writer
  process (``Tracking.end_runs``) while the next batch trains, and a batch waits only for the
  previous batch's writes. The writes go through the worker's recorders
  (:mod:`storage.trial_recording`), chosen once: the bulk writers, or, where a store's tables
  are not the ones they know, Optuna's and MLflow's APIs trial by trial.

Each batch's bookkeeping share (ask + run creation + tell + waiting for the writer, over the
batch's wall time) is logged to the sweep's parent run as ``fused/bookkeeping_share``, with its
parts (``fused/ask_s``, ``fused/sample_s``, ``fused/train_s``, ``fused/tell_s``,
``fused/sync_s``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from optuna.trial import TrialState
from torch import Tensor

import schedulers
from storage.bulk_runs import NewRun
from storage.bulk_trials import Finish
from storage.disk_full import is_disk_full
from storage.errors import StoreError
from storage.interrupts import interrupt_behind, signals_taken
from storage.tracking import RunEnd
from sweeps.errors import FusedBatchFailed, SweepsError
from sweeps.phases import phase
from sweeps.runner._coordination import Heartbeats
from sweeps.runner._fused_batch import BatchTimes, FusedContext, Member
from sweeps.tracking import STUDY_TAG, SWEEP_TAG, draft_trial_plot, trial_plot
from sweeps.trials import TrainResult, failure_reason, trial_run_end
from sweeps.trials.fused import FusedOutcome, train_fused

if TYPE_CHECKING:
    from storage.tracking import Point


#: Fused batches larger than this skip each trial's lr/momentum PNG (about 60 ms a trial in
#: the writer); the runs' ``lr`` and ``momentum`` metrics chart the same curves in MLflow.
PLOT_LIMIT = 32
#: Plans longer than this (updates) are not drafted: their tables would sit in the writer's
#: queue (up to 32 x 100k x 2 floats, 51 MB); such PNGs are drawn from the history instead.
DRAFT_STEP_LIMIT = 100_000


def drafted_handles(planned: int, ran: Mapping[str, int | None]) -> set[str]:
    """The handles whose trial applied all ``planned`` updates: their draft is what they applied.

    ``ran`` holds each trial's updates applied (None when it has no result); ``planned`` is 0
    when nothing was drafted.
    """
    return {handle for handle, steps in ran.items() if planned and steps == planned}


class _BatchHooks:
    """Per-trial tracking of a fused batch, and pruning decided in the mirror study."""

    def __init__(self, context: FusedContext, members: Sequence[Member]) -> None:
        self.context, self.members = context, list(members)
        self.metric = context.settings.metric
        self._lr: list[Tensor] = []
        self._mom: list[Tensor] = []
        self._loss: list[Tensor] = []
        self._rows: list[tuple[int, list[int], list[bool], int]] = []
        self.planned = 0  # updates in the plan whose PNGs the writer drafts; 0: none

    def on_plan(self, lr: Tensor, momentum: Tensor | None) -> None:
        """Have the writer draw each trial's PNG from the plan while the batch trains."""
        if len(self.members) > PLOT_LIMIT or lr.shape[0] > DRAFT_STEP_LIMIT:
            return
        self.planned = lr.shape[0]
        lrs = lr.t().cpu().numpy()
        moms = None if momentum is None else momentum.t().cpu().numpy()
        for row, member in enumerate(self.members):
            kwargs = {"lr": lrs[row], "momentum": None if moms is None else moms[row]}
            self.context.tracking.call_when_idle(member.handle, draft_trial_plot, **kwargs)

    def drafted(self, told: Sequence[tuple[Member, MemberOutcome]]) -> set[str]:
        """The handles whose trial applied every planned update: their draft is their PNG."""
        ran = {m.handle: None if o.result is None else o.result.steps for m, o in told}
        return drafted_handles(self.planned, ran)

    def on_steps(
        self,
        step: int,
        members: Sequence[int],
        alive: Sequence[bool],
        lr: Tensor,
        momentum: Tensor | None,
        losses: Tensor,
    ) -> None:
        self._lr.append(lr)
        self._loss.append(losses)
        if momentum is not None:
            self._mom.append(momentum)
        self._rows.append((step, list(members), list(alive), int(time.time() * 1000)))
        if step % 10 == 0:
            self.context.progress_step(self.members[0].number, step + 1)

    def on_eval(
        self, step: int, samples: int, metrics: Mapping[int, dict[str, float]]
    ) -> set[int]:
        self.flush(extra={k: (step, v) for k, v in metrics.items()})
        stop: set[int] = set()
        for index, values in metrics.items():
            value = values.get(self.metric)
            if value is None or not math.isfinite(value):
                continue
            member = self.members[index]
            member.intermediate.append((len(member.intermediate) + 1, value))
            member.shadow.report(value, len(member.intermediate))
            if member.shadow.should_prune():
                stop.add(index)
        return stop

    def flush(self, extra: Mapping[int, tuple[int, dict[str, float]]] | None = None) -> None:
        """Ship buffered per-step values (one device sync), plus evaluation metrics."""
        points: dict[int, list[Point]] = {}
        if self._rows:
            # Rows shrink when the stack is compacted: concatenate, one sync for all of it.
            lrs = torch.cat(self._lr).tolist()
            losses = torch.cat(self._loss).float().tolist()
            moms = torch.cat(self._mom).tolist() if self._mom else None
            offset = 0
            for step, members, alive, now in self._rows:
                for row, index in enumerate(members):
                    at = offset + row
                    if not alive[row]:
                        continue
                    out = points.setdefault(index, [])
                    out.append(("lr", lrs[at], step, now))
                    if moms is not None:
                        out.append(("momentum", moms[at], step, now))
                    out.append(("train_loss", losses[at], step, now))
                offset += len(members)
        now = int(time.time() * 1000)
        for index, (step, values) in (extra or {}).items():
            last = max(step - 1, 0)
            points.setdefault(index, []).extend(
                (key, float(value), last, now) for key, value in values.items()
            )
        for index, found in points.items():
            self.context.tracking.log_metrics(self.members[index].handle, found)
        self._lr, self._mom, self._loss, self._rows = [], [], [], []


def run_batch(context: FusedContext, members: list[Member], times: BatchTimes) -> None:
    """Train ``members`` as one stack, then record every trial's outcome.

    The batch's MLflow writes are left to the writer while the next batch trains; before
    queueing its own, a batch waits for the previous batch's (``sync_s``), which keeps the
    writer at most one batch behind.
    """
    # Beating from the start: building a worker's first workload can outlast the grace.
    beats = Heartbeats(context.recorder, [m.trial_id for m in members], context.interval)
    started = time.perf_counter()
    done: set[int] = set()  # trial ids whose outcome is recorded
    try:
        workload = context.get_runner()
        total = workload.steps_per_epoch * context.settings.epochs
        context.progress_start([m.number for m in members], total)
        hooks = _BatchHooks(context, members)
        started = time.perf_counter()  # building the workload is not bookkeeping
        _start_runs(context, members)
        times.ask_s += time.perf_counter() - started
        started = time.perf_counter()
        signals = signals_taken()
        try:
            with phase("training"):
                outcome = train_fused(
                    workload, [m.schedule for m in members], context.settings, hooks
                )
        except Exception as error:  # the user's task (or its sys.exit) in a stacked model
            interrupt = interrupt_behind(error, signals)  # a library's error hiding a signal
            if interrupt is not None:
                raise interrupt from error
            if isinstance(error, (SweepsError, StoreError)) or is_disk_full(error):
                raise
            raise FusedBatchFailed([m.number for m in members], error) from error
        times.train_s = time.perf_counter() - started
        tell_started = time.perf_counter()
        hooks.flush()
        told = [(m, _member_outcome(context, outcome, i, started)) for i, m in enumerate(members)]
        # Heartbeats go on until every member is told: telling hundreds of trials one by
        # one (Optuna's API path) can outlast the stale-trial grace period.
        _finish(context, told, done, hooks.drafted(told))
        beats.stop()
        times.tell_s = time.perf_counter() - tell_started
    except BaseException as error:
        # Whatever stopped the batch (Ctrl+C, a store error, a bug), no trial stays RUNNING;
        # trials already told keep their outcome and their runs.
        why = f"{type(error).__name__}: {error}"
        if isinstance(error, FusedBatchFailed):
            why = error.reason
        failed = MemberOutcome(TrialState.FAIL, None, why, None, started)
        with contextlib.suppress(Exception):
            _finish(context, [(m, failed) for m in members if m.trial_id not in done], done)
        beats.stop()
        raise
    mark = context.tracking.mark()
    if context.last_mark is not None:
        waited = time.perf_counter()
        with phase("tracking flush"):
            context.tracking.wait_for(context.last_mark).raise_errors()
        times.sync_s = time.perf_counter() - waited
    context.last_mark = mark


def _start_runs(context: FusedContext, members: Sequence[Member]) -> None:
    """Create the batch's MLflow runs now (ids on the trials at once); the writer fills them."""
    new = {}
    for member in members:
        number = member.number
        tags = {
            "mlflow.parentRunId": context.parent_run_id,
            SWEEP_TAG: context.config.name,
            STUDY_TAG: context.study.study_name,
            "onecycle.trial_number": str(number),
            "onecycle.fused_batch": str(len(members)),
        }
        params = {**schedulers.with_defaults("OneCycle", member.schedule), **context.run_params}
        new[member.handle] = NewRun(f"trial-{number:04d}", tags, params)
    run_ids = context.runs.open(context.experiment_id, new)
    context.recorder.attach_runs({m.trial_id: run_ids[m.handle] for m in members})


@dataclass(frozen=True)
class MemberOutcome:
    """One member's outcome (state, value, reason, result), as the batch records it."""

    state: TrialState
    value: float | None
    reason: str | None
    result: TrainResult | None
    started: float
    attrs: Mapping[str, Any] = field(default_factory=dict)


def _member_outcome(
    context: FusedContext, outcome: FusedOutcome, index: int, started: float
) -> MemberOutcome:
    result = outcome.results[index]
    ran = {"steps": result.steps}  # what every trial cost, however it ended
    if index in outcome.stopped:
        return MemberOutcome(TrialState.PRUNED, None, None, result, started, ran)
    value = result.final.get(context.settings.metric, math.nan)
    reason = failure_reason(result, context.settings.metric)
    if reason is not None:
        return MemberOutcome(TrialState.FAIL, None, reason, result, started, ran)
    attrs = {
        key: getattr(result, key)
        for key in ("steps", "samples", "wall_time_s", "best", "samples_to_target")
    }
    return MemberOutcome(TrialState.COMPLETE, float(value), None, result, started, attrs)


def _finish(
    context: FusedContext,
    told: Sequence[tuple[Member, MemberOutcome]],
    done: set[int],
    drafted: Collection[str] = (),
) -> None:
    """Record every member's outcome in Optuna and end their MLflow runs, a batch of writes each.

    The same mapping as the single-trial objective: a pruned trial's value is its last
    intermediate value (as ``study.tell`` does), a failed trial carries ``failure_reason``.
    The trial ids recorded go into ``done`` as they are, and the runs of those (and only
    those) are ended even if recording the rest fails, so a caller that then fails the batch
    leaves recorded trials and their runs as they are. The PNGs of ``drafted`` handles are the
    ones the writer drew from the plan.
    """
    outcomes: list[Finish] = []
    ends: dict[str, RunEnd] = {}
    for member, outcome in told:
        attrs = dict(outcome.attrs)
        if outcome.reason is not None:
            attrs["failure_reason"] = outcome.reason
        ends[member.handle] = trial_run_end(
            context.settings.metric,
            member.schedule,
            (outcome.state.name, outcome.reason),
            outcome.result,
            outcome.started,
            outcome.value,
            plot=False,
        )
        outcomes.append(
            Finish(member.trial_id, outcome.state.name, outcome.value, member.intermediate, attrs)
        )
    try:
        context.recorder.finish(outcomes, done)
    finally:
        ended = {m.handle: ends[m.handle] for m, _ in told if m.trial_id in done}
        context.tracking.end_runs(ended)
        if len(told) <= PLOT_LIMIT:  # drawn when the writer is idle; no batch waits for them
            for handle in ended:
                context.tracking.call_when_idle(handle, trial_plot, drafted=handle in drafted)
