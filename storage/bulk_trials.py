"""Many Optuna trials started, kept alive and finished in one transaction each.

Optuna's RDB storage writes a trial through its ORM one attribute at a time: creating a trial
with eleven params and two user attributes is a dozen SELECT/INSERT round trips, and telling
it is as many again (about 12 ms and 8 ms a trial on SQLite here, more over a network). For a
fused batch of hundreds of trials that is tens of seconds per batch next to a few seconds of
training. This writer puts the same rows into Optuna's tables with one ``executemany`` per
table and one commit per batch:

* :meth:`BulkTrialWriter.start` inserts K RUNNING trials (numbers, params with their
  distributions, user attributes, a first heartbeat), numbered as Optuna numbers them (the
  count of the study's earlier trials), under the same row lock on the study that Optuna's own
  ``create_new_trial`` takes, so trials created by either path never share a number;
* :meth:`BulkTrialWriter.beat` moves every member's heartbeat forward with one UPDATE;
* :meth:`BulkTrialWriter.finish` sets state, value (for a pruned trial its last intermediate
  value, as ``study.tell`` does), intermediate values, user attributes and completion time of
  the trials that are still RUNNING (a trial another worker already failed
  as stale is left as it is, as ``study.tell`` would refuse it).

It is used only for a SQLite or PostgreSQL study whose tables have exactly the columns it was
written against (checked once); anything else goes through Optuna's API. Optuna's cache over
the RDB storage re-reads unfinished trials and every trial newer than the last finished one,
so trials written here are seen by the next ``get_trials``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select

from storage.errors import StoreError
from storage.schema_guard import TableWriter
from storage.trial_times import optuna_now

#: The columns this writer was written against (Optuna's schema since v3).
COLUMNS: dict[str, set[str]] = {
    "studies": {"study_id", "study_name"},
    "trials": {"trial_id", "number", "study_id", "state", "datetime_start", "datetime_complete"},
    "trial_params": {"param_id", "trial_id", "param_name", "param_value", "distribution_json"},
    "trial_user_attributes": {"trial_user_attribute_id", "trial_id", "key", "value_json"},
    "trial_values": {"trial_value_id", "trial_id", "objective", "value", "value_type"},
    "trial_intermediate_values": {
        "trial_intermediate_value_id",
        "trial_id",
        "step",
        "intermediate_value",
        "intermediate_value_type",
    },
    "trial_heartbeats": {"trial_heartbeat_id", "trial_id", "heartbeat"},
}
FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")


@dataclass(frozen=True)
class NewTrial:
    """A trial to start: params in their external form, with the distributions they came from."""

    params: Mapping[str, Any]
    distributions: Mapping[str, Any]
    user_attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Started:
    """A started trial: the store's id and the study-wide number."""

    trial_id: int
    number: int


@dataclass(frozen=True)
class Finish:
    """A trial's outcome: ``state`` is COMPLETE, PRUNED or FAIL; value only when COMPLETE.

    A PRUNED trial gets its last intermediate value as its value (unless NaN), as
    ``study.tell`` gives it.
    """

    trial_id: int
    state: str
    value: float | None = None
    intermediate: Sequence[tuple[int, float]] = ()
    user_attrs: Mapping[str, Any] = field(default_factory=dict)


def encode_value(value: float) -> tuple[float | None, str]:
    """Optuna's stored form of an objective value: finite, or +-inf as a type with no value."""
    if math.isnan(value):
        raise StoreError(f"value: must not be NaN for a finished trial, got {value}")
    if math.isinf(value):
        return None, "INF_POS" if value > 0 else "INF_NEG"
    return float(value), "FINITE"


def encode_intermediate(value: float) -> tuple[float | None, str]:
    """Optuna's stored form of an intermediate value (NaN allowed)."""
    if math.isnan(value):
        return None, "NAN"
    return encode_value(value)


