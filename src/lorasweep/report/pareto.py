"""Quality against cost as data: which configurations no other one beats on both (Pareto front).

A configuration is on the front when no other configuration is at least as good on every
objective and better on one. The directions of the costs are declared here, once; those of the
metrics are declared by each metric (``lorasweep.metrics.base.Key``). The report's chart only
draws this data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# What a configuration costs, and which way is better. These are the chart's two x axes.
COST_DIRECTIONS = {"trainable_params": "lower", "train_s": "lower"}
COST_NAMES = {"trainable_params": "trainable parameters", "train_s": "training time (s)"}


def dominates(
    a: Mapping[str, float], b: Mapping[str, float], directions: Mapping[str, str]
) -> bool:
    """Whether ``a`` is at least as good as ``b`` on every objective and better on one.

    Args:
        a: Objective -> value.
        b: Objective -> value, the same objectives.
        directions: Objective -> ``higher`` or ``lower`` (which way is better).
    """
    better = False
    for key, direction in directions.items():
        sign = 1 if direction == "higher" else -1
        if sign * (a[key] - b[key]) < 0:
            return False
        better = better or a[key] != b[key]
    return better


def pareto_front(
    points: Sequence[Mapping[str, float]], directions: Mapping[str, str]
) -> list[bool]:
    """For each point, whether no other point dominates it (identical points are all kept).

    Args:
        points: Objective -> value, one mapping per point; every one holds every objective.
        directions: Objective -> ``higher`` or ``lower``.

    Returns:
        One flag per point, in the points' order.
    """
    for key, direction in directions.items():
        if direction not in ("higher", "lower"):
            raise ValueError(f"direction of {key!r} must be 'higher' or 'lower', not {direction!r}")
    return [
        not any(dominates(other, point, directions) for other in points if other is not point)
        for point in points
    ]


@dataclass(frozen=True)
class TradeoffPoint:
    """One configuration in a quality-against-cost panel."""

    label: str
    quality: float
    cost: float
    on_front: bool


@dataclass(frozen=True)
class Tradeoff:
    """One panel: a quality metric against one cost, every configuration with both known.

    Attributes:
        quality_key: The metric key (``rougeL``).
        cost_key: The cost (``trainable_params``), better as ``COST_DIRECTIONS`` says.
        points: Every configuration with both numbers, in the order given.
    """

    quality_key: str
    cost_key: str
    points: list[TradeoffPoint]
    quality_direction: str = "higher"

    @property
    def front(self) -> list[TradeoffPoint]:
        """The configurations on the front, cheapest first."""
        sign = 1 if COST_DIRECTIONS[self.cost_key] == "lower" else -1
        return sorted((p for p in self.points if p.on_front), key=lambda p: sign * p.cost)


def tradeoff(
    configurations: Sequence[tuple[str, Mapping[str, float | None]]],
    quality_key: str,
    cost_key: str,
    quality_direction: str = "higher",
) -> Tradeoff:
    """The Pareto front of ``quality_key`` against ``cost_key`` over the configurations.

    Args:
        configurations: (label, numbers) per configuration; numbers hold the metric and the
            cost, either of which may be missing or None (then the configuration is left out).
        quality_key: The metric key.
        cost_key: A key of ``COST_DIRECTIONS``.
        quality_direction: Which way the metric is better (its ``Key.direction``).
    """
    directions = {quality_key: quality_direction, cost_key: COST_DIRECTIONS[cost_key]}
    known = [
        (label, {key: float(numbers[key]) for key in directions})
        for label, numbers in configurations
        if all(numbers.get(key) is not None for key in directions)
    ]
    flags = pareto_front([values for _, values in known], directions)
    points = [
        TradeoffPoint(label, values[quality_key], values[cost_key], flag)
        for (label, values), flag in zip(known, flags, strict=True)
    ]
    return Tradeoff(quality_key, cost_key, points, quality_direction)
