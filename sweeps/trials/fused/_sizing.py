"""``fused_trials: auto``: how many trials fit in one stack on this device.

Measured, not guessed, on a GPU: one fused step and one evaluation with 1 and then 2 rows, and
the difference in peak memory is what each extra trial costs (weights, gradients, optimizer
state, the batch's activations and the validation pass). K is then what fits in half the free
memory, at most 512. On the CPU there is no allocator to ask: the same quantities are estimated
from the parameter count and layer widths against the available RAM, and K is capped at 32,
past which the CPU is saturated (docs/fused.md has the measurements).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from sweeps.task import Task, build_model, first_batch
from sweeps.trials._rules import TrainSettings
from sweeps.trials.fused._training import NoFusedHooks
from sweeps.workloads import SplitTask

GPU_CAP = 512
CPU_CAP = 32
MEMORY_SHARE = 0.5


def auto_fused_trials(workload: Task, settings: TrainSettings, remaining: int) -> int:
    """The number of trials to stack for ``workload`` on its device (at least 1)."""
    if workload.device.type == "cuda":
        per_row, free = _measured_cuda(workload, settings)
        cap = GPU_CAP
    else:
        per_row, free = _estimated_cpu(workload, settings), _available_ram()
        cap = CPU_CAP
    fits = int(MEMORY_SHARE * free // max(per_row, 1))
    return max(1, min(fits, cap, remaining))


def _measured_cuda(workload: Task, settings: TrainSettings) -> tuple[int, int]:
    from sweeps.trials.fused._training import train_fused

    probe = TrainSettings(
        epochs=1,
        optimizer=settings.optimizer,
        weight_decay=settings.weight_decay,
        seed=settings.seed,
        metric=settings.metric,
        direction=settings.direction,
        eval_every=1,
    )
    schedule = {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-3, "cycle_first_step_size": 10}
    peaks = []
    for rows in (1, 2):
        torch.cuda.synchronize(workload.device)
        torch.cuda.reset_peak_memory_stats(workload.device)
        before = torch.cuda.memory_allocated(workload.device)
        train_fused(workload, [schedule] * rows, probe, _StopAtFirstEval())
        peaks.append(torch.cuda.max_memory_allocated(workload.device) - before)
    free, _ = torch.cuda.mem_get_info(workload.device)
    return max(peaks[1] - peaks[0], 1), int(free)


class _StopAtFirstEval(NoFusedHooks):
    """Hooks for the probe: one update, one evaluation, then every row stops."""

    def on_eval(
        self, step: int, samples: int, metrics: Mapping[int, dict[str, float]]
    ) -> set[int]:
        """Stop them all."""
        return set(metrics)


def _estimated_cpu(workload: Task, settings: TrainSettings) -> int:
    model = build_model(workload)
    params = sum(p.numel() for p in model.parameters())
    states = 2 if settings.optimizer == "sgd" else 3  # grad + momentum (+ second moment)
    if isinstance(workload, SplitTask):
        widths = sum(m.out_features for m in model.modules() if isinstance(m, nn.Linear))
        validation = int(workload.split.x_val.shape[0])
        activations = workload.batch_size * widths * 3 + validation * widths
    else:  # one batch through the model, every layer's output counted (evaluated row by row)
        activations = 3 * _layer_outputs(model, first_batch(workload)[0])
    return 4 * (params * (1 + states) + activations)


@torch.no_grad()
def _layer_outputs(model: nn.Module, x: torch.Tensor) -> int:
    """Elements every leaf layer outputs for the batch ``x``."""
    sizes: list[int] = []
    handles = [
        layer.register_forward_hook(
            lambda _m, _i, out: sizes.append(out.numel() if isinstance(out, torch.Tensor) else 0)
        )
        for layer in model.modules()
        if not any(True for _ in layer.children())
    ]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return sum(sizes)


def _available_ram() -> int:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 2**31
