"""The ``search:`` section: a grid, random or TPE search over several baseline fields at once.

One factor at a time assumes the factors do not interact; a search samples combinations. Each
key of ``space`` is a field of the baseline (``lora.r``), its value a list of choices or a range
``{low, high, log, step}``. Every choice and both ends of a range are validated as that field of
the baseline (``check_space_values``), with the one-line errors experiments get.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from lorasweep.config.schema import (
    BaselineConfig,
    Number,
    Section,
    Seed,
    check_factor,
)

MAX_TRIALS = 10_000  # a search on a laptop is tens of trials; more is a typo
MAX_ASKED = 1_024  # suggestions asked at once: at most the runs a cluster holds

Factor = Annotated[str, AfterValidator(check_factor)]
Bound = Annotated[int, Number] | Annotated[float, Number]


class Range(Section):
    """A numeric range of a search: ``{low: 1.0e-5, high: 1.0e-3, log: true}``.

    A field the baseline holds as an integer (``lora.r``) is sampled as an integer, every
    ``step`` (default 1); any other as a float, on a log scale with ``log: true``.
    """

    low: Bound
    high: Bound
    log: bool = False  # sample the exponent evenly: for learning rates, ranges over decades
    step: Annotated[float, Number, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low >= self.high:
            raise ValueError(f"low must be below high (got low {self.low}, high {self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0 (got low {self.low})")
        if self.log and self.step is not None:
            raise ValueError("step and log: true cannot be combined; remove one")
        return self


def _distinct(values: list[Any]) -> list[Any]:
    if not values:
        raise ValueError("give at least one value")
    labels = [repr(v) for v in values]
    twice = sorted({v for v in labels if labels.count(v) > 1})
    if twice:
        raise ValueError(f"{twice[0]} is listed twice")
    return values


Choices = Annotated[list[Any], AfterValidator(_distinct)]


class SearchConfig(Section):
    """A search over the baseline's fields: which sampler, how many trials, over what space.

    Trials are asked ``batch`` at a time (default: as many as the executor runs at once: 1
    locally, the cluster's capacity on Ray); TPE treats the running ones as having the worst
    value seen so far (a constant liar), so a batch spreads out instead of repeating itself.
    """

    sampler: Literal["grid", "random", "tpe"] = "tpe"
    # grid: defaults to the whole grid; random and tpe: required.
    trials: Annotated[int, Number, Field(gt=0, le=MAX_TRIALS)] | None = None
    seed: Seed = 0  # the same seed and store give the same suggestions
    batch: Annotated[int, Number, Field(gt=0, le=MAX_ASKED)] | None = None
    space: dict[Factor, Choices | Range]

    @field_validator("space")
    @classmethod
    def _not_empty(cls, space: dict[str, Any]) -> dict[str, Any]:
        if not space:
            raise ValueError("name at least one field to search, such as lora.r: [4, 8, 16]")
        return space

    @model_validator(mode="after")
    def _trials_fit_sampler(self) -> SearchConfig:
        if self.sampler == "grid":
            ranges = [name for name, values in self.space.items() if isinstance(values, Range)]
            if ranges:
                raise ValueError(
                    f"search.space.{ranges[0]}: a grid needs a list of values, not a range"
                )
            if self.trials is not None and self.trials > self.grid_size:
                raise ValueError(
                    f"search.trials: {self.trials} trials, but the grid has {self.grid_size} "
                    "points; remove trials to run the whole grid"
                )
        elif self.trials is None:
            raise ValueError(f"search.trials: required for sampler {self.sampler}")
        return self

    @property
    def grid_size(self) -> int:
        size = 1
        for values in self.space.values():
            size *= len(values) if isinstance(values, list) else 1
        return size

    @property
    def total_trials(self) -> int:
        """The trials the search runs: ``trials``, or the whole grid."""
        return self.trials if self.trials is not None else self.grid_size


def check_space_values(raw: dict[str, Any]) -> list[str]:
    """Each choice and range end of ``search.space``, set in the baseline, must validate there.

    Returns:
        One line per problem: ``search.space.lora.r[0]: must be greater than 0 (got 0)``.
    """
    baseline, search = raw.get("baseline"), raw.get("search")
    if not isinstance(baseline, dict) or not isinstance(search, dict):
        return []
    space = search.get("space")
    if not isinstance(space, dict):
        return []
    problems = []
    for name, values in space.items():
        try:
            check_factor(name)
        except (ValueError, TypeError):
            continue  # an unknown field is reported once, by the schema
        if isinstance(values, list):
            places = [(f"[{j}]", v) for j, v in enumerate(values)]
        elif isinstance(values, dict):
            places = [(f".{end}", values[end]) for end in ("low", "high") if end in values]
        else:
            continue
        for suffix, value in places:
            problem = field_problem(baseline, name, value)
            if problem:
                problems.append(f"search.space.{name}{suffix}: {problem}")
    return problems


def field_problem(baseline: dict[str, Any], name: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``name`` (``lora.r``) of the raw baseline, or None."""
    from lorasweep.config.load import _format_one, apply_factor

    try:
        BaselineConfig.model_validate(apply_factor(baseline, name, value))
    except ValidationError as err:
        for error in err.errors():
            # Errors elsewhere in the baseline are reported once, against the baseline.
            if ".".join(str(p) for p in error["loc"][:2]) == name:
                line = _format_one({**error, "loc": error["loc"][2:]}, prefix="value")
                return line.split(": ", 1)[1]
    return None


def is_integer_field(baseline: BaselineConfig, name: str, value: Any) -> bool:
    """Whether the baseline holds ``name`` as an integer once set to ``value`` (``lora.r``)."""
    section, key = name.split(".", 1)
    raw = baseline.model_dump()
    raw[section][key] = value
    try:
        settings = BaselineConfig.model_validate(raw)
    except ValidationError:
        return False
    held = getattr(getattr(settings, section), key)
    return isinstance(held, int) and not isinstance(held, bool)
