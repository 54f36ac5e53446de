"""Kind 2 of the failure paths: every error is one short line, whatever the input was.

A damaged database file is named with what to do, and nothing is created beside it; a value
the user wrote is quoted as a short excerpt (:func:`sweeps.errors.excerpt`), never whole, even
when it is a YAML alias bomb that would expand to hundreds of millions of items.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sweeps.cli import main
from sweeps.errors import excerpt, one_line
from tests.failures_tests.store_state import sweep_file

SWEEP = """name: t
workload: {builtin: digits, epochs: 1}
search: {n_trials: 1, space: {cycle_max_lr: 0.05, cycle_min_lr: 0.001, cycle_first_step_size: 5}}
"""


def _one_short_line(err: str, limit: int = 400) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err[:2000]
    assert len(err) < limit, err[:2000]
    return err


@pytest.mark.parametrize("broken", ["optuna.db", "mlflow.db"])
@pytest.mark.parametrize("command", ["run", "list"])
def test_a_garbage_database_is_one_line_and_nothing_is_created_beside_it(
    broken: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    garbage = os.urandom(5000)
    (store / broken).write_bytes(garbage)
    args = [command, str(sweep_file(tmp_path, SWEEP))] if command == "run" else [command]
    assert main([*args, "--store", str(store)]) == 2
    err = _one_short_line(capsys.readouterr().err)
    assert f"{store / broken} is not a SQLite database; move it aside" in err
    assert sorted(p.name for p in store.iterdir()) == [broken]
    assert (store / broken).read_bytes() == garbage


def test_a_database_damaged_past_its_header_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    path = sweep_file(tmp_path, SWEEP)
    assert main(["run", str(path), "--store", str(store)]) == 0
    database = store / "mlflow.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    data = bytearray(database.read_bytes())
    data[100:] = os.urandom(len(data) - 100)
    database.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["run", str(path), "--store", str(store)]) == 2
    err = _one_short_line(capsys.readouterr().err)
    assert f"cannot open SQLite database {database}: " in err


def test_a_5000_character_name_is_quoted_as_an_excerpt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sweep_file(tmp_path, SWEEP.replace("name: t", "name: " + "a" * 5000))
    assert main(["run", str(path), "--store", str(tmp_path / "store")]) == 2
    err = _one_short_line(capsys.readouterr().err)
    assert "name: must start with a letter or digit" in err and "(5000 characters)" in err
    assert not (tmp_path / "store").exists()


def _alias_bomb() -> str:
    """Nine levels of nine aliases, written inline: 9**9 (387 million) strings expanded."""
    value = '&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'
    for level in range(1, 9):
        value = f"&a{level} [{value}, {', '.join([f'*a{level - 1}'] * 8)}]"
    return value


def test_a_yaml_alias_bomb_as_name_is_refused_fast_and_short(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = SWEEP.replace("name: t", f"name: {_alias_bomb()}")
    path = sweep_file(tmp_path, body)
    started = time.perf_counter()
    assert main(["run", str(path), "--store", str(tmp_path / "store")]) == 2
    assert time.perf_counter() - started < 20
    err = _one_short_line(capsys.readouterr().err)
    assert ": name: expands to more than 100000 items (YAML aliases" in err
    assert "got [[[...]" in err
    assert not (tmp_path / "store").exists()


def test_a_yaml_alias_bomb_in_free_options_is_refused_before_it_is_rendered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An entrypoint takes any options, so no schema refuses them: the file's size once
    expanded does. (Rendered into the sweep's record, this one took 10 GB before it was killed.)
    """
    workload = (
        "workload: {entrypoint: 'tests.failures_tests.user_code:steady', "
        f"options: {{hidden: [16], junk: {_alias_bomb()}}}}}"
    )
    body = SWEEP.replace("workload: {builtin: digits, epochs: 1}", workload)
    path = sweep_file(tmp_path, body + "objective: {metric: val_accuracy}\n")
    started = time.perf_counter()
    assert main(["run", str(path), "--store", str(tmp_path / "store")]) == 2
    assert time.perf_counter() - started < 20
    err = _one_short_line(capsys.readouterr().err)
    assert ": workload.options.junk: expands to more than 100000 items" in err
    assert not (tmp_path / "store").exists()


def test_an_error_built_from_user_code_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A task whose model raises a 10,000-line message still gives one bounded line."""
    (tmp_path / "noisy_task.py").write_text(
        "import sweeps\n\n"
        "class Noisy(sweeps.Task):\n"
        "    metric = 'val_accuracy'\n"
        "    def batches(self, epoch):\n        return []\n"
        "    def loss(self, output, target):\n        return output\n"
        "    def evaluate(self, model):\n        return {}\n"
        "    def build_model(self):\n        raise RuntimeError('boom\\n' * 10000)\n"
    )
    body = SWEEP.replace("builtin: digits", 'task: "noisy_task:Noisy"')
    path = sweep_file(tmp_path, body)
    assert main(["run", str(path), "--store", str(tmp_path / "store")]) == 2
    err = _one_short_line(capsys.readouterr().err, limit=2100)
    assert "Noisy.build_model() raised RuntimeError: boom boom" in err
    assert not (tmp_path / "store").exists()


def test_excerpt_and_one_line_bound_what_they_quote() -> None:
    nested: list[object] = ["x"]
    for _ in range(50):
        nested = [nested] * 9
    assert len(excerpt(nested)) <= 70
    assert excerpt("cuda:7") == "'cuda:7'"
    assert excerpt("b" * 61).endswith("' (61 characters)")
    assert excerpt({"k": "v" * 1000}).startswith("{'k': 'vvv")
    assert one_line("a\nb\n") == "a b"
    assert len(one_line("z" * 5000)) == 2000
