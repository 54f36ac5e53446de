"""Which models fused trials can stack, refused up front with the layer that stops them.

A stacked run must equal the same trials run one at a time. Layers with buffers (BatchNorm's
running statistics) would need one copy per trial that ``functional_call`` does not stack, and
layers that draw random numbers (dropout) would draw differently under ``vmap`` than alone;
both are named and refused. Anything else is tried once under ``vmap`` on the first batch, and
an operation ``vmap`` cannot batch is reported with the layer it happened in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from sweeps.config import FUSED_NEEDS_TASK
from sweeps.task import Task, build_model, first_batch
from sweeps.trials.fused._model import StackedModel

if TYPE_CHECKING:
    from sweeps.trials._runners import TrialRunner

_RANDOM = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def fusable_task(runner: TrialRunner) -> Task:
    """The task ``runner`` trains, checked to stack; ``ValueError`` (one line) if not."""
    if runner.task is None:
        raise ValueError(FUSED_NEEDS_TASK)
    check_fusable(runner.task)
    return runner.task


def check_fusable(task: Task) -> nn.Module:
    """Build ``task``'s model on its device, refusing what the stacked path cannot train."""
    model = build_model(task)
    for name, layer in model.named_modules():
        where = f"{task.name}.build_model(): layer `{name or '(model)'}` ({type(layer).__name__})"
        if any(True for _ in layer.buffers(recurse=False)):
            raise ValueError(
                f"{where} keeps buffers (running statistics) that fused trials cannot stack; "
                "use track_running_stats=False, GroupNorm or LayerNorm, or run trials one at "
                "a time"
            )
        if isinstance(layer, _RANDOM) and layer.p > 0:
            raise ValueError(
                f"{where} draws random numbers, so stacked trials would not equal trials run "
                "alone; set p=0 or run trials one at a time"
            )
    _try_stacked(task, model)
    return model


def _try_stacked(task: Task, model: nn.Module) -> None:
    """One stacked forward pass of two rows, naming the layer where ``vmap`` gave up."""
    x, _ = first_batch(task)
    entered: list[str] = []
    handles = [
        layer.register_forward_pre_hook(lambda *_, name=name: entered.append(name))
        for name, layer in model.named_modules()
        if name and not any(True for _ in layer.children())
    ]
    try:
        with torch.no_grad():
            StackedModel(model, 2)(x)
    except Exception as error:
        layer = f"layer `{entered[-1]}`" if entered else "the model"
        first = str(error).splitlines()[0] if str(error) else ""
        raise ValueError(
            f"{task.name}.build_model(): {layer} cannot run stacked under torch.func.vmap "
            f"({type(error).__name__}: {first}); run trials one at a time"
        ) from None
    finally:
        for handle in handles:
            handle.remove()
