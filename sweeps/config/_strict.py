"""The base of every sweep-file section: unknown keys refused, instances immutable, no bools."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

#: The seeds NumPy and Optuna's samplers accept.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


def _admits_bool(annotation: Any) -> bool:
    """Whether a field's type names ``bool`` (or ``Any``) anywhere in it."""
    if annotation is bool or annotation is Any or isinstance(annotation, bool):
        return True  # a bool instance: an argument of Literal[True]
    return any(_admits_bool(arg) for arg in get_args(annotation))


class Strict(BaseModel):
    """Unknown keys refused; instances immutable; ``true`` is not a number."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        """Pydantic reads ``epochs: true`` as 1; a boolean is refused where none is expected."""
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and not _admits_bool(field.annotation):
            raise ValueError(f"must be a number, not a boolean, got {value}")
        return value
