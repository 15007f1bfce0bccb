"""The recommendation rule and its sentences on hand-made verdicts: the text agrees with them."""

from __future__ import annotations

import random
import re

import pytest

from lorasweep.report.recommend import (
    CHEAPEST,
    NONE,
    ONLY,
    SIGNIFICANT,
    Candidate,
    Overall,
    Recommendation,
    recommend,
)
from lorasweep.stats.bootstrap import LOSS, NOISE, Delta


def delta(value: float, half_width: float) -> Delta:
    return Delta(value, value - half_width, value + half_width, 0.5, 200)


def lookup(table: dict[str, Delta | None]):
    return lambda best, other: table[other]


def test_best_named_only_when_it_beats_every_other_value():
    candidates = [Candidate("4", 30.0, 100, 5.0), Candidate("16", 35.0, 400, 6.0)]
    result = recommend("rank", "lora.r", candidates, lookup({"4": delta(-5.0, 1.0)}))
    assert (result.choice, result.reason, result.worse) == ("16", SIGNIFICANT, ("4",))
    text = " ".join(result.sentences())
    assert text.startswith("Recommended: **16**. Its ROUGE-L (35.00) is significantly higher")
    assert "4: -5.00 [-6.00, -4.00]" in text


def test_within_noise_picks_the_fewest_trainable_parameters():
    candidates = [
        Candidate("4", 30.0, 100, 9.0),
        Candidate("8", 30.4, 200, 5.0),
        Candidate("16", 30.5, 400, 5.0),
        Candidate("32", 20.0, 800, 5.0),
    ]
    deltas = {"4": delta(-0.5, 1.0), "8": delta(-0.1, 1.0), "32": delta(-10.5, 1.0)}
    result = recommend("rank", "lora.r", candidates, lookup(deltas))
    assert (result.best, result.choice, result.reason) == ("16", "4", CHEAPEST)
    assert result.tied == ("4", "8", "16") and result.worse == ("32",)
    first, second, third = result.sentences()
    assert first.startswith("No value is significantly better than all the others: 4 and 8 are")
    assert "within noise of the best ROUGE-L, 16 (30.50)" in first
    assert second == "32 is significantly worse than the best."
    assert third == (
        "Recommended: **4**, the cheapest value within noise of the best "
        "(fewest trainable parameters: 100)."
    )


def test_equal_parameters_fall_back_to_the_fewest_training_tokens():
    candidates = [Candidate("1e-4", 30.0, 100, 9000), Candidate("2e-4", 30.2, 100, 12000)]
    result = recommend("lr", "training.learning_rate", candidates, lookup({"1e-4": delta(-0.2, 1)}))
    assert result.choice == "1e-4"
    assert (
        "(the same trainable parameters, the fewest training tokens: 9,000)"
        in result.sentences()[-1]
    )


def test_equal_costs_prefer_the_baseline_then_config_order_never_timing():
    """Learning rates cost the same: the baseline's value wins the tie, whatever the clock said."""
    tied = lookup({"1e-4": delta(0.1, 1), "2e-4": delta(-0.2, 1), "5e-4": delta(-0.1, 1)})
    candidates = [Candidate("1e-4", 30.1, 100, 9000), Candidate("2e-4", 29.8, 100, 9000, True),
                  Candidate("5e-4", 30.3, 100, 9000)]  # fmt: skip
    result = recommend("lr", "training.learning_rate", candidates, tied)
    assert result.choice == "2e-4"
    assert (
        "the baseline's value, within noise of the best at the same cost" in result.sentences()[-1]
    )
    no_baseline = [Candidate(c.label, c.score, 100, 9000) for c in candidates]
    assert recommend("lr", "training.learning_rate", no_baseline, tied).choice == "1e-4"


def test_the_cheapest_may_be_the_best_itself():
    candidates = [Candidate("qv", 31.0, 100, 5.0), Candidate("all", 30.0, 900, 9.0)]
    result = recommend("t", "lora.target_modules", candidates, lookup({"all": delta(-1.0, 2)}))
    assert result.choice == result.best == "qv" and result.reason == CHEAPEST
    assert result.sentences()[-1].endswith("; it also has the best ROUGE-L.")


def test_unpaired_differences_never_count_as_significant():
    candidates = [Candidate("a", 30.0, 100), Candidate("b", 40.0, 200)]
    result = recommend("x", "lora.r", candidates, lookup({"a": None}))
    assert result.reason == CHEAPEST and result.choice == "a"
    assert "a: not paired" in result.sentences()[0]


def test_one_value_or_none_is_no_evidence():
    only = recommend("x", "lora.r", [Candidate("8", 30.0)], lookup({}))
    assert only.reason == ONLY and "no evidence" in only.sentences()[0]
    none = recommend("x", "lora.r", [], lookup({}))
    assert none.reason == NONE and none.choice is None
    assert none.sentences() == ["No value of `lora.r` finished, so there is nothing to recommend."]


