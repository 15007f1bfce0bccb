"""The search space: each ``search.space`` field as an Optuna distribution, and back.

Choices become a categorical distribution. Optuna's categorical choices are scalars, so a
choice that is a list (``target_modules: [[q_proj], [q_proj, v_proj]]``) is offered by its label
(``q_proj+v_proj``) and turned back into the list when the trial's settings are built. A range
of a field the baseline holds as an integer is an integer distribution; any other range a float
one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from lorasweep.config.load import apply_factor
from lorasweep.config.plan import value_label as label
from lorasweep.config.schema import BaselineConfig
from lorasweep.config.search import Range, SearchConfig, is_integer_field


@dataclass(frozen=True)
class Parameter:
    """One searched field: its distribution, and how a suggestion becomes a config value.

    Attributes:
        name: The baseline field, ``lora.r``.
        distribution: What Optuna samples.
        values: Categorical only: the suggested label -> the config value it stands for.
    """

    name: str
    distribution: BaseDistribution
    values: dict[Any, Any] | None = None

    def value(self, suggested: Any) -> Any:
        """The config value of a suggestion."""
        return self.values[suggested] if self.values is not None else suggested

    @property
    def is_categorical(self) -> bool:
        return isinstance(self.distribution, CategoricalDistribution)


def parameters(search: SearchConfig, baseline: BaselineConfig) -> list[Parameter]:
    """The search's fields, in the config's order."""
    found = []
    for name, values in search.space.items():
        if isinstance(values, Range):
            found.append(Parameter(name, _range(name, values, baseline)))
            continue
        labels = {suggested(v): v for v in values}
        found.append(Parameter(name, CategoricalDistribution(list(labels)), labels))
    return found


def _range(name: str, values: Range, baseline: BaselineConfig) -> BaseDistribution:
    if is_integer_field(baseline, name, values.low):
        step = int(values.step) if values.step else 1
        return IntDistribution(int(values.low), int(values.high), log=values.log, step=step)
    return FloatDistribution(float(values.low), float(values.high), log=values.log,
                             step=values.step)  # fmt: skip


def suggested(value: Any) -> Any:
    """A config value as Optuna holds it: scalars as they are, a list by its label."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return label(value)


def settings(baseline: BaselineConfig, params: dict[str, Any]) -> BaselineConfig:
    """The baseline with every searched field set to the trial's value."""
    raw = baseline.model_dump()
    for name, value in params.items():
        raw = apply_factor(raw, name, value)
    return BaselineConfig.model_validate(raw)
