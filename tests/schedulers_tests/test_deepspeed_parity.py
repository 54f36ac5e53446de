"""Every schedule, every step, against the real DeepSpeed 0.19.8 classes on CPU.

The lr must be bit-identical. Momentum (Adam's beta1) must be bit-identical after every step;
only the documented differences are allowed: beta2 keeps its configured value, and the value
right after construction is the schedule's step-0 value.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
import torch

import schedulers
from tests.requirements import require_module

os.environ.setdefault("DS_ACCELERATOR", "cpu")


@pytest.fixture(scope="module")
def ds() -> Any:
    require_module("deepspeed", "the parity tests compare against it; pip install '.[test]'")
    module = require_module("deepspeed.runtime.lr_schedules", "DeepSpeed's schedules")
    logging.getLogger("DeepSpeed").setLevel(logging.ERROR)
    return module


def adam(groups: int = 1, lrs: tuple[float, ...] = (0.01, 0.02, 0.03)) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        [{"params": [torch.zeros(2, requires_grad=True)], "lr": lrs[g]} for g in range(groups)],
        betas=(0.9, 0.999),
    )


ONE_CYCLE_CASES: dict[str, dict[str, Any]] = {
    "continuous-symmetric": dict(cycle_min_lr=1e-3, cycle_max_lr=1e-2, cycle_first_step_size=10),
    "seed-stairs-decay": dict(
        cycle_min_lr=1e-4,
        cycle_max_lr=1e-2,
        cycle_first_step_size=1000,
        cycle_first_stair_count=500,
        cycle_second_step_size=1000,
        cycle_second_stair_count=500,
        decay_lr_rate=1e-3,
        decay_step_size=1000,
        cycle_min_mom=0.85,
        cycle_max_mom=0.99,
    ),
    "stairs-not-dividing": dict(
        cycle_min_lr=0.001,
        cycle_max_lr=0.1,
        cycle_first_step_size=100,
        cycle_first_stair_count=7,
        cycle_second_step_size=150,
        cycle_second_stair_count=4,
        decay_lr_rate=0.5,
        decay_step_size=20,
    ),
    "asymmetric-decay-both": dict(
        cycle_min_lr=0.02,
        cycle_max_lr=0.3,
        cycle_first_step_size=30,
        cycle_second_step_size=70,
        decay_lr_rate=0.2,
        decay_step_size=7,
        decay_mom_rate=-0.001,
        cycle_min_mom=0.8,
        cycle_max_mom=0.95,
    ),
    "second-half-zero": dict(
        cycle_min_lr=1e-4,
        cycle_max_lr=1e-3,
        cycle_first_step_size=100,
        cycle_second_step_size=0,
        decay_lr_rate=0.01,
        decay_step_size=10,
    ),
    "fractional-step-sizes": dict(
        cycle_min_lr=0.01,
        cycle_max_lr=0.05,
        cycle_first_step_size=12.5,
        cycle_second_step_size=7.5,
        decay_lr_rate=1.0,
        decay_step_size=3,
    ),
    "stairs-equal-half": dict(
        cycle_min_lr=0.0,
        cycle_max_lr=1.0,
        cycle_first_step_size=16,
        cycle_first_stair_count=16,
    ),
    "rates-without-decay-size": dict(
        cycle_min_lr=0.1,
        cycle_max_lr=0.2,
        cycle_first_step_size=5,
        decay_lr_rate=3.0,
        decay_mom_rate=0.5,
    ),
    "flat-lr": dict(cycle_min_lr=0.05, cycle_max_lr=0.05, cycle_first_step_size=8),
    "stairs-first-only-default-second": dict(
        cycle_min_lr=1e-3,
        cycle_max_lr=4e-3,
        cycle_first_step_size=40,
        cycle_first_stair_count=4,
        decay_step_size=5,
        decay_lr_rate=0.1,
    ),
    "no-momentum-cycling": dict(
        cycle_min_lr=1e-3,
        cycle_max_lr=1e-2,
        cycle_first_step_size=20,
        cycle_momentum=False,
    ),
}


def cycle_length(params: dict[str, Any]) -> float:
    first = float(params["cycle_first_step_size"])
    second = params.get("cycle_second_step_size")
    return first + (first if second is None else float(second))


@pytest.mark.parametrize("name", sorted(ONE_CYCLE_CASES))
def test_one_cycle_matches_deepspeed_at_every_step(ds: Any, name: str) -> None:
    params = ONE_CYCLE_CASES[name]
    theirs_opt, ours_opt = adam(), adam()
    theirs = ds.OneCycle(theirs_opt, **params)
    ours = schedulers.OneCycle(ours_opt, **params)
    assert ours_opt.param_groups[0]["lr"] == theirs_opt.param_groups[0]["lr"]
    steps = int(cycle_length(params) * 1.5) + 50
    for step in range(1, steps + 1):
        theirs.step()
        ours.step()
        assert ours.last_batch_iteration == theirs.last_batch_iteration
        ours_group, theirs_group = ours_opt.param_groups[0], theirs_opt.param_groups[0]
        assert ours_group["lr"] == theirs_group["lr"], f"lr differs after step {step}"
        assert ours.get_last_lr() == theirs.get_last_lr()
        if params.get("cycle_momentum", True):
            assert ours_group["betas"][0] == theirs_group["betas"][0], f"beta1 after step {step}"
            assert ours_group["betas"][1] == 0.999  # ours keeps beta2; DeepSpeed forces 0.99
        else:
            assert ours_group["betas"] == theirs_group["betas"] == (0.9, 0.999)


def test_one_cycle_momentum_at_construction_is_step_zero_value(ds: Any) -> None:
    params = ONE_CYCLE_CASES["seed-stairs-decay"]
    theirs_opt, ours_opt = adam(), adam()
    theirs = ds.OneCycle(theirs_opt, **params)
    schedulers.OneCycle(ours_opt, **params)
    # DeepSpeed writes cycle_min_mom although its own get_mom() says cycle_max_mom.
    assert theirs_opt.param_groups[0]["betas"][0] == params["cycle_min_mom"]
    assert theirs.get_mom()[0][0] == params["cycle_max_mom"]
    assert ours_opt.param_groups[0]["betas"][0] == params["cycle_max_mom"]


def test_one_cycle_with_sgd_cycles_momentum_where_deepspeed_ignores_it(ds: Any) -> None:
    params = ONE_CYCLE_CASES["stairs-not-dividing"]

    def sgd() -> torch.optim.SGD:
        return torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.5, momentum=0.9)

    theirs_sgd, ours_sgd, reference = sgd(), sgd(), adam()
    theirs = ds.OneCycle(theirs_sgd, **params)
    ours = schedulers.OneCycle(ours_sgd, **params)
    ref = schedulers.OneCycle(reference, **params)
    moms = set()
    for _ in range(300):
        theirs.step(), ours.step(), ref.step()
        assert ours_sgd.param_groups[0]["lr"] == theirs_sgd.param_groups[0]["lr"]
        assert theirs_sgd.param_groups[0]["momentum"] == 0.9  # DeepSpeed never touches it
        assert ours_sgd.param_groups[0]["momentum"] == reference.param_groups[0]["betas"][0]
        moms.add(ours_sgd.param_groups[0]["momentum"])
    assert len(moms) > 4


def test_one_cycle_per_group_lists_match_deepspeed(ds: Any) -> None:
    params = dict(
        cycle_min_lr=[1e-3, 2e-3, 5e-4],
        cycle_max_lr=[1e-2, 3e-2, 5e-3],
        cycle_min_mom=[0.8, 0.85, 0.9],
        cycle_max_mom=[0.9, 0.95, 0.99],
        cycle_first_step_size=25,
        cycle_second_step_size=35,
        cycle_first_stair_count=5,
        decay_step_size=10,
        decay_lr_rate=0.3,
    )
    theirs_opt, ours_opt = adam(3), adam(3)
    theirs = ds.OneCycle(theirs_opt, **params)
    ours = schedulers.OneCycle(ours_opt, **params)
    for _ in range(120):
        theirs.step()
        ours.step()
        for g in range(3):
            assert ours_opt.param_groups[g]["lr"] == theirs_opt.param_groups[g]["lr"]
            assert ours_opt.param_groups[g]["betas"][0] == theirs_opt.param_groups[g]["betas"][0]


def test_one_cycle_jumps_with_explicit_batch_iteration_match_deepspeed(ds: Any) -> None:
    params = ONE_CYCLE_CASES["stairs-not-dividing"]
    theirs_opt, ours_opt = adam(), adam()
    theirs = ds.OneCycle(theirs_opt, **params)
    ours = schedulers.OneCycle(ours_opt, **params)
    for index in (-1, 0, 57, 99, 100, 101, 249, 250, 251, 400, 3, 1000):
        theirs.step(index)
        ours.step(index)
        assert ours_opt.param_groups[0]["lr"] == theirs_opt.param_groups[0]["lr"], index
        assert ours.get_lr() == theirs.get_lr()


def test_one_cycle_resume_mid_cycle_matches_deepspeed(ds: Any) -> None:
    params = ONE_CYCLE_CASES["seed-stairs-decay"]
    theirs_opt, ours_opt = adam(), adam()
    theirs = ds.OneCycle(theirs_opt, **params)
    ours = schedulers.OneCycle(ours_opt, **params)
    for _ in range(1500):
        theirs.step()
        ours.step()
    theirs_state, ours_state = theirs.state_dict(), ours.state_dict()
    assert ours_state == theirs_state == {"last_batch_iteration": 1499}
    theirs_opt2, ours_opt2 = adam(), adam()
    theirs2 = ds.OneCycle(theirs_opt2, **params)
    theirs2.load_state_dict(theirs_state)
    ours2 = schedulers.OneCycle(ours_opt2, **params)
    ours2.load_state_dict(ours_state)
    # Unlike DeepSpeed, the optimizer already holds the resumed values before the next step.
    assert ours_opt2.param_groups[0]["lr"] == ours_opt.param_groups[0]["lr"]
    for _ in range(1100):
        theirs2.step()
        ours2.step()
        assert ours_opt2.param_groups[0]["lr"] == theirs_opt2.param_groups[0]["lr"]
        assert ours_opt2.param_groups[0]["betas"][0] == theirs_opt2.param_groups[0]["betas"][0]


def test_one_cycle_decay_momentum_clamped_where_deepspeed_passes_one(ds: Any) -> None:
    params = dict(
        cycle_min_lr=1e-3,
        cycle_max_lr=1e-2,
        cycle_first_step_size=10,
        cycle_min_mom=0.85,
        cycle_max_mom=0.99,
        decay_mom_rate=0.01,
        decay_step_size=50,
    )
    theirs_opt, ours_opt = adam(), adam()
    theirs = ds.OneCycle(theirs_opt, **params)
    ours = schedulers.OneCycle(ours_opt, **params)
    for _ in range(600):
        theirs.step()
        ours.step()
        theirs_beta1 = theirs_opt.param_groups[0]["betas"][0]
        ours_beta1 = ours_opt.param_groups[0]["betas"][0]
        assert ours_beta1 == min(theirs_beta1, schedulers.MOMENTUM_CEILING)
    assert theirs_opt.param_groups[0]["betas"][0] > 1.0
    assert ours_opt.param_groups[0]["betas"][0] == schedulers.MOMENTUM_CEILING


OTHER_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("LRRangeTest", dict(lr_range_test_min_lr=1e-3, lr_range_test_step_size=100), 1),
    (
        "LRRangeTest",
        dict(
            lr_range_test_min_lr=[1e-4, 1e-3],
            lr_range_test_step_size=7,
            lr_range_test_step_rate=0.5,
            lr_range_test_staircase=True,
        ),
        2,
    ),
    ("WarmupLR", dict(warmup_min_lr=0.0, warmup_max_lr=0.01, warmup_num_steps=50), 1),
    ("WarmupLR", dict(warmup_min_lr=1e-4, warmup_num_steps=30, warmup_type="linear"), 2),
    ("WarmupLR", dict(warmup_num_steps=1), 1),
    (
        "WarmupDecayLR",
        dict(total_num_steps=200, warmup_min_lr=1e-5, warmup_max_lr=0.02, warmup_num_steps=40),
        1,
    ),
    (
        "WarmupDecayLR",
        dict(
            total_num_steps=90,
            warmup_max_lr=[0.01, 0.03],
            warmup_num_steps=30,
            warmup_type="linear",
        ),
        2,
    ),
    ("WarmupCosineLR", dict(total_num_steps=300, warmup_num_steps=40), 2),
    (
        "WarmupCosineLR",
        dict(
            total_num_steps=100,
            warmup_min_ratio=0.1,
            warmup_num_steps=20,
            cos_min_ratio=0.05,
            warmup_type="linear",
        ),
        1,
    ),
    ("WarmupCosineLR", dict(total_num_steps=10, warmup_num_steps=10), 1),
]


@pytest.mark.parametrize(("kind", "params", "groups"), OTHER_CASES)
def test_other_schedules_match_deepspeed_at_every_step(
    ds: Any, kind: str, params: dict[str, Any], groups: int
) -> None:
    theirs_opt, ours_opt = adam(groups), adam(groups)
    theirs = getattr(ds, kind)(theirs_opt, **params)
    ours = schedulers.from_config(ours_opt, {"type": kind, "params": params})
    assert ours.get_last_lr() == theirs.get_last_lr()
    for step in range(1, 400):
        theirs.step()
        ours.step()
        for g in range(groups):
            theirs_lr = theirs_opt.param_groups[g]["lr"]
            assert ours_opt.param_groups[g]["lr"] == theirs_lr, f"{kind} group {g} step {step}"
        assert ours_opt.param_groups[0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("name", sorted(ONE_CYCLE_CASES))
def test_to_config_block_drives_deepspeed_identically(ds: Any, name: str) -> None:
    ours = schedulers.OneCycle(adam(), **ONE_CYCLE_CASES[name])
    block = ours.to_config()
    theirs_opt, again_opt = adam(), adam()
    theirs = ds.OneCycle(theirs_opt, **block["params"])
    again = schedulers.from_config(again_opt, block)
    assert again.to_config() == block
    for _ in range(int(cycle_length(ONE_CYCLE_CASES[name])) + 30):
        theirs.step()
        again.step()
        assert again_opt.param_groups[0]["lr"] == theirs_opt.param_groups[0]["lr"]