@pytest.mark.parametrize("seed", range(40))
def test_sentences_agree_with_the_verdicts_on_random_tables(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 5)
    candidates = [
        Candidate(f"v{i}", rng.uniform(20, 40), rng.choice([100, 200, 400]), rng.uniform(1, 9))
        for i in range(n)
    ]
    best = max(candidates, key=lambda c: c.score)
    deltas = {
        c.label: delta(c.score - best.score, rng.uniform(0.1, 6)) for c in candidates if c != best
    }
    result = recommend("x", "lora.r", candidates, lookup(deltas))
    text = " ".join(result.sentences())
    chosen = re.search(r"Recommended: \*\*(\w+)\*\*", text).group(1)
    assert chosen == result.choice
    losses = {label for label, d in deltas.items() if d.verdict == LOSS}
    noise = {label for label, d in deltas.items() if d.verdict == NOISE}
    if not noise:
        assert result.reason == SIGNIFICANT and chosen == best.label
        assert all(f"{label}: {deltas[label].delta:+.2f}" in text for label in losses)
        return
    named_noise = re.search(r"all the others: (.*?) (?:is|are) within noise", text).group(1)
    assert set(re.findall(r"v\d", named_noise)) == noise
    if losses:
        worse = re.search(r"\. ([v\d, and]+) (?:is|are) significantly worse", text).group(1)
        assert set(re.findall(r"v\d", worse)) == losses
    else:
        assert "significantly worse" not in text
    tied = [c for c in candidates if c.label in noise | {best.label}]
    cheapest = min(tied, key=lambda c: (c.trainable_params, c.train_tokens))
    assert chosen == cheapest.label


def overall_for(*recommendations, confirmation=False):
    return Overall(list(recommendations), {"rank": "8", "lr": "2e-4"}, confirmation)


def within_noise_rank(cheap: str) -> Recommendation:
    """rank: 8 (the baseline's value) and 16 within noise; ``cheap`` has fewer parameters."""
    params = {"8": 2, "16": 2} | {cheap: 1}
    candidates = [Candidate("8", 30.0, params["8"]), Candidate("16", 30.2, params["16"])]
    return recommend("rank", "lora.r", candidates, lookup({"8": delta(-0.2, 1)}))


def significant_lr() -> Recommendation:
    candidates = [Candidate("2e-4", 30.0, 1), Candidate("1e-3", 35.0, 1)]
    return recommend("lr", "training.learning_rate", candidates, lookup({"2e-4": delta(-5, 1)}))


def test_overall_keeps_the_baseline_when_no_experiment_changes_it():
    assert overall_for(within_noise_rank(cheap="8")).sentences() == [
        "Every experiment recommends the baseline's value: keep the baseline configuration."
    ]
    undecided = recommend("lr", "training.learning_rate", [Candidate("2e-4", 30.0)], lookup({}))
    assert overall_for(within_noise_rank(cheap="8"), undecided).sentences() == [
        "Every other experiment recommends the baseline's value: keep the baseline configuration.",
        "No value is recommended for `training.learning_rate`: fewer than two values finished.",
    ]


def test_overall_combines_changes_and_says_why():
    rank, lr = within_noise_rank(cheap="16"), significant_lr()
    sentences = overall_for(rank, lr).sentences()
    assert sentences[0] == (
        "Recommended configuration: the baseline with `lora.r` = 16, "
        "`training.learning_rate` = 1e-3."
    )
    assert "`training.learning_rate` is significantly better than every alternative" in sentences[1]
    assert sentences[2].startswith("The value of `lora.r` is chosen for cost: in its experiment")
    assert "has not been trained as one run" in sentences[3]
    assert "confirmation run below" in overall_for(rank, lr, confirmation=True).sentences()[3]
    # A single change is a configuration that was measured: no interaction caveat.
    assert len(overall_for(lr).sentences()) == 2


def test_overall_sentences_agree_in_number():
    lr = significant_lr()
    rank = recommend(
        "rank", "lora.r", [Candidate("8", 30.0, 1), Candidate("16", 36.0, 2)],
        lookup({"8": delta(-6, 1)}),
    )  # fmt: skip
    sentences = overall_for(rank, lr).sentences()
    assert sentences[1] == (
        "The values of `lora.r` and `training.learning_rate` are significantly better than every "
        "alternative in their experiments."
    )


def test_a_lower_is_better_primary_recommends_the_lowest_and_says_so():
    candidates = [Candidate("4", 12.0, 100, 5.0), Candidate("16", 7.0, 400, 6.0)]
    # other minus best: 4's error rate is 5 points above 16's, significantly.
    loss = Delta(5.0, 4.0, 6.0, 0.0, 200, direction="lower")
    result = recommend("rank", "lora.r", candidates, lookup({"4": loss}), "error rate", "lower")
    assert (result.best, result.choice, result.reason) == ("16", "16", SIGNIFICANT)
    assert " ".join(result.sentences()).startswith(
        "Recommended: **16**. Its error rate (7.00) is significantly lower than"
    )
