"""Family-wise error control over a family of paired comparisons: Holm's step-down method.

An experiment with k values makes k-1 comparisons with the baseline; a search makes one per
trial. At 95% each, the chance that at least one difference that is not there looks significant
grows with the family (about 40% for 10 comparisons). Holm's method keeps that chance at 5% for
the whole family, is uniformly more powerful than Bonferroni, and needs no assumption about how
the comparisons depend on each other (they share the baseline, so they do).

The two-sided p-value of a comparison comes from its paired bootstrap: twice the smaller tail
of the resampled differences beyond 0, so ``p < 0.05`` exactly when the 95% percentile interval
excludes 0. Holm sorts the family's p-values, tests the i-th smallest (0-based) at
``alpha / (m - i)`` and stops at the first that fails. The interval that goes with that test is
the percentile interval at ``1 - alpha / (m - i)``: ``corrected_level`` gives it, and
``bootstrap.paired_bootstraps(..., confidence=level)`` computes it with the same resamples.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from lorasweep.stats.bootstrap import CONFIDENCE, GAIN, LOSS, NOISE, Delta

METHOD = "Holm"
ALPHA = round(1 - CONFIDENCE, 10)
DESCRIPTION = "Holm's step-down correction over each family of comparisons (family-wise error 5%)"

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Adjusted:
    """One comparison of a family, after Holm's correction.

    Attributes:
        p: The uncorrected two-sided bootstrap p-value.
        adjusted_p: Holm's adjusted p-value; the comparison is significant when it is < alpha.
        level: Confidence of the percentile interval that matches this comparison's step of
            the procedure (0.95 for a family of one).
        family_size: Comparisons in the family.
        significant: Whether the family-wise test rejects "no difference".
    """

    p: float
    adjusted_p: float
    level: float
    family_size: int
    significant: bool


def two_sided_p(delta: Delta) -> float:
    """Twice the smaller share of resampled differences on either side of 0, at most 1.

    Identical scores (every resampled difference exactly 0) give 1: nothing was seen.
    """
    if delta.low == delta.high == 0:
        return 1.0
    below = delta.share_at_or_below_zero
    return min(1.0, 2 * min(below, 1 - below))


def holm(p_values: Mapping[K, float], alpha: float = ALPHA) -> dict[K, Adjusted]:
    """Holm's step-down correction of a family of p-values, keyed as given."""
    m = len(p_values)
    order = sorted(p_values, key=lambda key: p_values[key])
    adjusted: dict[K, Adjusted] = {}
    running = 0.0
    rejecting = True
    for rank, key in enumerate(order):
        p = p_values[key]
        running = max(running, min(1.0, (m - rank) * p))
        rejecting = rejecting and p < alpha / (m - rank)
        adjusted[key] = Adjusted(
            p=p,
            adjusted_p=running,
            level=1 - alpha / (m - rank),
            family_size=m,
            significant=rejecting,
        )
    return {key: adjusted[key] for key in p_values}


def holm_deltas(deltas: Mapping[K, Delta | None], alpha: float = ALPHA) -> dict[K, Adjusted]:
    """Holm over a family of paired comparisons; comparisons that could not be made are left out."""
    return holm({key: two_sided_p(d) for key, d in deltas.items() if d is not None}, alpha)


def corrected_verdict(delta: Delta, adjusted: Adjusted) -> str:
    """``gain``/``loss`` when the family-wise test is significant, else ``noise``."""
    if not adjusted.significant or delta.delta == 0:
        return NOISE
    better = delta.delta > 0 if delta.direction == "higher" else delta.delta < 0
    return GAIN if better else LOSS


def corrected_deltas(
    deltas: Mapping[K, Delta], widen: Callable[[K, float], Delta | None]
) -> dict[K, Delta]:
    """The family's deltas with Holm's verdicts and the intervals of their steps.

    Args:
        deltas: The family's comparisons at 95%.
        widen: ``(key, level) -> `` the same comparison's delta with its interval at ``level``
            (the same resamples, so the interval and the verdict agree).

    Returns:
        Each delta at its Holm level, ``significant`` set by the procedure and ``uncorrected``
        holding the 95% delta it came from.
    """
    adjusted = holm_deltas(deltas)
    out = {}
    for key, delta in deltas.items():
        step = adjusted[key]
        wide = delta if step.level == delta.level else widen(key, step.level) or delta
        out[key] = replace(wide, significant=step.significant, uncorrected=delta)
    return out
