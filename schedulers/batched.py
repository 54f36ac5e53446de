"""1-Cycle for many parameter sets at once: the closed form on tensors, one row per trial.

Fused trials train K schedules side by side; asking K Python schedules for their values every
update would cost K calls a step and a host-to-device copy. :class:`BatchedOneCycle` holds each
schedule's constants as float64 tensors on the training device and evaluates
``OneCycleSchedule._values`` for all K with tensor operations, expression for expression
(``fmod`` for Python's ``%`` on non-negative operands, ``where`` for each branch, tensor-by-tensor
division only), so on the CPU every value equals the scalar schedule's bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from schedulers.schedules.one_cycle import OneCycleSchedule


class BatchedOneCycle:
    """``values(step)`` -> (lr, momentum), each a ``[K]`` float64 tensor on ``device``.

    Momentum is None when no schedule cycles it (``cycle_momentum: false`` for all); mixing
    cycled and uncycled momentum in one batch is refused.

    Example:
        >>> s = [OneCycleSchedule(0.01, 0.1, cycle_first_step_size=10),
        ...      OneCycleSchedule(0.02, 0.2, cycle_first_step_size=5)]
        >>> lr, mom = BatchedOneCycle(s).values(5)
        >>> [round(v, 6) for v in lr.tolist()], [round(v, 6) for v in mom.tolist()]
        ([0.055, 0.2], [0.85, 0.8])
    """

    def __init__(
        self, schedules: Sequence[OneCycleSchedule], device: torch.device | str = "cpu"
    ) -> None:
        if not schedules:
            raise ValueError("`schedules` must hold at least one OneCycleSchedule, got none")
        cycled = {s.cycle_momentum for s in schedules}
        if len(cycled) > 1:
            raise ValueError("`cycle_momentum` must be the same for every fused schedule")
        self.cycle_momentum = cycled.pop()
        self.size = len(schedules)

        def column(name: str) -> Tensor:
            values = [float(getattr(s, name)) for s in schedules]
            return torch.tensor(values, dtype=torch.float64, device=device)

        def present(name: str) -> tuple[Tensor, Tensor]:
            rates = [getattr(s, name) for s in schedules]
            mask = torch.tensor([r is not None for r in rates], device=device)
            return torch.tensor(
                [0.0 if r is None else float(r) for r in rates], dtype=torch.float64, device=device
            ), mask

        self._min_lr, self._max_lr = column("_min_lr"), column("_max_lr")
        self._s1, self._s2, self._total = column("_s1"), column("_s2"), column("_total")
        self._ratio = column("_ratio")
        self._n1, self._n2 = column("_n1"), column("_n2")
        self._min_mom, self._max_mom = column("_min_mom"), column("_max_mom")
        self._decay_size = column("_decay_size")
        self._lr_rate, self._lr_decays = present("_lr_decay_rate")
        self._mom_rate, self._mom_decays = present("_mom_decay_rate")
        self._ceiling = column("_mom_ceiling")
        # Avoid 0/0 in lanes whose decay is skipped (their result is discarded by `where`).
        self._safe_decay = torch.where(
            self._decay_size > 0, self._decay_size, torch.ones_like(self._decay_size)
        )

    def scale(self, step: int | Tensor) -> Tensor:
        """Cycle position per schedule (0 at ``cycle_min_lr``, 1 at ``cycle_max_lr``)."""
        total, ratio = self._total, self._ratio
        steps = self._steps(step)
        # Tensor / tensor: ``step / tensor`` multiplies by a reciprocal, an ulp off Python's /.
        position = 1.0 + steps / total
        x = position - torch.floor(position)
        rising = x <= ratio
        factor = torch.where(rising, x / ratio, (x - 1.0) / (ratio - 1.0))
        stairs = torch.where(rising, self._n1, self._n2)
        in_cycle = torch.fmod(steps, total)
        first = in_cycle <= self._s1
        level = torch.where(
            first,
            in_cycle * stairs / self._s1,
            (total - in_cycle) * stairs / torch.where(self._s2 > 0, self._s2, self._s1),
        )
        stepped = torch.floor(level) / torch.where(stairs > 0, stairs, torch.ones_like(stairs))
        return torch.where(stairs > 0, stepped, factor)

    def _steps(self, step: int | Tensor) -> Tensor:
        """``step`` as float64 broadcastable against the ``[K]`` constants.

        An int gives ``[K]`` results; a 1-D tensor of S steps gives ``[S, K]`` (one table for a
        whole run, one row per step).
        """
        if isinstance(step, Tensor):
            if step.dim() != 1 or bool((step < 0).any()):
                raise ValueError("`step` as a tensor must be 1-D and non-negative")
            column = step.to(device=self._total.device, dtype=torch.float64).unsqueeze(1)
            return column.expand(-1, self.size)
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"`step` must be a non-negative integer, got {step!r}")
        return torch.full_like(self._total, float(step))

    def values(self, step: int | Tensor) -> tuple[Tensor, Tensor | None]:
        """Lr and momentum of every schedule after ``step`` steps ([K], or [S, K] for S steps)."""
        steps = self._steps(step)
        cycling = (steps - 1) < self._total
        factor = self.scale(step)
        cycle_lr = self._min_lr + (self._max_lr - self._min_lr) * factor
        decay_steps = steps - self._total
        decayed = self._min_lr / (1 + self._lr_rate * (decay_steps / self._safe_decay))
        decay_lr = torch.where(self._lr_decays, decayed, self._min_lr)
        lr = torch.where(cycling, cycle_lr, decay_lr)
        if not self.cycle_momentum:
            return lr, None
        cycle_mom = self._max_mom - (self._max_mom - self._min_mom) * factor
        grown = self._max_mom * (1 + self._mom_rate * (decay_steps / self._safe_decay))
        grown = torch.minimum(torch.clamp(grown, min=0.0), self._ceiling)
        decay_mom = torch.where(self._mom_decays, grown, self._max_mom)
        return lr, torch.where(cycling, cycle_mom, decay_mom)
