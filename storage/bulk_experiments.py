"""A sweep's MLflow experiment found or made with SQL, in the process that needs its id.

MLflow's client lives in the tracking writer, whose MLflow import is not done until about half
a second after a command starts; a new sweep's record needs its experiment's id (and trials
need the record), so a fresh sweep waited for that import. Where the bulk writers may write (a
database at a schema revision CI tested, :mod:`storage.schema_guard`), this reads and inserts
the rows ``create_experiment`` would: the experiment, active, at the artifact location given,
with its tags, in one transaction. What it cannot mirror exactly is left to MLflow's API
(:meth:`BulkExperimentWriter.usable` says when): a location MLflow would rewrite (a relative
path, a ``file:`` URI), values longer than the columns, MLflow's workspaces turned on.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError

from storage.schema_guard import TableWriter

COLUMNS: dict[str, set[str]] = {
    "experiments": {
        "experiment_id",
        "name",
        "artifact_location",
        "lifecycle_stage",
        "creation_time",
        "last_update_time",
    },
    "experiment_tags": {"key", "value", "experiment_id"},
}
#: MLflow 3.10 and later keep each experiment's workspace; without workspaces it is ``default``,
#: the column's server default.
DEFAULTED = {"experiments": {"workspace"}}
DEFAULT_WORKSPACE = "default"
#: The width of the name and artifact location columns MLflow's migrations create.
MAX_COLUMN = 256
#: MLflow's limit on an experiment tag's key, and a value well under its own limit.
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 5000
#: With either set, MLflow files new experiments in a workspace of its choosing.
WORKSPACE_ENV = ("MLFLOW_ENABLE_WORKSPACES", "MLFLOW_WORKSPACE")
#: MLflow refuses an artifact location longer than this variable says.
LOCATION_LIMIT_ENV = "MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH"


@dataclass(frozen=True)
class FoundExperiment:
    """An experiment of the name asked for: its id, whether it is active, and its tags."""

    experiment_id: str
    active: bool
    tags: dict[str, str]


class BulkExperimentWriter(TableWriter):
    """Finds an experiment by name, creates one, sets its tags; see the module docstring."""

    LIBRARY = "mlflow"
    COLUMNS = COLUMNS
    DEFAULTED = DEFAULTED

    @staticmethod
    def usable(name: str, location: str, tags: Mapping[str, str]) -> bool:
        """Whether what this writes for these values is exactly what MLflow's API would."""
        if any(os.environ.get(env) not in (None, "", "0", "false") for env in WORKSPACE_ENV):
            return False
        scheme = urllib.parse.urlsplit(location).scheme
        # MLflow makes a relative path absolute, may rewrite a file: URI, refuses runs:/ ones.
        kept_as_given = location.startswith("/") or scheme not in ("", "file", "runs")
        limit = os.environ.get(LOCATION_LIMIT_ENV, "")
        longest = min(MAX_COLUMN, int(limit)) if limit.isdigit() else MAX_COLUMN
        return (
            0 < len(name) <= MAX_COLUMN
            and kept_as_given
            and len(location) <= longest
            and all(len(k) <= MAX_TAG_KEY and len(v) <= MAX_TAG_VALUE for k, v in tags.items())
        )

    def find(self, name: str) -> FoundExperiment | None:
        """The experiment called ``name`` (in the default workspace), deleted ones included."""
        experiments, tags = self.tables["experiments"], self.tables["experiment_tags"]
        where = experiments.c.name == name
        if "workspace" in experiments.c:
            where = and_(where, experiments.c.workspace == DEFAULT_WORKSPACE)
        with self.engine.connect() as connection:
            row = connection.execute(
                select(experiments.c.experiment_id, experiments.c.lifecycle_stage).where(where)
            ).first()
            if row is None:
                return None
            found = connection.execute(
                select(tags.c.key, tags.c.value).where(tags.c.experiment_id == row.experiment_id)
            ).all()
        return FoundExperiment(
            str(row.experiment_id), row.lifecycle_stage == "active", {k: v for k, v in found}
        )

    def create(self, name: str, location: str, tags: Mapping[str, str]) -> str | None:
        """A new active experiment with ``tags``; None when one of that name exists already."""
        experiments = self.tables["experiments"]
        now = int(time.time() * 1000)
        try:
            with self.engine.begin() as connection:
                inserted = connection.execute(
                    experiments.insert().values(
                        name=name,
                        artifact_location=location,
                        lifecycle_stage="active",
                        creation_time=now,
                        last_update_time=now,
                    )
                )
                (experiment_id,) = inserted.inserted_primary_key or (None,)
                if experiment_id is None:
                    raise RuntimeError("the database gave the new experiment no id")
                rows = [
                    {"key": k, "value": v, "experiment_id": experiment_id} for k, v in tags.items()
                ]
                if rows:
                    connection.execute(self.tables["experiment_tags"].insert(), rows)
        except IntegrityError:  # another process made it first (name is unique)
            return None
        return str(experiment_id)

    def set_tag(self, experiment_id: str, key: str, value: str) -> None:
        """Set one tag of the experiment, replacing its value if it has one."""
        table = self.tables["experiment_tags"]
        statement = self._insert(table).values(
            key=key, value=value, experiment_id=int(experiment_id)
        )
        with self.engine.begin() as connection:
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["key", "experiment_id"], set_={"value": value}
                )
            )
