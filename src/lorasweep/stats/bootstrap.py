"""Bootstrap intervals over per-example scores, paired between two configurations.

Scores come as a matrix of shape (seeds, examples): one row per training seed, one column per
evaluation example, the same examples in the same order for both configurations. With one seed
this is the classic paired bootstrap: resample examples with replacement and recompute the mean
difference. With several seeds it is hierarchical: each resample draws seed indices, then
example indices, both shared by the two configurations (seed i of one is paired with seed i of
the other; the examples are crossed with the seeds), so the interval covers the variation from
training seeds as well as from the choice of examples.

Intervals are percentile intervals of the resampled means. A difference is significant when its
interval excludes 0. Everything is seeded, so a report rebuilt from the same store is identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
SEED = 0
CONFIDENCE = 0.95
GAIN, LOSS, NOISE = "gain", "loss", "noise"
# Resamples are drawn in chunks so that a chunk's gathered scores stay around 32 MB.
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Delta:
    """The difference ``other - reference`` of a metric's mean, with its paired interval.

    Attributes:
        delta: The observed difference of the means.
        low: Lower end of the percentile interval of the resampled differences.
        high: Upper end.
        share_at_or_below_zero: Share of resampled differences <= 0 (a one-sided bootstrap
            p-value for "other is better" when higher is better).
        n_examples: Paired examples.
        n_seeds: Paired seeds (1 without seeds).
        direction: ``"higher"`` or ``"lower"``: which way is better for this metric.
        sd: Standard deviation of the per-example differences (each example's difference
            averaged over the seeds): what the power of the comparison rests on.
        level: Coverage of ``low``-``high`` (0.95; more where a family-wise correction widened
            it).
        significant: Set by a family-wise correction (``multiplicity``): whether the family's
            test rejects "no difference". None: the interval alone decides.
        uncorrected: The comparison's own 95% delta, when this one is corrected.
    """

    delta: float
    low: float
    high: float
    share_at_or_below_zero: float
    n_examples: int
    n_seeds: int = 1
    direction: str = "higher"
    sd: float | None = None
    level: float = CONFIDENCE
    significant: bool | None = None
    uncorrected: Delta | None = None

    @property
    def verdict(self) -> str:
        """``gain`` or ``loss`` when the interval excludes 0 (significant), else ``noise``; a
        family-wise correction's decision (``significant``) takes precedence."""
        if self.significant is not None:
            if not self.significant or self.delta == 0:
                return NOISE
            better = self.delta > 0 if self.direction == "higher" else self.delta < 0
            return GAIN if better else LOSS
        if self.low > 0:
            return GAIN if self.direction == "higher" else LOSS
        if self.high < 0:
            return LOSS if self.direction == "higher" else GAIN
        return NOISE


def as_matrix(scores: np.ndarray | list) -> np.ndarray:
    """Scores as a float matrix (seeds, examples); a flat list is one seed."""
    matrix = np.asarray(scores, dtype=float)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise ValueError(f"scores must be (seeds, examples) with both > 0, got {matrix.shape}")
    return matrix


def resampled_means(values: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """Bootstrap means of ``values`` (metrics, seeds, examples) -> (metrics, resamples).

    All metrics share the same drawn indices, so their resamples describe the same replicate.
    """
    metrics, seeds, examples = values.shape
    rng = np.random.default_rng(seed)
    out = np.empty((metrics, resamples))
    chunk = max(1, _CHUNK_ELEMENTS // (metrics * seeds * examples))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        picked = rng.integers(0, examples, size=(size, examples))
        per_seed = values[:, :, picked].mean(axis=-1)  # (metrics, seeds, size)
        if seeds == 1:
            out[:, start : start + size] = per_seed[:, 0]
        else:
            seed_rows = rng.integers(0, seeds, size=(seeds, size))
            chosen = per_seed[:, seed_rows, np.arange(size)]  # (metrics, seeds, size)
            out[:, start : start + size] = chosen.mean(axis=1)
    return out


def paired_bootstraps(
    reference: Mapping[str, np.ndarray | list],
    other: Mapping[str, np.ndarray | list],
    directions: Mapping[str, str] | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, Delta]:
    """Paired bootstrap of ``other - reference`` for every metric the two have in common.

    Args:
        reference: Metric -> scores (seeds, examples) or (examples,) of the reference
            configuration (the baseline).
        other: The same for the configuration compared with it; same shape, paired by position.
        directions: Metric -> ``higher``/``lower`` (default ``higher``).
        resamples: Bootstrap resamples (10,000 by default).
        seed: Seed of the resampling generator.
        confidence: Coverage of the percentile interval.
    """
    keys = [k for k in reference if k in other]
    if not keys:
        return {}
    differences = []
    for key in keys:
        a, b = as_matrix(reference[key]), as_matrix(other[key])
        if a.shape != b.shape:
            raise ValueError(f"{key}: paired scores differ in shape: {a.shape} vs {b.shape}")
        differences.append(b - a)
    stacked = np.stack(differences)
    means = resampled_means(stacked, resamples, seed)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail], axis=1)
    directions = directions or {}
    per_example = stacked.mean(axis=1)  # (metrics, examples): each example's mean difference
    spread = per_example.std(axis=1, ddof=1) if stacked.shape[2] > 1 else np.full(len(keys), 0.0)
    return {
        key: Delta(
            delta=float(stacked[i].mean()),
            low=float(low[i]),
            high=float(high[i]),
            share_at_or_below_zero=float((means[i] <= 0).mean()),
            n_examples=stacked.shape[2],
            n_seeds=stacked.shape[1],
            direction=directions.get(key, "higher"),
            sd=float(spread[i]),
            level=confidence,
        )
        for i, key in enumerate(keys)
    }


def paired_bootstrap(
    reference: np.ndarray | list,
    other: np.ndarray | list,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> Delta:
    """Paired bootstrap of one metric's ``mean(other) - mean(reference)``; see the module doc."""
    return paired_bootstraps(
        {"score": reference}, {"score": other}, None, resamples, seed, confidence
    )["score"]


def mean_intervals(
    scores: Mapping[str, np.ndarray | list],
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, Interval]:
    """Each metric's mean with its bootstrap percentile interval (hierarchical with seeds)."""
    if not scores:
        return {}
    keys = list(scores)
    stacked = np.stack([as_matrix(scores[k]) for k in keys])
    means = resampled_means(stacked, resamples, seed)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail], axis=1)
    return {
        key: Interval(float(stacked[i].mean()), float(low[i]), float(high[i]))
        for i, key in enumerate(keys)
    }
