"""The bulk metric writer and MLflow's ``log_batch`` agree on generated points (hypothesis).

Each example writes the same points to two fresh runs of one store, ours split into calls at
generated places, and compares every history and the latest values, NaN and infinities
included. The store is opened once per backend; each example writes to two new runs.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.entities import Metric

from storage import StoreSpec, open_store
from storage.bulk_metrics import BulkMetricWriter

pytestmark = pytest.mark.versions

NOW = int(time.time() * 1000)
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0]),
)
points = st.lists(
    st.tuples(
        st.sampled_from(["lr", "loss", "val_accuracy"]),
        values,
        st.integers(0, 6),  # steps that collide, so the latest-value rule matters
        st.integers(NOW, NOW + 3),
    ),
    min_size=1,
    max_size=40,
    unique_by=lambda p: (p[0], p[2], p[3], repr(p[1])),  # log_batch refuses exact repeats
)


def _value(value: float) -> tuple[bool, float]:
    """Comparable and sortable, NaN included (NaN equals nothing, itself neither)."""
    return (True, 0.0) if math.isnan(value) else (False, value)


def _state(client: Any, run_id: str) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    histories = {
        key: sorted(
            (m.step, m.timestamp, _value(m.value)) for m in client.get_metric_history(run_id, key)
        )
        for key in ("lr", "loss", "val_accuracy")
    }
    latest = {k: _value(v) for k, v in client.get_run(run_id).data.metrics.items()}
    return histories, latest


@pytest.mark.slow
def test_bulk_writes_equal_log_batch_on_generated_points(
    new_spec: Callable[..., StoreSpec],
) -> None:
    spec = new_spec()
    with open_store(spec) as store:
        client = store.mlflow
        experiment = client.create_experiment("generated")
        writer = BulkMetricWriter.for_uri(spec.mlflow_uri)
        assert writer is not None

        @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(points, st.lists(st.integers(0, 40), max_size=3))
        def agree(generated: list[tuple[str, float, int, int]], cuts: list[int]) -> None:
            ours = client.create_run(experiment).info.run_id
            theirs = client.create_run(experiment).info.run_id
            bounds = [0, *sorted(c for c in cuts if c < len(generated)), len(generated)]
            for start, end in itertools.pairwise(bounds):
                writer.write(ours, generated[start:end])
            client.log_batch(theirs, metrics=[Metric(k, v, t, s) for k, v, s, t in generated])
            assert _state(client, ours) == _state(client, theirs)

        agree()
        writer.close()
