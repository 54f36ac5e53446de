"""The bulk path is taken only on schema revisions CI has tested; any other takes the APIs."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import optuna
import pytest
from sqlalchemy import text

from storage import StoreSpec, open_store
from storage.bulk_metrics import BulkMetricWriter
from storage.bulk_runs import BulkRunWriter, NewRun
from storage.bulk_trials import BulkTrialWriter
from storage.connect import engine_for
from storage.schema_age import installed_revisions
from storage.schema_revisions import KNOWN_REVISIONS, schema_revision
from storage.tracking import InlineTracking
from storage.trial_queries import count_by_state
from storage.trial_recording import run_recorder, trial_recorder
from tests.storage_tests.test_trial_recording import _comparable, _record

pytestmark = pytest.mark.versions


def _stamp(url: str, revision: str) -> None:
    engine = engine_for(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


@pytest.mark.parametrize("library", ["optuna", "mlflow"])
def test_the_installed_libraries_write_revisions_on_the_allowlist(library: str) -> None:
    installed = installed_revisions(library)
    assert installed.head in KNOWN_REVISIONS[library], (
        f"{library} {installed.version} writes schema revision {installed.head}, which the bulk "
        "writers were not tested against: run tests/storage_tests on it (bulk path against the "
        "API path) and add it to storage/schema_revisions.py:KNOWN_REVISIONS when they pass"
    )


def test_a_stamped_revision_takes_the_api_path_and_records_the_same(
    new_spec: Callable[..., StoreSpec], caplog: pytest.LogCaptureFixture
) -> None:
    unknown = uuid.uuid4().hex[:12]  # each run its own: the line is said once per process
    reference, stamped = new_spec(), new_spec()
    with open_store(reference) as store:
        assert schema_revision(store.engine) in KNOWN_REVISIONS["optuna"]
        study = optuna.create_study(study_name="s", storage=store.optuna_storage)
        assert type(trial_recorder(study)).__name__ == "_BulkTrials"
        expected = [_comparable(t) for t in _record_all(study)]
    with open_store(stamped) as store:
        study = optuna.create_study(study_name="s", storage=store.optuna_storage)
        client = store.mlflow
        _stamp(stamped.optuna_url, unknown)  # as a library release CI has not seen would leave it
        _stamp(stamped.mlflow_uri, unknown)
        with caplog.at_level(logging.WARNING, logger="storage.schema_revisions"):
            assert type(trial_recorder(study)).__name__ == "_ApiTrials"
            tracking = InlineTracking(stamped.mlflow_uri)
            recorder = run_recorder(tracking, stamped.mlflow_uri)
            assert type(recorder).__name__ == "_ApiRuns"
            experiment = client.create_experiment(f"runs-{unknown}")
            run = NewRun("trial-0001", {"onecycle.trial_number": "1"}, {"cycle_max_lr": 0.1})
            run_id = recorder.open(experiment, {"h": run})["h"]
            tracking.log_metrics("h", [("lr", 0.1, 0, 0), ("lr", 0.2, 1, 1)])
            tracking.close()
            found = client.get_run(run_id)
            assert found.info.run_name == "trial-0001"  # (closing the tracking ended it)
            assert found.data.params == {"cycle_max_lr": "0.1"}
            assert found.data.tags["onecycle.trial_number"] == "1"
            assert [m.value for m in client.get_metric_history(run_id, "lr")] == [0.1, 0.2]
            assert BulkTrialWriter.for_engine(store.optuna_storage.engine) is None
            assert BulkRunWriter.for_uri(stamped.mlflow_uri) is None
            assert BulkMetricWriter.for_uri(stamped.mlflow_uri) is None
            assert [_comparable(t) for t in _record_all(study)] == expected
            assert count_by_state(study)["complete"] == 2  # the API answers the count
        said = [r.getMessage() for r in caplog.records if unknown in r.getMessage()]
        assert len(said) == 2, said  # once per library and revision, not per writer
        assert any(line.startswith("writing optuna's tables through its API") for line in said)
        assert all("not tested against" in line for line in said)


def _record_all(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    _record(study, bulk=True)
    return study.get_trials(deepcopy=False)


def test_optunas_own_schema_check_is_skipped_only_for_a_store_read_at_its_head(
    new_spec: Callable[..., StoreSpec],
) -> None:
    """Opening a store reads its Optuna revision anyway: at Optuna's head, Optuna's own check
    (every migration script imported) is skipped; any other store still gets it."""
    spec = new_spec()
    with open_store(spec) as store:
        assert not store.optuna_at_head  # a new store: Optuna makes its schema and checks it
        assert not store.optuna_storage.skip_compatibility_check
        optuna.create_study(study_name="s", storage=store.optuna_storage)
    with open_store(spec) as store:
        assert store.optuna_at_head
        assert store.optuna_storage.skip_compatibility_check
        assert store.heartbeat_storage(10, 20).skip_compatibility_check
        study = optuna.load_study(study_name="s", storage=store.optuna_storage)
        study.tell(study.ask(), 1.0)
    engine = engine_for(spec.optuna_url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))  # no revision to go by
    try:
        with open_store(spec) as store:
            assert not store.optuna_at_head
            assert not store.optuna_storage.skip_compatibility_check
            study = optuna.load_study(study_name="s", storage=store.optuna_storage)
            assert study.best_value == 1.0
        # Optuna's own path ran: it stamped the revision it found the tables at.
        assert schema_revision(engine) == installed_revisions("optuna").head
    finally:
        engine.dispose()
