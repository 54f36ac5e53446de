"""The short examples in public docstrings run and print what they claim.

Only modules that hold an example are collected, and each must run at least one: a module
whose examples doctest cannot find fails instead of passing with nothing tried.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import schedulers
import storage
import sweeps


def _modules() -> list[str]:
    names = []
    for package in (schedulers, storage, sweeps):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            if not info.name.endswith("__main__"):
                names.append(info.name)
    return [name for name in names if ">>>" in (_source(name) or "")]


def _source(name: str) -> str | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    with open(spec.origin, encoding="utf-8") as handle:
        return handle.read()


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_pass(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has an example that doctest did not find"
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
