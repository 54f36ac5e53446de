"""Build a scheduler from DeepSpeed's JSON ``scheduler`` block.

``from_config(optimizer, {"type": "OneCycle", "params": {...}})`` accepts exactly the keys
DeepSpeed's constructors accept, plus the 1-Cycle tutorial's ``post_cycle_decay_step_size`` (which
DeepSpeed itself rejects) as a spelling of ``decay_step_size``. Unknown keys are refused with a
did-you-mean. The inverse is :meth:`DeepSpeedScheduler.to_config`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from schedulers import _validation as check
from schedulers.groups import GROUP_SCHEDULES

if TYPE_CHECKING:
    from schedulers.deepspeed_api import DeepSpeedScheduler

#: Other spellings accepted in a block's params, per type: alias -> DeepSpeed key.
ALIASES: dict[str, dict[str, str]] = {
    "OneCycle": {"post_cycle_decay_step_size": "decay_step_size"},
}


_TYPES = ("LRRangeTest", "OneCycle", "WarmupLR", "WarmupDecayLR", "WarmupCosineLR")


def _signature(scheduler_type: str) -> list[inspect.Parameter]:
    """The keywords of a DeepSpeed scheduler's constructor, ``optimizer`` left out.

    Read from the torch-free functions in :mod:`schedulers.groups`, which take the same
    keywords with the same defaults (tested), so no torch is imported.
    """
    state = inspect.Parameter("last_batch_iteration", inspect.Parameter.KEYWORD_ONLY, default=-1)
    found = list(inspect.signature(GROUP_SCHEDULES[scheduler_type]).parameters.values())
    return [*found[1:], state]  # the first is the groups' base lrs


def parameter_names(scheduler_type: str) -> tuple[list[str], list[str]]:
    """All keyword names of a scheduler type and the required ones among them."""
    names, needed = [], []
    for parameter in _signature(scheduler_type):
        name = parameter.name
        names.append(name)
        if parameter.default is inspect.Parameter.empty:
            needed.append(name)
    return names, needed


def with_defaults(scheduler_type: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter of ``scheduler_type``: the given ones, and defaults for the rest.

    ``last_batch_iteration`` (resume state, not configuration) is left out.

    Example:
        >>> with_defaults("OneCycle", {"cycle_min_lr": 0.1, "cycle_max_lr": 1.0})["cycle_max_mom"]
        0.9
    """
    full: dict[str, Any] = {}
    for parameter in _signature(scheduler_type):
        name = parameter.name
        if name == "last_batch_iteration":
            continue
        if name in params:
            full[name] = params[name]
        elif parameter.default is not inspect.Parameter.empty:
            full[name] = parameter.default
    return full


def normalize_block(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Validate a block (or a whole DeepSpeed config holding one) into ``(type, params)``.

    Example:
        >>> normalize_block({"type": "OneCycle",
        ...                  "params": {"cycle_min_lr": 0, "cycle_max_lr": 1,
        ...                             "post_cycle_decay_step_size": 5}})
        ('OneCycle', {'cycle_min_lr': 0, 'cycle_max_lr': 1, 'decay_step_size': 5})
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"scheduler config must be a mapping, got {type(config).__name__}")
    block = config
    if "type" not in config and "scheduler" in config:
        block = config["scheduler"]
        if not isinstance(block, Mapping):
            raise TypeError(f"`scheduler` must be a mapping, got {type(block).__name__}")
    check.known_keys("the scheduler block", block.keys(), ["type", "params"])
    check.required("the scheduler block", block, ["type"])
    kind = block["type"]
    if kind not in _TYPES:
        check.known_keys("`scheduler.type`", [str(kind)], list(_TYPES))
    raw = block.get("params") or {}
    if not isinstance(raw, Mapping):
        raise TypeError(f"`scheduler.params` must be a mapping, got {type(raw).__name__}")
    params = dict(raw)
    for alias, key in ALIASES.get(kind, {}).items():
        if alias not in params:
            continue
        value = params.pop(alias)
        if key in params and params[key] != value:
            raise ValueError(
                f"`{alias}` is another name for `{key}`; got both, with different values "
                f"({value!r} and {params[key]!r})"
            )
        params[key] = value
    names, needed = parameter_names(kind)
    check.known_keys(f"{kind} params", params.keys(), names)
    check.required(f"{kind} params", params, needed)
    return kind, params


def from_config(optimizer: object, config: Mapping[str, Any]) -> DeepSpeedScheduler:
    """Build the scheduler a DeepSpeed ``scheduler`` block describes.

    Example:
        >>> import torch
        >>> opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
        >>> block = {"type": "OneCycle", "params": {"cycle_min_lr": 1e-3, "cycle_max_lr": 1e-2}}
        >>> from_config(opt, block).to_config()["params"]["cycle_min_lr"]
        0.001
    """
    from schedulers.deepspeed_api import SCHEDULER_TYPES

    kind, params = normalize_block(config)
    return SCHEDULER_TYPES[kind](optimizer, **params)
