"""GPU slots: one worker running several command trials at once, each on its own GPUs.

``onecycle run sweep.yaml --gpus 0,1,2,3`` with ``gpus_per_trial: 2`` makes two slots,
``[0, 1]`` and ``[2, 3]``. Each slot is a thread of the worker that starts a trial (under the
store's lock, as any worker does), waits on its command and records it; the trial's heartbeat
has its own thread as always, and Optuna and MLflow are only written from the slot's thread.
The training itself runs in the command's processes, so threads cost nothing here. Ctrl+C or
SIGTERM reaches the main thread, which tells every slot to end its trial as interrupted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from sweeps.errors import UsageError

#: One round of a slot: start, run and record a trial; False when the sweep has no more.
Round = Callable[[int], bool]


def gpu_slots(
    gpus: Sequence[str], per_trial: int | None, cuda: bool, visible: str | None = None
) -> list[list[str]]:
    """The GPU ids of each slot: ``gpus`` in groups of ``per_trial`` (default 0 on a CPU, else 1).

    Without ``gpus`` there is one slot: the first ``per_trial`` of the worker's own GPUs
    (``visible``, its ``CUDA_VISIBLE_DEVICES``, when it has one).

    Example:
        >>> gpu_slots(["0", "1", "2", "3"], 2, cuda=True)
        [['0', '1'], ['2', '3']]
        >>> gpu_slots([], None, cuda=False)
        [[]]
    """
    per = (1 if cuda else 0) if per_trial is None else per_trial
    if not gpus:
        own = [g for g in (visible or "").split(",") if g.strip()] if visible is not None else []
        return [own[:per] if visible is not None else [str(i) for i in range(per)]]
    if per == 0:
        raise UsageError(f"--gpus: workload.gpus_per_trial is 0, so trials use no GPU; got {gpus}")
    if len(gpus) < per:
        raise UsageError(
            f"--gpus: workload.gpus_per_trial is {per}, more than the {len(gpus)} GPUs given"
        )
    return [list(gpus[i : i + per]) for i in range(0, len(gpus) - per + 1, per)]


#: deepspeed launcher flags that make it ignore ``CUDA_VISIBLE_DEVICES`` (then GPUs 0..N-1).
_DEEPSPEED_PICKS = ("--num_gpus", "--num-gpus", "--include", "-i", "--exclude", "-e")


def check_gpu_choice(argv: Sequence[str], slots: Sequence[Sequence[str]]) -> None:
    """Refuse a deepspeed command that would put every slot's trial on the same GPUs.

    DeepSpeed's launcher takes a trial's ``CUDA_VISIBLE_DEVICES`` only when it is not told
    which GPUs to use; with ``--num_gpus 2`` every trial would run on GPUs 0 and 1.
    """
    if len(slots) < 2 or not argv or Path(argv[0]).name != "deepspeed":
        return
    launcher = [arg.split("=")[0] for arg in argv[1:]]
    end = next((i for i, arg in enumerate(launcher) if arg.endswith(".py")), len(launcher))
    flags = [arg for arg in launcher[:end] if arg in _DEEPSPEED_PICKS]
    if flags:
        raise UsageError(
            f"workload.command: deepspeed ignores each trial's CUDA_VISIBLE_DEVICES when given "
            f"{flags[0]}, so the {len(slots)} slots of --gpus would share GPUs; leave it out "
            "(the launcher then uses the trial's GPUs), got " + " ".join(argv)
        )


def run_slots(count: int, one_round: Round, stop: threading.Event) -> None:
    """Run ``one_round(slot)`` in ``count`` threads until each finds the sweep done.

    The first error of any slot (a store outage, too many failures) stops the others from
    starting trials and is raised here once they have finished theirs; Ctrl+C sets ``stop``,
    which ends the running trials at once.
    """
    errors: list[BaseException] = []
    done = threading.Event()

    def work(slot: int) -> None:
        try:
            while not done.is_set() and one_round(slot):
                pass
        except BaseException as error:
            errors.append(error)
            done.set()

    threads = [
        threading.Thread(target=work, args=(slot,), name=f"onecycle-slot-{slot}", daemon=True)
        for slot in range(count)
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)
    except KeyboardInterrupt:
        done.set()
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        raise
    if errors:
        raise errors[0]
