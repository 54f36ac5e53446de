"""A sweep's search space is built (and its corners checked) once per process and config."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from sweeps.cli import main
from sweeps.errors import UsageError
from sweeps.runner import parse_config
from sweeps.space import SearchSpace, search_space
from tests.fixtures import write_sweep

SPACE = {"cycle_min_lr": {"low": 0.001, "high": 0.01}, "cycle_max_lr": {"low": 0.02, "high": 0.1}}


def _data(name: str, space: dict[str, Any] = SPACE) -> dict[str, Any]:
    return {"name": name, "workload": {"builtin": "digits"}, "search": {"space": space}}


def test_equal_configs_share_one_space_and_a_refused_one_is_refused_every_time() -> None:
    name = f"s{uuid.uuid4().hex[:8]}"
    first = search_space(parse_config(_data(name)))
    assert search_space(parse_config(_data(name))) is first  # parsed again, equal: the same
    assert search_space(parse_config(_data(name + "x"))) is not first
    bad = dict(SPACE, cycle_first_step_size={"low": 10.5, "high": 20})  # not an integer
    for _ in range(2):  # parsing checks the space: nothing of a refused one is kept
        with pytest.raises(UsageError, match="an integer parameter needs integer"):
            parse_config(_data(name, bad))


@pytest.mark.slow  # a whole (one-trial) sweep
def test_a_run_builds_its_space_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file check, the sweep's record and its runner: one build between them (it was three,
    each checking every corner of the space)."""
    built: list[str] = []
    original = SearchSpace.__init__

    def counted(self: SearchSpace, config: Any) -> None:
        built.append(config.name)
        original(self, config)

    monkeypatch.setattr(SearchSpace, "__init__", counted)
    name = f"once{uuid.uuid4().hex[:8]}"
    config = _data(name)
    config["workload"] = {"builtin": "digits", "epochs": 1, "options": {"hidden": [8]}}
    config["search"].update(n_trials=1, sampler="random", pruner="none")
    path = write_sweep(tmp_path, config)
    assert main(["run", str(path), "--store", str(tmp_path / "store")]) == 0
    assert built.count(name) == 1, built
