"""The base of every sweep-file section: unknown keys refused, instances immutable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys refused; instances immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
