"""The base of every config model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # Unknown keys are errors: a typo in shipyard.yaml must not be silently ignored.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
