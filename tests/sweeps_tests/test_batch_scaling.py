"""The batch-scaling study end to end at a tiny size: report structure, every curve tracked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from storage import open_store, resolve_store
from sweeps.cli import main
from sweeps.errors import UsageError
from sweeps.studies.batch_scaling import CURVE_TAG, parse_study
from tests.fixtures import EXAMPLES, example_sweep, write_sweep

pytestmark = pytest.mark.slow  # worker processes and whole sweeps; see pyproject's markers


def _tiny(tmp_path: Path) -> Path:
    config = example_sweep("batch_scaling", epochs=1, options={"rows": 3000, "hidden": [16]})
    config["scale"] = 4
    config["budget_factor"] = 2
    config["eval_samples"] = 512
    config["baseline_search"]["n_trials"] = 2
    config["onecycle_search"]["n_trials"] = 3
    config["onecycle_search"]["space"]["cycle_first_step_size"] = {"low": 2, "high": 4}
    config["scheduler"]["decay_step_size"] = 2
    config["range_test"]["steps"] = 30
    config["execution"] = {"fused_trials": 3}
    return write_sweep(tmp_path, config, "tiny")


def test_tiny_study_reports_four_tracked_curves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = tmp_path / "store"
    page = tmp_path / "report" / "batch_scaling.md"
    code = main(
        [
            "study",
            "batch-scaling",
            str(_tiny(tmp_path)),
            "--store",
            str(store_dir),
            "--report",
            str(page),
        ]
    )
    assert code == 0
    text = page.read_text()
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| schedule | batch | lr | final AUC | samples to target")
    assert [row.split("|")[1].strip() for row in table[1:]] == [
        "Baseline",
        "Fixed",
        "LinearScale",
        "1Cycle",
    ]
    assert "![AUC against samples](images/batch_scaling_auc.png)" in text
    assert "## Against the tutorial" in text
    for image in ("batch_scaling_auc.png", "batch_scaling_lr.png"):
        assert (page.parent / "images" / image).stat().st_size > 10_000
    with open_store(resolve_store(str(store_dir), env={})) as store:
        client = store.mlflow
        experiment = client.get_experiment_by_name("ctr-batch-scaling")
        study_runs = client.search_runs(
            [experiment.experiment_id], "tags.`onecycle.role` = 'study'"
        )
        assert len(study_runs) == 1
        parent = study_runs[0].info.run_id
        curves = client.search_runs(
            [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'"
        )
        labelled = {r.data.tags.get(CURVE_TAG): r for r in curves if r.data.tags.get(CURVE_TAG)}
        assert set(labelled) == {"Baseline", "Fixed", "LinearScale", "1Cycle"}
        for run in labelled.values():
            history = client.get_metric_history(run.info.run_id, "val_auc")
            assert len(history) >= 2, run.data.tags[CURVE_TAG]
            assert len(client.get_metric_history(run.info.run_id, "lr")) > 0
        # The baseline's lr sweep and the 1-Cycle sweep are under the same parent too.
        sweeps = [r for r in curves if r.data.tags.get("onecycle.role") == "sweep"]
        assert len(sweeps) == 1
        artifacts = {a.path for a in client.list_artifacts(parent)}
        assert {"batch_scaling.md", "batch_scaling_auc.png", "batch_scaling.json"} <= artifacts
        table_json = json.loads(
            Path(
                client.download_artifacts(parent, "batch_scaling.json", str(tmp_path))
            ).read_text()
        )
        assert [row["schedule"] for row in table_json["rows"]] == [
            "Baseline",
            "Fixed",
            "LinearScale",
            "1Cycle",
        ]
        assert table_json["rows"][0]["relative_to_baseline"] in (1.0, None)
    out = capsys.readouterr().out
    assert "target AUC" in out and "report:" in out


def test_study_file_errors_name_the_key() -> None:
    config = yaml.safe_load((EXAMPLES / "batch_scaling.yaml").read_text())
    config["scale"] = 1
    with pytest.raises(UsageError, match="scale: Input should be greater than or equal to 2"):
        parse_study(config)
    config = yaml.safe_load((EXAMPLES / "batch_scaling.yaml").read_text())
    config["baseline_search"]["lows"] = 1
    with pytest.raises(
        UsageError, match=r"baseline_search\.lows: unknown key; did you mean `low`"
    ):
        parse_study(config)
    config = yaml.safe_load((EXAMPLES / "batch_scaling.yaml").read_text())
    config["workload"] = {"entrypoint": "custom_train:train"}
    with pytest.raises(UsageError, match=r"workload.entrypoint: the batch-scaling study .*Task"):
        parse_study(config, base=EXAMPLES)
