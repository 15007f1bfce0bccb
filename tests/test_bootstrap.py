"""The paired and hierarchical bootstrap against independent implementations, and pairing."""

from __future__ import annotations

import numpy as np
import pytest

from lorasweep.stats.bootstrap import (
    GAIN,
    LOSS,
    NOISE,
    Delta,
    mean_intervals,
    paired_bootstrap,
    paired_bootstraps,
)
from lorasweep.stats.pairing import pair_examples

RNG = np.random.default_rng(2024)
A = RNG.uniform(0, 60, 200)  # a ROUGE-L-like spread: sd around 17 points
B = A + RNG.normal(1.0, 6.0, 200)


def loop_bootstrap(a, b, resamples=5000, seed=99):
    """A plain loop, written independently: resample example indices, mean difference."""
    rng = np.random.default_rng(seed)
    diffs = np.asarray(b) - np.asarray(a)
    means = np.array(
        [diffs[rng.integers(0, len(diffs), len(diffs))].mean() for _ in range(resamples)]
    )
    return means


def test_paired_interval_matches_an_independent_loop():
    delta = paired_bootstrap(A, B)
    means = loop_bootstrap(A, B)
    low, high = np.quantile(means, [0.025, 0.975])
    assert delta.delta == pytest.approx(B.mean() - A.mean())
    # Two Monte Carlo estimates of the same quantile: they agree to a small fraction of the width.
    width = high - low
    assert delta.low == pytest.approx(low, abs=0.05 * width)
    assert delta.high == pytest.approx(high, abs=0.05 * width)
    assert delta.share_at_or_below_zero == pytest.approx((means <= 0).mean(), abs=0.01)
    assert delta.n_examples == 200 and delta.n_seeds == 1


def test_paired_interval_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    result = stats.bootstrap(
        (A, B),
        lambda a, b, axis=-1: b.mean(axis=axis) - a.mean(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=10_000,
        method="percentile",
        random_state=np.random.default_rng(5),
    )
    delta = paired_bootstrap(A, B)
    width = result.confidence_interval.high - result.confidence_interval.low
    assert delta.low == pytest.approx(result.confidence_interval.low, abs=0.05 * width)
    assert delta.high == pytest.approx(result.confidence_interval.high, abs=0.05 * width)


def test_pairing_makes_the_interval_narrower_than_unpaired_spread():
    delta = paired_bootstrap(A, B)
    # Unpaired, the standard error would be about sqrt(2) * 17 / sqrt(200) ~ 1.7 points; paired
    # on a 6-point per-example difference it is about 0.42, so the interval is about 1.7 wide.
    assert 1.0 < delta.high - delta.low < 2.5


def test_verdicts_follow_the_interval():
    assert paired_bootstrap(A, A + 3).verdict == GAIN
    assert paired_bootstrap(A, A - 3).verdict == LOSS
    noisy = A + np.tile([5.0, -5.0], 100)
    assert paired_bootstrap(A, noisy).verdict == NOISE
    # For a lower-is-better metric the same interval reads the other way round.
    assert Delta(-2.0, -3.0, -1.0, 1.0, 10, direction="lower").verdict == GAIN
    assert Delta(0.5, -1.0, 2.0, 0.3, 10).verdict == NOISE


def test_share_at_or_below_zero_counts_ties():
    same = paired_bootstrap(A, A)
    assert same.delta == 0 and same.share_at_or_below_zero == 1.0 and same.verdict == NOISE


def test_seeded_and_metrics_share_the_resamples():
    first = paired_bootstraps({"x": A, "y": A}, {"x": B, "y": B})
    again = paired_bootstraps({"x": A, "y": A}, {"x": B, "y": B})
    assert first == again
    assert first["x"].low == first["y"].low  # same indices for every metric
    other_seed = paired_bootstrap(A, B, seed=1)
    assert other_seed.low != first["x"].low


def hierarchical_loop(a, b, resamples=4000, seed=3):
    """Independent loop: draw seed rows, then example columns, both shared by the two sides."""
    rng = np.random.default_rng(seed)
    k, n = a.shape
    out = []
    for _ in range(resamples):
        seeds = rng.integers(0, k, k)
        examples = rng.integers(0, n, n)
        out.append((b[np.ix_(seeds, examples)] - a[np.ix_(seeds, examples)]).mean())
    return np.array(out)


def test_hierarchical_bootstrap_matches_an_independent_loop():
    rng = np.random.default_rng(8)
    a = rng.uniform(0, 60, (3, 100))
    # Seed-to-seed differences of +-2 points on top of a 1-point gain.
    b = a + 1.0 + np.array([[2.0], [-2.0], [0.5]]) + rng.normal(0, 4, (3, 100))
    delta = paired_bootstrap(a, b)
    means = hierarchical_loop(a, b)
    low, high = np.quantile(means, [0.025, 0.975])
    assert delta.n_seeds == 3 and delta.n_examples == 100
    assert delta.delta == pytest.approx((b - a).mean())
    width = high - low
    assert delta.low == pytest.approx(low, abs=0.06 * width)
    assert delta.high == pytest.approx(high, abs=0.06 * width)
    # Seed variation widens the interval compared with pooling the seeds' examples.
    pooled = paired_bootstrap((a.mean(axis=0)), (b.mean(axis=0)))
    assert delta.high - delta.low > pooled.high - pooled.low


def test_mean_interval_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    result = stats.bootstrap(
        (A,), np.mean, n_resamples=10_000, method="percentile", random_state=1
    ).confidence_interval
    interval = mean_intervals({"rougeL": A})["rougeL"]
    assert interval.estimate == pytest.approx(A.mean())
    width = result.high - result.low
    assert interval.low == pytest.approx(result.low, abs=0.05 * width)
    assert interval.high == pytest.approx(result.high, abs=0.05 * width)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="differ in shape"):
        paired_bootstrap(A, A[:10])
    with pytest.raises(ValueError, match="seeds, examples"):
        paired_bootstrap([], [])


def test_pairing_by_id_then_by_input():
    reference = [{"id": "1", "input": "a"}, {"id": "2", "input": "b"}]
    shuffled = [{"id": "2", "input": "b"}, {"id": "9", "input": "z"}, {"id": "1", "input": "a"}]
    assert pair_examples(reference, shuffled).indices == [2, 0]
    assert pair_examples(reference, shuffled).by == "id"
    by_input = [{"input": "b "}, {"input": " a"}]  # whitespace does not matter
    pairing = pair_examples(reference, by_input)
    assert pairing.by == "input" and pairing.indices == [1, 0]
    assert pair_examples(reference, [{"id": "1", "input": "a"}]) is None  # example 2 missing
    duplicated = [{"id": "1"}, {"id": "1"}, {"id": "2"}]
    assert pair_examples(reference, duplicated) is None  # ids must identify one example