class BulkTrialWriter(TableWriter):
    """Starts, beats and finishes many trials of one study at once; see the module docstring."""

    LIBRARY = "optuna"
    COLUMNS = COLUMNS
    READ_ONLY = frozenset({"studies"})  # only locked and read; other tables written whole

    def start(self, study_id: int, trials: Sequence[NewTrial]) -> list[Started]:
        """Insert ``trials`` as RUNNING with a first heartbeat, in order; their ids and numbers."""
        if not trials:
            return []
        t = self.tables
        now = optuna_now()
        with self.engine.begin() as connection:
            # The row lock Optuna's create_new_trial takes before numbering (PostgreSQL; SQLite
            # serialises writers anyway, and the insert below makes this transaction a writer).
            studies = t["studies"]
            locked = select(studies.c.study_id).where(studies.c.study_id == study_id)
            if connection.dialect.name == "postgresql":
                locked = locked.with_for_update()
            if connection.execute(locked).first() is None:
                raise StoreError(f"study_id: no study with id {study_id}")
            trials_table = t["trials"]
            rows = [
                {"number": None, "study_id": study_id, "state": "RUNNING", "datetime_start": now}
                for _ in trials
            ]
            inserted = connection.execute(
                trials_table.insert().returning(
                    trials_table.c.trial_id, sort_by_parameter_order=True
                ),
                rows,
            )
            ids = [int(row[0]) for row in inserted]
            earlier = connection.execute(
                select(func.count())
                .select_from(trials_table)
                .where(trials_table.c.study_id == study_id, trials_table.c.trial_id < ids[0])
            ).scalar_one()
            # Numbers as Optuna defines them: how many of the study's trials came before.
            numbered = [{"id_": id_, "number_": earlier + i} for i, id_ in enumerate(ids)]
            connection.execute(
                trials_table.update()
                .where(trials_table.c.trial_id == bindparam("id_"))
                .values(number=bindparam("number_")),
                numbered,
            )
            params, attrs = [], []
            for trial_id, trial in zip(ids, trials, strict=True):
                for name, value in trial.params.items():
                    distribution = trial.distributions[name]
                    params.append(
                        {
                            "trial_id": trial_id,
                            "param_name": name,
                            "param_value": distribution.to_internal_repr(value),
                            "distribution_json": _distribution_json(distribution),
                        }
                    )
                attrs.extend(_attr_rows(trial_id, trial.user_attrs))
            if params:
                connection.execute(t["trial_params"].insert(), params)
            if attrs:
                connection.execute(t["trial_user_attributes"].insert(), attrs)
            connection.execute(
                t["trial_heartbeats"].insert().values(heartbeat=func.current_timestamp()),
                [{"trial_id": trial_id} for trial_id in ids],
            )
        return [Started(trial_id, earlier + i) for i, trial_id in enumerate(ids)]

    def set_user_attrs(self, attrs: Mapping[int, Mapping[str, Any]]) -> None:
        """Set user attributes of many trials (``{trial_id: {key: value}}``) in one statement.

        Unlike :meth:`finish`, this does not look at the trials' states: it is for trials this
        process just started (a run id learned after the start).
        """
        rows = [row for trial_id, found in attrs.items() for row in _attr_rows(trial_id, found)]
        if not rows:
            return
        with self.engine.begin() as connection:
            self._upsert_attrs(connection, rows)

    def _upsert_attrs(self, connection: Any, rows: list[dict[str, Any]]) -> None:
        table = self.tables["trial_user_attributes"]
        upsert = self._insert(table)
        connection.execute(
            upsert.on_conflict_do_update(
                index_elements=["trial_id", "key"], set_={"value_json": upsert.excluded.value_json}
            ),
            rows,
        )

    def beat(self, trial_ids: Sequence[int]) -> None:
        """Record a heartbeat for every trial in ``trial_ids`` (one UPDATE)."""
        if not trial_ids:
            return
        beats = self.tables["trial_heartbeats"]
        with self.engine.begin() as connection:
            connection.execute(
                beats.update()
                .where(beats.c.trial_id.in_(list(trial_ids)))
                .values(heartbeat=func.current_timestamp())
            )

    def finish(self, outcomes: Sequence[Finish]) -> list[int]:
        """Record ``outcomes`` for the trials still RUNNING; the ids that were recorded."""
        if not outcomes:
            return []
        t = self.tables
        trials_table = t["trials"]
        now = optuna_now()
        with self.engine.begin() as connection:
            wanted = [outcome.trial_id for outcome in outcomes]
            running = select(trials_table.c.trial_id).where(
                trials_table.c.trial_id.in_(wanted), trials_table.c.state == "RUNNING"
            )
            if connection.dialect.name == "postgresql":
                running = running.with_for_update()
            else:  # take SQLite's write lock before reading, so the read cannot go stale
                connection.execute(
                    trials_table.update().where(trials_table.c.trial_id == -1).values(number=None)
                )
            open_ids = {int(row[0]) for row in connection.execute(running)}
            chosen = [outcome for outcome in outcomes if outcome.trial_id in open_ids]
            if not chosen:
                return []
            values, intermediate, attrs = [], [], []
            for outcome in chosen:
                if outcome.state not in FINISHED_STATES:
                    raise StoreError(
                        f"state: must be one of {', '.join(FINISHED_STATES)}, got {outcome.state}"
                    )
                steps: dict[int, float] = dict(outcome.intermediate)  # a later report wins
                value = outcome.value
                if value is None and outcome.state == "PRUNED" and steps:
                    # As study.tell does: a pruned trial's value is its last report, unless NaN.
                    last = steps[max(steps)]
                    value = None if math.isnan(last) else last
                if value is not None:
                    stored, kind = encode_value(value)
                    values.append(
                        {
                            "trial_id": outcome.trial_id,
                            "objective": 0,
                            "value": stored,
                            "value_type": kind,
                        }
                    )
                for step, value in steps.items():
                    stored, kind = encode_intermediate(value)
                    intermediate.append(
                        {
                            "trial_id": outcome.trial_id,
                            "step": step,
                            "intermediate_value": stored,
                            "intermediate_value_type": kind,
                        }
                    )
                attrs.extend(_attr_rows(outcome.trial_id, outcome.user_attrs))
            if values:
                connection.execute(t["trial_values"].insert(), values)
            if intermediate:
                connection.execute(t["trial_intermediate_values"].insert(), intermediate)
            if attrs:
                self._upsert_attrs(connection, attrs)
            connection.execute(
                trials_table.update()
                .where(trials_table.c.trial_id == bindparam("id_"))
                .values(state=bindparam("state_"), datetime_complete=now),
                [{"id_": outcome.trial_id, "state_": outcome.state} for outcome in chosen],
            )
        return [outcome.trial_id for outcome in chosen]


def _attr_rows(trial_id: int, attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
        for key, value in attrs.items()
    ]


def _distribution_json(distribution: Any) -> str:
    from optuna.distributions import distribution_to_json

    return str(distribution_to_json(distribution))
