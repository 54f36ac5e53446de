"""``onecycle schedule``: the table, CSV and plot of a DeepSpeed block, and its errors."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from schedulers.schedules import OneCycleSchedule
from sweeps.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "onecycle.json"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_table_shows_phase_changes_and_momentum(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "OneCycle on AdamW: 3001 steps" in out
    assert "betas[0]" in out
    for row in ("1000 │ rise", "1001 │ fall", "2001 │ decay"):
        assert row in out


def test_csv_has_every_step_equal_to_the_closed_form(tmp_path: Path) -> None:
    target = tmp_path / "trace.csv"
    assert main(["schedule", str(EXAMPLE), "--steps", "2500", "--csv", str(target)]) == 0
    rows = list(csv.DictReader(target.open()))
    assert len(rows) == 2500
    params = json.loads(EXAMPLE.read_text())["scheduler"]["params"]
    closed = OneCycleSchedule(**params)
    for row in rows:
        step = int(row["step"])
        assert float(row["lr"]) == closed.lr(step)
        assert float(row["momentum"]) == closed.momentum(step)


def test_plot_is_a_png(tmp_path: Path) -> None:
    target = tmp_path / "schedule.png"
    assert main(["schedule", str(EXAMPLE), "--plot", str(target)]) == 0
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_sgd_config_shows_sgd_momentum_and_group_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "optimizer": {"type": "SGD", "params": {"lr": 0.1, "momentum": 0.9}},
        "scheduler": {
            "type": "OneCycle",
            "params": {
                "cycle_min_lr": [0.01, 0.001],
                "cycle_max_lr": [0.1, 0.01],
                "cycle_first_step_size": 10,
            },
        },
    }
    path = write(tmp_path, "sgd.json", json.dumps(config))
    assert main(["schedule", str(path), "--every", "5"]) == 0
    out = capsys.readouterr().out
    assert "OneCycle on SGD" in out
    assert "lr g1" in out and "momentum g0" in out


def test_yaml_block_and_warmup_cosine_use_the_base_lr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "cos.yaml",
        "type: WarmupCosineLR\nparams:\n  total_num_steps: 100\n  warmup_num_steps: 10\n",
    )
    target = tmp_path / "c.csv"
    assert main(["schedule", str(path), "--base-lr", "0.5", "--csv", str(target)]) == 0
    rows = list(csv.DictReader(target.open()))
    assert max(float(r["lr"]) for r in rows) == pytest.approx(0.5)
    assert "momentum: not scheduled" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "bad.json",
            '{"type": "OneCycle",\n "params": {"cycle_min_lr": 1,}}',
            r"bad.json:2:31: invalid JSON: Expecting property name",
        ),
        ("bad.yaml", "type: OneCycle\nparams: {cycle_min_lr: [1\n", r"bad.yaml:3:1: invalid YAML"),
        (
            "typo.json",
            '{"type": "OneCycle", "params": {"cycle_min_lr": 0.1, "cycle_max_lr": 1, '
            '"cycle_frist_step_size": 5}}',
            r"did you mean `cycle_first_step_size`",
        ),
        (
            "range.json",
            '{"type": "OneCycle", "params": {"cycle_min_lr": 2, "cycle_max_lr": 1}}',
            r"`cycle_min_lr` must be <= `cycle_max_lr`",
        ),
        ("list.json", "[1, 2]", r"expected a mapping at the top, got list"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, message: str
) -> None:
    path = write(tmp_path, name, text)
    assert main(["schedule", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("onecycle: error: ")
    assert re.search(message, err), err


def test_missing_file_and_bad_flag_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schedule", str(tmp_path / "nope.json")]) == 2
    assert "nope.json: no such file" in capsys.readouterr().err
    assert main(["schedule", str(EXAMPLE), "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err
    assert main(["schedule", str(EXAMPLE), "--plot", str(tmp_path / "no" / "x.png")]) == 2


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "range.json",
        '{"type": "OneCycle", "params": {"cycle_min_lr": 2, "cycle_max_lr": 1}}',
    )
    result = subprocess.run(
        [sys.executable, "-m", "sweeps", "--debug", "schedule", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "UsageError" in result.stderr


def test_console_script_help_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sweeps", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "schedule" in result.stdout


def _torch_trace(config: dict[str, Any], steps: int, base_lr: float) -> tuple[Any, ...]:
    """What the torch adapter writes into an optimizer's param groups, step by step."""
    import torch

    import schedulers

    kind, params = schedulers.normalize_block(config)
    groups = max((len(v) for v in params.values() if isinstance(v, list)), default=1)
    tensors = [{"params": [torch.zeros(1, requires_grad=True)]} for _ in range(groups)]
    found = config.get("optimizer", {})
    optimizer: torch.optim.Optimizer
    if found.get("type") == "SGD":
        optimizer = torch.optim.SGD(tensors, lr=base_lr, momentum=found["params"]["momentum"])
    else:
        optimizer = torch.optim.AdamW(tensors, lr=base_lr)
    scheduler = schedulers.from_config(optimizer, {"type": kind, "params": params})
    cycled = scheduler.get_mom() is not None
    lrs, moms = [], []
    for _ in range(steps):
        lrs.append([float(g["lr"]) for g in optimizer.param_groups])
        if cycled:
            key = "betas" if "betas" in optimizer.defaults else "momentum"
            moms.append(
                [float(g[key][0] if key == "betas" else g[key]) for g in optimizer.param_groups]
            )
        scheduler.step()
    return type(optimizer).__name__, lrs, moms if cycled else None


