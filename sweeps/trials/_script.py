"""Inside a launched training script: ``sweeps.current_trial()`` and its context.

The script is started by a sweep worker (``workload.command``), often through ``torchrun`` or
``deepspeed``, so it runs as several processes (ranks). Each rank gets the same context and
the same schedule; only global rank 0 records updates and reports evaluations, and every rank
learns the decision taken at each evaluation, so a pruned trial stops on all ranks together.
Outside a sweep :func:`current_trial` is None and the script trains as it always did::

    trial = sweeps.current_trial()
    scheduler = trial.scheduler(optimizer) if trial else my_scheduler(optimizer)
"""

from __future__ import annotations

import atexit
import contextlib
import os
from typing import Any

import optuna
import torch
from torch import Tensor

from sweeps.trials._channel import CHANNEL_ENV, ChannelClient
from sweeps.trials._context import ContextBase, HasParamGroups
from sweeps.trials._tracker import momentum_of

_CURRENT: list[ScriptTrialContext | None] = []


def current_trial() -> ScriptTrialContext | None:
    """This process's trial when a sweep worker launched it, else None (the script runs alone).

    Example:
        >>> import sweeps
        >>> sweeps.current_trial() is None  # not launched by a sweep
        True
    """
    if not _CURRENT:
        path = os.environ.get(CHANNEL_ENV)
        _CURRENT.append(ScriptTrialContext(ChannelClient(path)) if path else None)
    return _CURRENT[0]


def _rank() -> int:
    """The global rank the launchers (torchrun, deepspeed, accelerate) set; 0 when alone."""
    return int(os.environ.get("RANK", "0"))


class ScriptTrialContext(ContextBase):
    """A trial's context in a launched script, talking to its worker over the trial's channel.

    Attributes beside the shared methods: ``params`` (the OneCycle params), ``trial`` (its
    number), ``seed``, ``batch_size`` (the global batch), ``epochs``, ``eval_every``,
    ``options`` (from the sweep file), ``rank``.
    """

    def __init__(self, client: ChannelClient) -> None:
        self.rank = _rank()
        self._client = client
        hello = client.request({"op": "hello", "rank": self.rank})
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        super().__init__(hello["params"], float(hello["divergence_factor"]), device)
        self.trial = int(hello["trial"])
        self.seed = int(hello["seed"])
        self.batch_size = int(hello["batch_size"])
        self.epochs = int(hello["epochs"])
        #: Updates between evaluations when the sweep sets them (``workload.eval_every``).
        self.eval_every: int | None = hello.get("eval_every")
        self.options: dict[str, Any] = dict(hello["options"])
        self._reports = 0
        self._steps: list[tuple[int, list[list[float | None]], Tensor | None]] = []
        if self.rank == 0:
            atexit.register(self._flush)

    def log_loss(self, loss: Tensor | float) -> None:
        """The loss of the update just made; recorded and checked on rank 0 only."""
        if self.rank == 0:
            super().log_loss(loss)

    def _record(self, step: int, optimizer: HasParamGroups, loss: Tensor | None) -> None:
        if self.rank != 0:
            return
        groups = [[float(g["lr"]), momentum_of(g)] for g in optimizer.param_groups]
        self._steps.append((step, groups, loss))

    def _drain(self) -> list[list[Any]]:
        """Buffered updates as ``[step, [[lr, momentum], ...], loss]``; one sync for the losses."""
        losses = [loss for _, _, loss in self._steps if loss is not None]
        values = iter(torch.stack(losses).float().cpu().tolist() if losses else [])
        drained = [
            [step, groups, next(values) if loss is not None else None]
            for step, groups, loss in self._steps
        ]
        self._steps.clear()
        return drained

    def _evaluate(self, metrics: dict[str, float]) -> None:
        index, self._reports = self._reports, self._reports + 1
        if self.rank == 0:
            message = {"op": "report", "index": index, "updates": self.updates}
            answer = self._client.request({**message, "steps": self._drain(), "metrics": metrics})
        else:
            answer = self._client.request({"op": "decision", "index": index})
        if answer.get("stop") == "pruned":
            raise optuna.TrialPruned(answer.get("message", "pruned"))

    def _diverged(self, reason: str) -> None:
        message = {"op": "diverged", "reason": reason, "updates": self.updates}
        self._client.request({**message, "steps": self._drain()})

    def _flush(self) -> None:
        """Updates after the last report, sent as the script exits."""
        if self._steps:
            with contextlib.suppress(OSError):
                self._client.send({"op": "flush", "updates": self.updates, "steps": self._drain()})
