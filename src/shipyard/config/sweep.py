"""The `sweep:` block of a step (hyper-parameter search, Azure ML HyperDrive's sampling):

    train:
      parameters: {alpha: 0.5, test_size: 0.2}
      sweep:
        method: random                 # or grid: every combination of the lists
        parameters:
          alpha: {min: 0.001, max: 10, log: true}
          solver: [auto, svd]
        trials: 8                      # random only
        max_parallel: 2                # at once, on targets that run jobs side by side (ray)
        seed: 0

The trials' parameter sets depend on this block alone (a `random.Random(seed)`, parameters drawn
in the order they are written), never on the compute target: a sweep on Ray tries exactly the
values the same sweep tried on `local`.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from shipyard.config.base import Strict

MAX_TRIALS = 1000  # a grid bigger than this is almost always a mistake in the lists
_SCALARS = (str, int, float, bool)


def _range_problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (a range has min, max, log, type)"
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


class ParamRange(Strict):
    """A range to draw from (method: random): uniform, or log-uniform with `log: true`."""

    min: float = Field(..., description="Lowest value (inclusive).")
    max: float = Field(..., description="Highest value (inclusive for int, up to for float).")
    log: bool = Field(False, description="Draw uniformly on a log scale (both bounds > 0).")
    type: Literal["float", "int"] = Field("float", description="float, or int (whole-number bounds).")

    @model_validator(mode="after")
    def _bounds(self) -> ParamRange:
        if not self.min < self.max:
            raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g})")
        if self.log and self.min <= 0:
            raise ValueError(f"log: true needs min > 0 (got {self.min:g})")
        if self.type == "int" and not (float(self.min).is_integer() and float(self.max).is_integer()):
            raise ValueError("type: int needs whole-number min and max")
        return self

    def draw(self, rng: random.Random) -> float | int:
        if self.type == "int":
            low, high = int(self.min), int(self.max)
            if not self.log:
                return rng.randint(low, high)
            # log-uniform over [low, high + 1), floored: every integer gets its log-width share
            value = math.exp(rng.uniform(math.log(low), math.log(high + 1)))
            return min(high, int(value))
        if self.log:
            return math.exp(rng.uniform(math.log(self.min), math.log(self.max)))
        return rng.uniform(self.min, self.max)


class SweepConfig(Strict):
    """Hyper-parameter search over the step's script: one child run per trial, the best one by the
    gate's metric is the step's output (docs/sweep.md)."""

    method: Literal["grid", "random"] = Field(
        ..., description="grid: every combination of the value lists; random: `trials` draws."
    )
    parameters: dict[str, list[Any] | ParamRange] = Field(
        ...,
        description="name: [values] (grid and random) or {min, max, log, type} (random only); "
        "overlaid on train.parameters for each trial.",
    )
    trials: int | None = Field(
        None, ge=1, le=MAX_TRIALS, description="How many parameter sets to draw (method: random)."
    )
    max_parallel: int = Field(
        1, ge=1, le=256, description="Trials running at once on targets that run jobs side by side (ray)."
    )
    seed: int = Field(0, description="Seed of the random draws: the same seed gives the same trials.")

    @field_validator("parameters", mode="before")
    @classmethod
    def _parameter_specs(cls, value: Any) -> Any:
        """One clear message per bad entry (a plain union would list every alternative's error)."""
        if not isinstance(value, dict):
            return value
        if not value:
            raise ValueError("name at least one parameter to sweep")
        specs: dict[str, Any] = {}
        for name, spec in value.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"parameter names must be non-empty strings (got {name!r})")
            if isinstance(spec, list):
                if not spec:
                    raise ValueError(f"{name}: the list of values is empty")
                bad = [v for v in spec if not isinstance(v, _SCALARS)]
                if bad:
                    raise ValueError(f"{name}: values must be numbers, strings or booleans (got {bad[0]!r})")
                specs[name] = spec
            elif isinstance(spec, dict | ParamRange):
                try:
                    specs[name] = spec if isinstance(spec, ParamRange) else ParamRange.model_validate(spec)
                except ValidationError as exc:
                    raise ValueError(f"{name}: {_range_problems(exc)}") from None
            else:
                raise ValueError(
                    f"{name}: give a list of values, or a range {{min: A, max: B}} for method: random "
                    f"(got {spec!r})"
                )
        return specs

    @model_validator(mode="after")
    def _method_fits(self) -> SweepConfig:
        ranges = [n for n, s in self.parameters.items() if isinstance(s, ParamRange)]
        if self.method == "grid":
            if ranges:
                raise ValueError(
                    f"method: grid needs a list of values for {', '.join(ranges)}: ranges are drawn "
                    "from by method: random"
                )
            if self.trials is not None:
                raise ValueError(
                    f"trials applies to method: random; grid runs every combination ({self.grid_size()} here)"
                )
            if self.grid_size() > MAX_TRIALS:
                raise ValueError(
                    f"the grid has {self.grid_size()} combinations, more than {MAX_TRIALS}: shorten the "
                    "lists or use method: random with a number of trials"
                )
        elif self.trials is None:
            raise ValueError("method: random needs trials: how many parameter sets to draw")
        return self

    def grid_size(self) -> int:
        return math.prod(len(s) for s in self.parameters.values() if isinstance(s, list))

    def trial_parameters(self) -> list[dict[str, Any]]:
        """The parameter set of every trial, in trial order.

        grid: itertools.product of the lists in the order written (the last one varies fastest);
        random: `trials` draws from `random.Random(seed)`, each parameter in the order written (a
        list: uniform choice; a range: uniform or log-uniform).
        """
        names = list(self.parameters)
        if self.method == "grid":
            lists = [spec for spec in self.parameters.values() if isinstance(spec, list)]  # all, for grid
            return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*lists)]
        rng = random.Random(self.seed)
        trials = []
        for _ in range(self.trials or 0):
            trial: dict[str, Any] = {}
            for name in names:
                spec = self.parameters[name]
                trial[name] = spec.draw(rng) if isinstance(spec, ParamRange) else rng.choice(spec)
            trials.append(trial)
        return trials
