"""No module under sweeps/ reaches into Optuna's or MLflow's private attributes or modules.

Such access lives in ``storage/`` (``storage.trial_recording``, ``storage.trial_queries``), next
to the check that the libraries' tables are the ones we know; see ``docs/architecture.md``.
The check reads the source: ``x._name`` on anything but ``self``/``cls`` is allowed only when
``_name`` is one of sweeps' own private names and not one the libraries use for themselves, and
no ``_private`` module or name of either library is imported or read with ``getattr``.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import mlflow
import optuna

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = ("optuna", "mlflow")
#: Underscored names the standard library documents as public.
DOCUMENTED = frozenset({"os._exit"})


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _trees(folder: Path) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(folder.rglob("*.py")):
        try:
            yield path, ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):  # a library's template or test data
            continue


@functools.lru_cache(maxsize=1)
def _library_privates() -> frozenset[str]:
    """Private attribute names Optuna's code and MLflow's client, entities and stores use."""
    found: set[str] = set()
    mlflow_root = Path(mlflow.__file__ or "").parent
    folders = [Path(optuna.__file__ or "").parent]
    folders += [mlflow_root / part for part in ("tracking", "entities", "store")]
    for folder in folders:
        for _, tree in _trees(folder):
            found.update(
                node.attr
                for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and _private(node.attr)
            )
    return frozenset(found)


def _own_privates(trees: list[tuple[Path, ast.Module]]) -> set[str]:
    """Private names sweeps defines: functions, classes, fields, ``self._x`` attributes."""
    own: set[str] = set()
    for _, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                own.add(node.name)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                own.add(node.target.id)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            ):
                own.add(node.attr)
    return {name for name in own if _private(name)}


def _library_module(name: str) -> bool:
    return name.split(".")[0] in LIBRARIES


def private_access(trees: list[tuple[Path, ast.Module]]) -> list[str]:
    """``path:line: what`` for each reach into a library's private corners."""
    allowed = _own_privates(trees) - _library_privates()
    found = []
    for path, tree in trees:
        where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        for node in ast.walk(tree):
            what = None
            if isinstance(node, ast.Attribute) and _private(node.attr):
                mine = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
                documented = ast.unparse(node) in DOCUMENTED
                if not mine and node.attr not in allowed and not documented:
                    what = ast.unparse(node)
            elif isinstance(node, ast.Import):
                what = next(
                    (
                        alias.name
                        for alias in node.names
                        if _library_module(alias.name)
                        and any(_private(part) for part in alias.name.split("."))
                    ),
                    None,
                )
            elif isinstance(node, ast.ImportFrom) and _library_module(node.module or ""):
                names = [node.module or "", *(alias.name for alias in node.names)]
                if any(_private(part) for name in names for part in name.split(".")):
                    what = f"from {node.module} import ..."
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and _private(node.args[1].value)
            ):
                what = ast.unparse(node)
            if what is not None:
                found.append(f"{where}:{getattr(node, 'lineno', 0)}: {what}")
    return found


def test_sweeps_touches_no_private_attribute_of_optuna_or_mlflow() -> None:
    assert private_access(list(_trees(ROOT / "sweeps"))) == []


def test_the_check_finds_each_kind_of_reach(tmp_path: Path) -> None:
    code = (
        "from optuna.storages._rdb import models\n"
        "import optuna._imports\n"
        "def f(study, trial, runner):\n"
        "    study._storage.record_heartbeat(trial._trial_id)\n"
        "    getattr(study, '_study_id')\n"
        "    runner._storage\n"  # defined below, but Optuna's name: still refused
        "    return runner._own_thing\n"
        "class Own:\n"
        "    def _own_thing(self) -> None:\n"
        "        self._storage = None\n"
    )
    trees = [(tmp_path / "bad.py", ast.parse(code))]
    found = [line.split(": ", 1)[1] for line in private_access(trees)]
    assert sorted(found) == sorted(
        [
            "from optuna.storages._rdb import ...",
            "optuna._imports",
            "study._storage",
            "trial._trial_id",
            "getattr(study, '_study_id')",
            "runner._storage",
        ]
    )