SGD = {"type": "SGD", "params": {"lr": 0.1, "momentum": 0.9}}
CONFIGS = {
    "one-cycle-adamw": {
        "type": "OneCycle",
        "params": {"cycle_min_lr": 1e-3, "cycle_max_lr": 0.05, "cycle_first_step_size": 17},
    },
    "one-cycle-sgd-groups-stairs-decay": {
        "optimizer": SGD,
        "scheduler": {
            "type": "OneCycle",
            "params": {
                "cycle_min_lr": [0.01, 0.001],
                "cycle_max_lr": [0.1, 0.02],
                "cycle_first_step_size": 9,
                "cycle_second_step_size": 13,
                "cycle_first_stair_count": 3,
                "decay_step_size": 4,
                "decay_lr_rate": 0.01,
                "decay_mom_rate": 0.02,
                "cycle_min_mom": [0.8, 0.85],
            },
        },
    },
    "one-cycle-no-momentum": {
        "type": "OneCycle",
        "params": {"cycle_min_lr": 0.01, "cycle_max_lr": 0.1, "cycle_momentum": False},
    },
    "range-test-staircase": {
        "optimizer": SGD,
        "scheduler": {
            "type": "LRRangeTest",
            "params": {"lr_range_test_step_size": 7, "lr_range_test_staircase": True},
        },
    },
    "warmup-to-the-optimizer-lr": {"type": "WarmupLR", "params": {"warmup_num_steps": 20}},
    "warmup-decay": {
        "type": "WarmupDecayLR",
        "params": {"total_num_steps": 60, "warmup_num_steps": 15, "warmup_type": "linear"},
    },
    "warmup-cosine": {
        "type": "WarmupCosineLR",
        "params": {"total_num_steps": 80, "warmup_num_steps": 10},
    },
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_shown_values_are_what_the_torch_adapter_applies(name: str) -> None:
    from sweeps.cli._schedule_view import trace_schedule

    config = CONFIGS[name]
    trace = trace_schedule(config, steps=120, base_lr=0.3)
    expected = _torch_trace(config, 120, 0.3)
    assert (trace.optimizer, trace.lrs, trace.moms) == expected
    assert len(set(map(tuple, trace.lrs))) > 2  # the schedule moves in the steps compared


def test_schedule_imports_no_torch(tmp_path: Path) -> None:
    """``onecycle schedule`` reads a block and prints values: no torch (see bench_cli_start)."""
    warmup = write(tmp_path, "w.yaml", "type: WarmupCosineLR\nparams: {total_num_steps: 50}\n")
    for config in (EXAMPLE, warmup):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "sweeps", "schedule", str(config)],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr[-500:]
        imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
        assert "schedulers.groups" in imported  # the check sees the imports at all
        assert not {m for m in imported if m == "torch" or m.startswith("torch.")}
