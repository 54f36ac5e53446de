"""The torch adapter: where momentum goes, construction values, resume, torch interop."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import schedulers
from schedulers.schedules import OneCycleSchedule

CYCLE = dict(
    cycle_min_lr=0.01,
    cycle_max_lr=0.1,
    cycle_first_step_size=20,
    cycle_second_step_size=30,
    cycle_first_stair_count=4,
    decay_step_size=5,
    decay_lr_rate=0.2,
    cycle_min_mom=0.85,
    cycle_max_mom=0.95,
)


def params() -> list[torch.Tensor]:
    return [torch.zeros(3, requires_grad=True)]


def test_sgd_momentum_follows_the_schedule_every_step() -> None:
    opt = torch.optim.SGD(params(), lr=1.0, momentum=0.5)
    sched = schedulers.OneCycle(opt, **CYCLE)
    closed = OneCycleSchedule(**CYCLE)
    for step in range(80):
        assert opt.param_groups[0]["lr"] == closed.lr(step)
        assert opt.param_groups[0]["momentum"] == closed.momentum(step)
        assert sched.get_last_momentum() == [closed.momentum(step)]
        sched.step()


def test_adam_beta1_is_cycled_and_beta2_kept_as_configured() -> None:
    opt = torch.optim.Adam(params(), lr=1.0, betas=(0.9, 0.95))
    sched = schedulers.OneCycle(opt, **CYCLE)
    seen = set()
    for _ in range(60):
        sched.step()
        beta1, beta2 = opt.param_groups[0]["betas"]
        seen.add(beta1)
        assert beta2 == 0.95
    assert min(seen) == 0.85 and max(seen) == 0.95


def test_momentum_right_after_construction_is_step_zero_value() -> None:
    opt = torch.optim.AdamW(params(), lr=1.0)
    schedulers.OneCycle(opt, **CYCLE)
    assert opt.param_groups[0]["betas"][0] == CYCLE["cycle_max_mom"]
    assert opt.param_groups[0]["lr"] == CYCLE["cycle_min_lr"]


def test_get_last_lr_is_valid_before_the_first_step() -> None:
    opt = torch.optim.AdamW(params(), lr=1.0)
    assert schedulers.OneCycle(opt, **CYCLE).get_last_lr() == [0.01]


def test_cycle_momentum_false_leaves_momentum_untouched() -> None:
    opt = torch.optim.SGD(params(), lr=1.0, momentum=0.3)
    sched = schedulers.OneCycle(opt, **{**CYCLE, "cycle_momentum": False})
    for _ in range(40):
        sched.step()
        assert opt.param_groups[0]["momentum"] == 0.3
    assert sched.get_mom() is None


def test_optimizer_without_momentum_warns_and_keeps_lr_schedule() -> None:
    opt = torch.optim.Adagrad(params(), lr=1.0)
    with pytest.warns(UserWarning, match="Adagrad has neither `momentum` nor `betas`"):
        sched = schedulers.OneCycle(opt, **CYCLE)
    sched.step(19)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    assert sched.get_mom() is None


def test_wrapper_with_optimizer_attribute_is_unwrapped() -> None:
    class Wrapper:
        def __init__(self, inner: torch.optim.Optimizer) -> None:
            self.optimizer = inner

    opt = torch.optim.SGD(params(), lr=1.0, momentum=0.9)
    sched = schedulers.OneCycle(Wrapper(opt), **CYCLE)
    assert sched.optimizer is opt


def test_non_optimizer_is_refused_with_its_type() -> None:
    with pytest.raises(TypeError, match=r"`optimizer` must be a torch\.optim\.Optimizer, got str"):
        schedulers.OneCycle("adam", **CYCLE)  # type: ignore[arg-type]


def test_tensor_lr_is_filled_in_place() -> None:
    opt = torch.optim.Adam(params(), lr=torch.tensor(0.5))
    lr_tensor = opt.param_groups[0]["lr"]
    sched = schedulers.OneCycle(opt, **CYCLE)
    sched.step(19)
    assert opt.param_groups[0]["lr"] is lr_tensor
    assert float(lr_tensor) == pytest.approx(0.1)


def test_per_group_lists_give_each_group_its_own_bounds() -> None:
    opt = torch.optim.SGD([{"params": params()}, {"params": params()}], lr=1.0, momentum=0.9)
    sched = schedulers.OneCycle(
        opt,
        cycle_min_lr=[0.01, 0.001],
        cycle_max_lr=(0.1, 0.002),
        cycle_first_step_size=10,
        cycle_min_mom=[0.8, 0.7],
        cycle_max_mom=[0.9, 0.75],
    )
    sched.step(9)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.002])
    assert [g["momentum"] for g in opt.param_groups] == pytest.approx([0.8, 0.7])
    assert sched.to_config()["params"]["cycle_max_lr"] == [0.1, 0.002]


def test_construction_with_last_batch_iteration_writes_that_steps_values() -> None:
    opt = torch.optim.SGD(params(), lr=1.0, momentum=0.9)
    sched = schedulers.OneCycle(opt, **CYCLE, last_batch_iteration=19)
    closed = OneCycleSchedule(**CYCLE)
    assert sched.last_batch_iteration == 19
    assert opt.param_groups[0]["lr"] == closed.lr(20)
    assert opt.param_groups[0]["momentum"] == closed.momentum(20)


def test_load_state_dict_requires_the_counter() -> None:
    sched = schedulers.OneCycle(torch.optim.SGD(params(), lr=1.0), **CYCLE)
    with pytest.raises(ValueError, match="missing key `last_batch_iteration`"):
        sched.load_state_dict({"last_epoch": 3})
    with pytest.raises(ValueError, match="`last_batch_iteration` must be >= -1, got -5"):
        sched.load_state_dict({"last_batch_iteration": -5})


def _train(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: schedulers.OneCycle,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
) -> None:
    for x, y in batches:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        sched.step()


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_checkpoint_resume_is_bit_exact_with_uninterrupted_training(optimizer: str) -> None:
    torch.manual_seed(0)
    batches = [(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(90)]

    def build(model: torch.nn.Module) -> tuple[torch.optim.Optimizer, schedulers.OneCycle]:
        if optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.9, 0.97))
        return opt, schedulers.OneCycle(opt, **CYCLE)

    torch.manual_seed(1)
    straight = torch.nn.Linear(4, 1)
    start = copy.deepcopy(straight.state_dict())
    opt, sched = build(straight)
    _train(straight, opt, sched, batches)

    first = torch.nn.Linear(4, 1)
    first.load_state_dict(start)
    opt1, sched1 = build(first)
    _train(first, opt1, sched1, batches[:37])
    checkpoint = copy.deepcopy(
        {"model": first.state_dict(), "opt": opt1.state_dict(), "sched": sched1.state_dict()}
    )

    resumed = torch.nn.Linear(4, 1)
    resumed.load_state_dict(checkpoint["model"])
    opt2, sched2 = build(resumed)
    opt2.load_state_dict(checkpoint["opt"])
    sched2.load_state_dict(checkpoint["sched"])
    _train(resumed, opt2, sched2, batches[37:])

    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_warmup_cosine_resume_scales_the_original_lr_not_the_restored_one() -> None:
    opt = torch.optim.SGD(params(), lr=0.4)
    sched = schedulers.WarmupCosineLR(opt, total_num_steps=100, warmup_num_steps=10)
    for _ in range(50):
        sched.step()
    state = {"opt": copy.deepcopy(opt.state_dict()), "sched": sched.state_dict()}
    opt2 = torch.optim.SGD(params(), lr=0.4)
    opt2.load_state_dict(state["opt"])  # holds the scaled lr, and initial_lr = 0.4
    resumed = schedulers.WarmupCosineLR(
        opt2,
        total_num_steps=100,
        warmup_num_steps=10,
        last_batch_iteration=state["sched"]["last_batch_iteration"],
    )
    for _ in range(30):
        sched.step()
        resumed.step()
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_warmup_max_lr_none_takes_each_groups_own_lr() -> None:
    opt = torch.optim.SGD([{"params": params(), "lr": 0.1}, {"params": params(), "lr": 0.3}])
    sched = schedulers.WarmupLR(opt, warmup_num_steps=10)
    sched.step(50)
    assert sched.get_last_lr() == [0.1, 0.3]


def test_works_inside_torch_chained_scheduler_api() -> None:
    opt = torch.optim.SGD(params(), lr=1.0, momentum=0.9)
    sched = schedulers.OneCycle(opt, **CYCLE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            opt.step()
            sched.step()
    assert sched.last_epoch == 5
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
