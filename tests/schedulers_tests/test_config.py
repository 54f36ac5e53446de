"""from_config / to_config: DeepSpeed blocks in, DeepSpeed blocks out."""

from __future__ import annotations

import json

import pytest
import torch

import schedulers


def opt() -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=0.1)


BLOCK = {
    "type": "OneCycle",
    "params": {
        "cycle_min_lr": 0.001,
        "cycle_max_lr": 0.01,
        "cycle_first_step_size": 100,
        "cycle_first_stair_count": 5,
        "decay_step_size": 10,
        "decay_lr_rate": 0.1,
    },
}


def test_block_builds_the_matching_class() -> None:
    sched = schedulers.from_config(opt(), BLOCK)
    assert isinstance(sched, schedulers.OneCycle)
    sched.step(99)
    assert sched.get_last_lr() == [0.001 + (0.01 - 0.001) * 1.0]


def test_whole_deepspeed_config_is_accepted() -> None:
    config = {"train_batch_size": 32, "scheduler": BLOCK, "optimizer": {"type": "Adam"}}
    assert isinstance(schedulers.from_config(opt(), config), schedulers.OneCycle)


def test_to_config_gives_every_key_and_round_trips_through_json() -> None:
    block = schedulers.from_config(opt(), BLOCK).to_config()
    names, _ = schedulers.config.parameter_names("OneCycle")
    assert set(block["params"]) == set(names) - {"last_batch_iteration"}
    for key, value in BLOCK["params"].items():
        assert block["params"][key] == value
    again = schedulers.from_config(opt(), json.loads(json.dumps(block)))
    assert again.to_config() == block


def test_tutorial_alias_post_cycle_decay_step_size_means_decay_step_size() -> None:
    params = dict(BLOCK["params"])
    params["post_cycle_decay_step_size"] = params.pop("decay_step_size")
    sched = schedulers.from_config(opt(), {"type": "OneCycle", "params": params})
    assert sched.to_config()["params"]["decay_step_size"] == 10
    assert "post_cycle_decay_step_size" not in sched.to_config()["params"]


def test_alias_and_key_with_different_values_are_refused() -> None:
    params = {**BLOCK["params"], "post_cycle_decay_step_size": 99}
    with pytest.raises(
        ValueError, match="`post_cycle_decay_step_size` is another name for `decay_step_size`"
    ):
        schedulers.from_config(opt(), {"type": "OneCycle", "params": params})


def test_misspelled_key_gets_a_did_you_mean() -> None:
    params = {**BLOCK["params"], "cycle_max_mon": 0.9}
    with pytest.raises(
        ValueError,
        match="unknown key `cycle_max_mon` in OneCycle params; did you mean `cycle_max_mom`",
    ):
        schedulers.from_config(opt(), {"type": "OneCycle", "params": params})


def test_unknown_type_names_the_choices() -> None:
    with pytest.raises(
        ValueError, match=r"unknown key `OneCylce` in `scheduler\.type`; did you mean `OneCycle`"
    ):
        schedulers.from_config(opt(), {"type": "OneCylce", "params": {}})


def test_missing_required_key_is_named() -> None:
    with pytest.raises(ValueError, match="missing required key `cycle_max_lr` in OneCycle params"):
        schedulers.from_config(opt(), {"type": "OneCycle", "params": {"cycle_min_lr": 0.1}})
    with pytest.raises(ValueError, match="missing required key `total_num_steps`"):
        schedulers.from_config(opt(), {"type": "WarmupCosineLR"})


def test_extra_block_key_and_bad_params_type_are_refused() -> None:
    with pytest.raises(
        ValueError, match="unknown key `param` in the scheduler block; did you mean `params`"
    ):
        schedulers.from_config(opt(), {"type": "OneCycle", "param": {}})
    with pytest.raises(TypeError, match=r"`scheduler\.params` must be a mapping, got list"):
        schedulers.from_config(opt(), {"type": "OneCycle", "params": [1, 2]})


@pytest.mark.parametrize("kind", sorted(schedulers.SCHEDULER_TYPES))
def test_every_type_round_trips(kind: str) -> None:
    needed = {"OneCycle": {"cycle_min_lr": 0.1, "cycle_max_lr": 0.2}}.get(kind, {})
    if kind in ("WarmupDecayLR", "WarmupCosineLR"):
        needed = {"total_num_steps": 100}
    block = schedulers.from_config(opt(), {"type": kind, "params": needed}).to_config()
    assert block["type"] == kind
    assert schedulers.from_config(opt(), block).to_config() == block


def test_the_torch_free_keyword_lists_are_the_adapters_own() -> None:
    """Every type's names and defaults come from schedulers.groups (no torch import); they
    must be exactly what the DeepSpeed-API constructors take."""
    import inspect

    from schedulers.config import _signature
    from schedulers.deepspeed_api import SCHEDULER_TYPES

    assert len(SCHEDULER_TYPES) == 5
    for kind in SCHEDULER_TYPES:
        adapter = [
            (p.name, p.default)
            for p in inspect.signature(SCHEDULER_TYPES[kind].__init__).parameters.values()
            if p.name not in ("self", "optimizer")
        ]
        assert [(p.name, p.default) for p in _signature(kind)] == adapter
