"""Holm's step-down correction: a textbook family, and agreement with the bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from lorasweep.stats.bootstrap import GAIN, LOSS, NOISE, paired_bootstrap
from lorasweep.stats.multiplicity import corrected_verdict, holm, holm_deltas, two_sided_p


def test_holm_on_a_textbook_family():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005})
    # Sorted: d 0.005 x4 = 0.02, a 0.01 x3 = 0.03, c 0.03 x2 = 0.06, b 0.04 x1 -> max 0.06.
    assert {k: round(v.adjusted_p, 6) for k, v in adjusted.items()} == {
        "a": 0.03,
        "b": 0.06,
        "c": 0.06,
        "d": 0.02,
    }
    # d < .05/4 and a < .05/3 are rejected; c fails .05/2, so the procedure stops there and b
    # (0.04 < .05 on its own) is not rejected either.
    assert {k for k, v in adjusted.items() if v.significant} == {"a", "d"}
    assert [adjusted[k].level for k in "dacb"] == pytest.approx([0.9875, 1 - 0.05 / 3, 0.975, 0.95])
    assert list(adjusted) == ["a", "b", "c", "d"]  # keyed as given


def test_a_family_of_one_is_the_uncorrected_test():
    (only,) = holm({"x": 0.049}).values()
    assert only.significant and only.adjusted_p == 0.049 and only.level == pytest.approx(0.95)


def test_adjusted_p_and_verdict_agree_with_the_bootstrap_interval_at_the_holm_level():
    rng = np.random.default_rng(7)
    base = rng.uniform(0, 60, 200)
    noise = {shift: rng.normal(0, 6.0, 200) for shift in (-1.5, 0.0, 0.7, 2.0)}
    others = {shift: base + shift + n - n.mean() for shift, n in noise.items()}  # exact shifts
    family = {shift: paired_bootstrap(base, other) for shift, other in others.items()}
    adjusted = holm_deltas(family)
    for shift, delta in family.items():
        a = adjusted[shift]
        assert a.p == pytest.approx(two_sided_p(delta))
        assert (a.p < 0.05) == (delta.verdict != NOISE)  # uncorrected: the 95% interval
        # The interval at this comparison's Holm level excludes 0 exactly when its own step
        # of the procedure rejects (the step-down also stops at the first failure).
        wide = paired_bootstrap(base, others[shift], confidence=a.level)
        rank = sorted(x.p for x in adjusted.values()).index(a.p)
        assert (wide.verdict != NOISE) == (a.p < 0.05 / (4 - rank))
        assert wide.low <= delta.low and wide.high >= delta.high
    verdicts = {s: corrected_verdict(family[s], adjusted[s]) for s in family}
    assert verdicts[2.0] == GAIN and verdicts[-1.5] == LOSS and verdicts[0.0] == NOISE
    # The correction only ever takes significance away, never adds or flips it.
    assert all(v == NOISE or v == family[s].verdict for s, v in verdicts.items())


def test_comparisons_that_could_not_be_made_are_left_out():
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 50)
    adjusted = holm_deltas({"made": paired_bootstrap(base, base + 0.2), "missing": None})
    assert list(adjusted) == ["made"] and adjusted["made"].family_size == 1


def test_identical_scores_are_no_evidence_at_all():
    base = np.random.default_rng(2).uniform(0, 60, 100)
    same = paired_bootstrap(base, base.copy())
    assert two_sided_p(same) == 1.0
    (only,) = holm_deltas({"same": same}).values()
    assert only.adjusted_p == 1.0 and not only.significant
