"""What an evaluation set can see: the smallest detectable difference, and the examples needed.

A paired comparison on n examples whose per-example differences spread with standard deviation
sd detects (with 80% power, two-sided at 5%) a difference of about

    mde = (z_0.975 + z_0.80) * sd / sqrt(n)  =  2.80 * sd / sqrt(n)

the normal approximation every power calculation for a paired mean starts from. Turned around,
a difference d needs about ``((z_0.975 + z_0.80) * sd / d) ** 2`` examples. With several seeds,
sd is that of each example's difference averaged over the seeds: seed-to-seed variation adds to
it, so the numbers are a lower bound on what a seeded comparison needs. The bootstrap interval
and this approximation rest on the same differences; for the 200-example sets the reference
study uses they agree to a few percent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from lorasweep.stats.bootstrap import Delta

POWER = 0.80
ALPHA = 0.05
Z = NormalDist().inv_cdf(1 - ALPHA / 2) + NormalDist().inv_cdf(POWER)  # 2.8016


@dataclass(frozen=True)
class Power:
    """What one paired comparison could detect.

    Attributes:
        mde: The smallest difference it detects with 80% power (two-sided 5%), in the
            metric's units.
        examples: Its paired examples.
        needed: About how many examples would detect the observed difference with 80% power;
            None when the difference is 0 (no number of examples would).
    """

    mde: float
    examples: int
    needed: int | None


def detectable(sd: float, examples: int) -> float:
    """The smallest difference ``examples`` paired examples detect (80% power, 5% two-sided)."""
    return Z * sd / math.sqrt(examples)


def examples_needed(sd: float, difference: float) -> int | None:
    """About how many paired examples detect ``difference`` with 80% power; None for 0."""
    if difference == 0:
        return None
    return max(2, math.ceil((Z * sd / abs(difference)) ** 2))


def power_of(delta: Delta | None) -> Power | None:
    """The power numbers of a paired comparison; None without one (or without its spread)."""
    if delta is None or delta.sd is None or delta.n_examples < 2:
        return None
    return Power(
        mde=detectable(delta.sd, delta.n_examples),
        examples=delta.n_examples,
        needed=examples_needed(delta.sd, delta.delta),
    )
