"""from_config / to_config round trips over generated blocks of every scheduler type (hypothesis).

The expected block is stated here: the keys given, and for the rest DeepSpeed's defaults as
``DEEPSPEED_SEMANTICS.md`` lists them, not as the code declares them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import schedulers

#: DeepSpeed 0.19.8's constructor defaults (DEEPSPEED_SEMANTICS.md 1.1, 2-5).
DEFAULTS: dict[str, dict[str, Any]] = {
    "OneCycle": {
        "decay_lr_rate": 0.0,
        "cycle_first_step_size": 2000,
        "cycle_second_step_size": None,
        "cycle_first_stair_count": 0,
        "cycle_second_stair_count": None,
        "decay_step_size": 0,
        "cycle_momentum": True,
        "cycle_min_mom": 0.8,
        "cycle_max_mom": 0.9,
        "decay_mom_rate": 0.0,
    },
    "LRRangeTest": {
        "lr_range_test_min_lr": 0.001,
        "lr_range_test_step_size": 2000,
        "lr_range_test_step_rate": 1.0,
        "lr_range_test_staircase": False,
    },
    "WarmupLR": {
        "warmup_min_lr": 0.0,
        "warmup_max_lr": None,
        "warmup_num_steps": 1000,
        "warmup_type": "log",
    },
    "WarmupDecayLR": {
        "warmup_min_lr": 0.0,
        "warmup_max_lr": 0.001,
        "warmup_num_steps": 1000,
        "warmup_type": "log",
    },
    "WarmupCosineLR": {
        "warmup_min_ratio": 0.0,
        "warmup_num_steps": 1000,
        "cos_min_ratio": 0.0001,
        "warmup_type": "log",
    },
}
REQUIRED = {
    "OneCycle": {"cycle_min_lr", "cycle_max_lr"},
    "WarmupDecayLR": {"total_num_steps"},
    "WarmupCosineLR": {"total_num_steps"},
}
real = st.floats(0.0, 10.0, allow_nan=False)
steps = st.integers(1, 5000)
warmup_type = st.sampled_from(["log", "linear"])


@st.composite
def one_cycle(draw: st.DrawFn) -> dict[str, Any]:
    low = draw(st.floats(1e-6, 1.0))
    first = draw(st.integers(1, 3000))
    second = draw(st.integers(0, 3000))
    mom_low = draw(st.floats(0.0, 0.98))
    return {
        "cycle_min_lr": low,
        "cycle_max_lr": low * draw(st.floats(1.0, 1000.0)),
        "decay_lr_rate": draw(real),
        "cycle_first_step_size": first,
        "cycle_second_step_size": second,
        "cycle_first_stair_count": draw(st.integers(0, min(first, second) or first)),
        "cycle_second_stair_count": draw(st.integers(0, second)),
        "decay_step_size": draw(st.integers(0, 1000)),
        "cycle_momentum": draw(st.booleans()),
        "cycle_min_mom": mom_low,
        "cycle_max_mom": draw(st.floats(mom_low, 0.99)),
        "decay_mom_rate": draw(st.floats(-1.0, 1.0)),
    }


@st.composite
def warmup(draw: st.DrawFn, decay: bool) -> dict[str, Any]:
    low = draw(real)
    params = {
        "warmup_min_lr": low,
        "warmup_max_lr": low + draw(real),
        "warmup_num_steps": draw(steps),
        "warmup_type": draw(warmup_type),
    }
    return {**params, "total_num_steps": draw(steps)} if decay else params


PARAMS = {
    "OneCycle": one_cycle(),
    "LRRangeTest": st.fixed_dictionaries(
        {
            "lr_range_test_min_lr": st.floats(1e-6, 1.0),
            "lr_range_test_step_size": steps,
            "lr_range_test_step_rate": real,
            "lr_range_test_staircase": st.booleans(),
        }
    ),
    "WarmupLR": warmup(decay=False),
    "WarmupDecayLR": warmup(decay=True),
    "WarmupCosineLR": st.fixed_dictionaries(
        {
            "total_num_steps": steps,
            "warmup_min_ratio": st.floats(0.0, 1.0),
            "warmup_num_steps": steps,
            "cos_min_ratio": st.floats(0.0, 1.0),
            "warmup_type": warmup_type,
        }
    ),
}


@st.composite
def blocks(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A scheduler type and a valid subset of its params (required keys always there)."""
    kind = draw(st.sampled_from(sorted(PARAMS)))
    params = draw(PARAMS[kind])
    kept = draw(st.sets(st.sampled_from(sorted(params))))
    return kind, {k: v for k, v in params.items() if k in kept or k in REQUIRED.get(kind, ())}


def optimizer() -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=0.1)


def build(block: dict[str, Any]) -> schedulers.DeepSpeedScheduler | None:
    """The scheduler, or None when a left-out key's default conflicts with a given value (a
    ``cycle_min_mom`` above the default maximum, say): the message then names a key that was not
    given. Any other refusal of a generated (valid) block fails the test."""
    try:
        return schedulers.from_config(optimizer(), block)
    except ValueError as error:
        names = set(DEFAULTS[block["type"]]) | {"decay_step_size"}
        named = {name for name in names if re.search(rf"\b{name}\b", str(error))}
        given = set(block["params"]) | {"decay_step_size"}  # the alias names it too
        assert named - given, f"a valid block was refused: {error}"
        return None


@settings(max_examples=150, deadline=None)
@given(blocks(), st.booleans())
def test_to_config_is_the_given_keys_over_deepspeeds_defaults(
    generated: tuple[str, dict[str, Any]], tutorial_spelling: bool
) -> None:
    kind, params = generated
    given_params = dict(params)
    if tutorial_spelling and "decay_step_size" in given_params:  # the 1-Cycle tutorial's name
        given_params["post_cycle_decay_step_size"] = given_params.pop("decay_step_size")
    scheduler = build({"type": kind, "params": given_params})
    assume(scheduler is not None)
    assert scheduler is not None
    block = scheduler.to_config()
    assert block == {"type": kind, "params": {**DEFAULTS[kind], **params}}


@settings(max_examples=60, deadline=None)
@given(blocks())
def test_a_block_through_json_builds_the_same_schedule(
    generated: tuple[str, dict[str, Any]],
) -> None:
    kind, params = generated
    first = build({"type": kind, "params": params})
    assume(first is not None)
    assert first is not None
    block = first.to_config()
    wrapped = json.loads(json.dumps({"train_batch_size": 8, "scheduler": block}))
    again = schedulers.from_config(optimizer(), wrapped)
    assert again.to_config() == block
    for _ in range(50):
        assert again.get_last_lr() == first.get_last_lr()
        first.step()
        again.step()
