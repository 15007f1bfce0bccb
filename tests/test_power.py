"""Power of a paired comparison: the detectable difference and the examples a difference needs."""

from __future__ import annotations

import numpy as np
import pytest

from lorasweep.stats.bootstrap import NOISE, paired_bootstrap
from lorasweep.stats.power import Z, detectable, examples_needed, power_of


def test_the_detectable_difference_is_detected_about_80_percent_of_the_time():
    # Simulate evaluation sets whose true paired difference is exactly the MDE: the paired
    # bootstrap's 95% interval should exclude 0 in about 80% of them.
    rng = np.random.default_rng(11)
    n, sd = 200, 12.0
    mde = detectable(sd, n)
    hits = 0
    trials = 150
    for _ in range(trials):
        base = rng.uniform(0, 60, n)
        other = base + mde + rng.normal(0, sd, n)
        hits += (
            paired_bootstrap(base, other, resamples=1000, seed=int(rng.integers(1e9))).verdict
            != NOISE
        )
    assert 0.68 <= hits / trials <= 0.92


def test_examples_needed_inverts_the_detectable_difference():
    assert round(Z, 4) == 2.8016
    for sd, n in [(10.0, 200), (3.0, 50), (25.0, 1000)]:
        assert examples_needed(sd, detectable(sd, n)) in (n, n + 1)
    assert examples_needed(5.0, 0.0) is None


def test_power_of_a_delta_uses_the_spread_of_its_paired_differences():
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 60, 200)
    noise = rng.normal(0, 8.0, 200)
    delta = paired_bootstrap(base, base + 0.5 + noise)
    power = power_of(delta)
    assert delta.sd == pytest.approx(np.std(noise, ddof=1))
    assert power.examples == 200
    assert power.mde == pytest.approx(Z * delta.sd / np.sqrt(200))
    # A difference far below what 200 examples can see needs far more of them.
    assert power.needed > 200 * (power.mde / abs(delta.delta)) ** 2 * 0.99
    assert power_of(None) is None
