"""Reads of Optuna's own tables that its API makes slow or cannot express.

Counting a study's trials by state through the API loads every trial, so each new trial of a
long sweep cost more than the last; "running, started long ago, never a heartbeat" has no API
at all. Both are one query on Optuna's ``trials`` and ``trial_heartbeats`` tables, run only
when those tables have the columns written here (the schema guard the bulk writers use);
otherwise the API answers, slowly, or not at all. The private corners of Optuna these need
(the storage behind its cache) are read here and nowhere else.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Protocol, runtime_checkable

import optuna
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState
from sqlalchemy import Engine, text

from storage.schema_guard import tables_match

__all__ = [
    "count_by_state",
    "counts_in",
    "known_tables",
    "lost_in",
    "rdb_storage",
    "running_without_heartbeat",
    "stale_trial_ids",
]

COLUMNS = {
    "trials": {"trial_id", "number", "study_id", "state", "datetime_start"},
    "trial_heartbeats": {"trial_id"},
}


def rdb_storage(study: optuna.Study) -> optuna.storages.RDBStorage | None:
    """The study's RDB storage, looking through the cache Optuna wraps it in; else None."""
    storage = getattr(study._storage, "_backend", study._storage)
    return storage if isinstance(storage, optuna.storages.RDBStorage) else None


@functools.lru_cache(maxsize=32)
def _known(engine: Engine) -> bool:
    return tables_match(engine, "optuna", COLUMNS, read_only=COLUMNS)


def _queryable(study: optuna.Study) -> optuna.storages.RDBStorage | None:
    storage = rdb_storage(study)
    return storage if storage is not None and _known(storage.engine) else None


def count_by_state(study: optuna.Study) -> dict[str, int]:
    """How many trials the study holds in each state (lower-case names, every state present).

    Through a storage proxy, the proxy counts (:mod:`storage.proxy_client`).

    Example:
        >>> study = optuna.create_study()
        >>> _ = study.tell(study.ask(), 1.0)
        >>> count_by_state(study)["complete"]
        1
    """
    proxied = _proxied(study)
    if proxied is not None:
        return proxied.count_by_state(study._study_id)
    storage = _queryable(study)
    if storage is None:
        found = {state.name.lower(): 0 for state in TrialState}
        for trial in study.get_trials(deepcopy=False):
            found[trial.state.name.lower()] += 1
        return found
    return counts_in(storage.engine, storage.get_study_id_from_name(study.study_name))


def counts_in(engine: Engine, study_id: int) -> dict[str, int]:
    """:func:`count_by_state` for the study ``study_id`` in the Optuna database ``engine``."""
    found = {state.name.lower(): 0 for state in TrialState}
    with engine.connect() as connection:
        rows = connection.execute(
            text("select state, count(*) from trials where study_id = :id group by state"),
            {"id": study_id},
        ).all()
    for state, number in rows:
        name = state.name if isinstance(state, TrialState) else str(state)
        found[name.lower()] = int(number)
    return found


def running_without_heartbeat(study: optuna.Study, before: datetime) -> list[tuple[int, int]]:
    """(trial id, number) of RUNNING trials started before ``before`` that never beat."""
    proxied = _proxied(study)
    if proxied is not None:
        return proxied.running_without_heartbeat(study._study_id, before)
    storage = _queryable(study)
    if storage is None:
        return []
    return lost_in(storage.engine, storage.get_study_id_from_name(study.study_name), before)


def lost_in(engine: Engine, study_id: int, before: datetime) -> list[tuple[int, int]]:
    """:func:`running_without_heartbeat` for the study ``study_id`` in ``engine``'s database."""
    query = text(
        "select t.trial_id, t.number from trials t "
        "left join trial_heartbeats h on h.trial_id = t.trial_id "
        "where t.study_id = :id and t.state = 'RUNNING' and h.trial_id is null "
        "and t.datetime_start < :cutoff"
    )
    with engine.connect() as connection:
        rows = connection.execute(query, {"id": study_id, "cutoff": before}).all()
    return [(int(trial_id), int(number)) for trial_id, number in rows]


def known_tables(engine: Engine) -> bool:
    """Whether the queries here may run on ``engine``'s Optuna tables."""
    return _known(engine)


@runtime_checkable
class CountsItself(Protocol):
    """A storage that answers these queries itself (a storage proxy's client)."""

    def count_by_state(self, study_id: int) -> dict[str, int]:
        """The study's trials by state."""
        ...

    def running_without_heartbeat(self, study_id: int, before: datetime) -> list[tuple[int, int]]:
        """(id, number) of running trials started before ``before`` that never beat."""
        ...


def stale_trial_ids(study: optuna.Study) -> list[int]:
    """Running trials whose last heartbeat is past the storage's grace: Optuna's own query.

    Lets a watcher look before it takes the sweep's lock to fail them (a proxy answers it).
    """
    storage = study._storage
    if not isinstance(storage, BaseHeartbeat) or storage.get_heartbeat_interval() is None:
        return []
    return [int(trial_id) for trial_id in storage._get_stale_trial_ids(study._study_id)]


def _proxied(study: optuna.Study) -> CountsItself | None:
    """The study's storage when it answers these queries itself."""
    storage = study._storage
    return storage if isinstance(storage, CountsItself) else None
