"""The config's shared field types: units parsed on the way in, names, strict sections."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from checker.units import parse_config_duration, parse_fraction

__all__ = ["NAME_PATTERN", "Duration", "Fraction", "Name", "Strict"]

Duration = Annotated[float, BeforeValidator(parse_config_duration)]
Fraction = Annotated[float, BeforeValidator(parse_fraction)]
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
