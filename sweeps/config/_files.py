"""Read a user's JSON or YAML file into a mapping, with errors that point at the spot.

JSON is read with the ``json`` module when the file ends in ``.json`` (its error messages are the
precise ones); anything else is YAML, which reads JSON too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from sweeps.errors import UsageError, excerpt

#: The most items (mappings, lists, scalars) a sweep file may hold once YAML aliases are expanded.
MAX_ITEMS = 100_000


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return dict(loader.construct_mapping(node))


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def load_mapping(path: Path) -> dict[str, Any]:
    """Parse ``path``; raise :class:`UsageError` naming the file, line and column on bad syntax.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "s.json"
        >>> _ = f.write_text('{"type": "OneCycle"}')
        >>> load_mapping(f)
        {'type': 'OneCycle'}
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected a JSON or YAML file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot read: {error}") from None
    data: object
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(
                f"{path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}"
            ) from None
    else:
        try:
            data = yaml.load(text, Loader=_StrictLoader)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise UsageError(f"{where}: invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping at the top, got {type(data).__name__}")
    _refuse_expansion(path, data)
    return data


def _refuse_expansion(path: Path, data: dict[str, Any]) -> None:
    """Refuse a file whose aliases expand past :data:`MAX_ITEMS`, naming the key that does.

    YAML aliases share one object, so a small file can stand for billions of items; rendering
    one (the sweep's record, a hash, an error message) would take the machine's memory.
    """
    sizes: dict[int, int] = {}
    if _items(data, sizes) <= MAX_ITEMS:
        return
    where: list[str] = []
    value: Any = data
    while isinstance(value, dict):
        big = [(k, v) for k, v in value.items() if _items(v, sizes) > MAX_ITEMS]
        if not big:
            break
        key, value = big[0]
        where.append(str(key))
    raise UsageError(
        f"{path}: {'.'.join(where) or 'the file'}: expands to more than {MAX_ITEMS} items "
        f"(YAML aliases nested in each other?), got {excerpt(value)}"
    )


def _items(value: Any, sizes: dict[int, int]) -> int:
    """How many items ``value`` holds expanded, counted once per shared object; capped."""
    if not isinstance(value, (dict, list)):
        return 1
    if id(value) in sizes:
        return sizes[id(value)]
    sizes[id(value)] = MAX_ITEMS + 1  # a value that holds itself counts as too big
    parts = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    total = 1
    for part in parts:
        total = min(total + _items(part, sizes), MAX_ITEMS + 1)
        if total > MAX_ITEMS:
            break
    sizes[id(value)] = total
    return total
