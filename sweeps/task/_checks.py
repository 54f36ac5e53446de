"""What a task's methods must give, checked once before a sweep touches the store.

A mistake in user code (no batches, a metric ``evaluate`` does not return, a model off the
device) would otherwise surface as a trial failure deep into a sweep, after its records were
written. One untrained forward pass and one evaluation find it up front, as one line naming the
class, the method and what was wrong.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from sweeps.task._base import Task

T = TypeVar("T")


def first_batch(task: Task, epoch: int = 0) -> tuple[Tensor, Tensor]:
    """The first ``(inputs, targets)`` of ``batches(epoch)`` on the task's device."""
    batches: Iterable[Any] = _call(task, "batches", lambda: task.batches(epoch), f"({epoch})")
    for batch in batches:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ValueError(
                f"{task.name}.batches({epoch}): must yield (inputs, targets) pairs, "
                f"got {type(batch).__name__}"
            )
        return to_device(batch[0], task.device), to_device(batch[1], task.device)
    raise ValueError(f"{task.name}.batches({epoch}): yielded no batches")


def make_task(
    cls: type[Task], batch_size: int, seed: int, device: torch.device, options: Mapping[str, Any]
) -> Task:
    """``cls(batch_size, seed, device, **options)``; ``ValueError`` naming the option at fault.

    An option the constructor does not take is refused by name (with a did-you-mean) before it
    is called; anything the constructor raises becomes one line naming ``workload.options``.
    """
    taken = _option_names(cls)
    for key in options:
        if taken is not None and key not in taken:
            close = difflib.get_close_matches(key, taken, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else f"; it takes {sorted(taken)}"
            raise ValueError(f"workload.options.{key}: {cls.__name__} takes no such option{hint}")
    try:
        return cls(batch_size=batch_size, seed=seed, device=device, **options)
    except (Exception, SystemExit) as error:
        raise ValueError(
            f"workload.options: {cls.__name__}(batch_size=..., seed=..., device=..., "
            f"**options) raised {type(error).__name__}: {error}"
        ) from None


def _option_names(cls: type[Task]) -> list[str] | None:
    """The keyword options ``cls``'s constructor takes, or None when it takes any."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    fixed = {"batch_size", "seed", "device"}
    return [
        p.name
        for p in parameters
        if p.name not in fixed and p.kind is not inspect.Parameter.VAR_POSITIONAL
    ]


def to_device(value: Tensor, device: torch.device) -> Tensor:
    """``value`` on ``device`` (a no-op when it is there; a DataLoader yields CPU tensors)."""
    return value if value.device == device else value.to(device, non_blocking=True)


def build_model(task: Task) -> nn.Module:
    """``task.build_model()`` on the task's device, every parameter checked to be there."""
    model = _call(task, "build_model", task.build_model)
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"{task.name}.build_model(): must return a torch nn.Module, got {type(model).__name__}"
        )
    model = model.to(task.device)
    for name, parameter in model.named_parameters():
        if parameter.device != task.device:
            raise ValueError(
                f"{task.name}.build_model(): parameter `{name}` is on {parameter.device}, not on "
                f"the task's device {task.device}"
            )
    return model


def check_task(task: Task, metric: str, seed: int = 0) -> None:
    """Run each method once on an untrained model; ``ValueError`` on the first problem."""
    torch.manual_seed(seed)
    model = build_model(task)
    x, y = first_batch(task)
    held = int(x.shape[0]) if isinstance(x, Tensor) and x.dim() else task.batch_size
    if held < task.batch_size:
        raise ValueError(
            f"workload.batch_size: {task.batch_size} is more than {task.name}'s first batch "
            f"holds ({held} samples): the training set is smaller than one batch"
        )
    again, _ = first_batch(task)
    if again.shape != x.shape or not torch.equal(again, x):
        raise ValueError(
            f"{task.name}.batches(0): two calls gave different first batches; the same "
            "(seed, epoch) must give the same batches (seed the shuffle with both)"
        )
    model.train()
    loss = _call(task, "loss", lambda: task.loss(model(x), y))
    if not isinstance(loss, Tensor) or loss.dim() != 0:
        shape = list(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"{task.name}.loss(): must return a scalar tensor, got {shape}")
    metrics = _call(task, "evaluate", lambda: task.evaluate(model))
    if not isinstance(metrics, Mapping) or metric not in metrics:
        keys = sorted(metrics) if isinstance(metrics, Mapping) else type(metrics).__name__
        raise ValueError(
            f"{task.name}.evaluate(): returned no `{metric}` key (the objective's metric), "
            f"got {keys}"
        )


def _call(task: Task, method: str, call: Callable[[], T], arguments: str = "()") -> T:
    """``call()``, with an exception from user code turned into one line naming the method."""
    try:
        return call()
    except (Exception, SystemExit) as error:
        raise ValueError(
            f"{task.name}.{method}{arguments} raised {type(error).__name__}: {error}"
        ) from None
