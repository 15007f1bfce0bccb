"""Recommendations computed as data from the tables' numbers, and the sentences that state them.

Per experiment: name the best value only when its gain in the primary key (``evaluation.primary``,
ROUGE-L by default) over every other value is significant (the 95% paired-bootstrap interval of
each difference excludes 0). Otherwise recommend the cheapest value among those not significantly
worse than the best, and say that the differences are within noise. "Cheapest" uses costs that
are properties of the configuration, never measured time, so that timing noise (or a run resumed
after a crash) cannot change a recommendation: fewest trainable parameters, then fewest training
tokens, then the baseline's value, then config order.

Sentences are generated from the verdict data only, so each one can be checked against the
table printed beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lorasweep.stats.bootstrap import GAIN, LOSS, NOISE, Delta
from lorasweep.stats.power import power_of

SIGNIFICANT, CHEAPEST, ONLY, NONE = "significant", "cheapest", "only", "none"
VERDICT_WORDS = {GAIN: "significant gain", LOSS: "significant loss", NOISE: "within noise"}


@dataclass(frozen=True)
class Candidate:
    """One value of an experiment, as the recommendation sees it."""

    label: str
    score: float  # the primary key's number (mean over seeds)
    trainable_params: float | None = None
    train_tokens: float | None = None  # real tokens trained: steps x batch, not wall time
    is_baseline: bool = False

    @property
    def cost(self) -> tuple[float, float, int]:
        """Sort key: fewer trainable parameters, then fewer training tokens (unknown last), then
        the baseline's value; ``min`` keeps config order among the rest."""
        inf = float("inf")
        return (
            self.trainable_params if self.trainable_params is not None else inf,
            self.train_tokens if self.train_tokens is not None else inf,
            0 if self.is_baseline else 1,
        )


@dataclass(frozen=True)
class Recommendation:
    """The recommended value of one experiment and the evidence behind it.

    Attributes:
        experiment: The experiment's name.
        factor: The config field it varies.
        choice: The recommended value's label (None when no value finished).
        best: The value with the best primary score.
        reason: ``significant`` (best beats every other value), ``cheapest`` (cheapest of the
            values within noise of the best), ``only`` (one value finished), ``none``.
        candidates: Every finished value, in table order.
        vs_best: Label -> the primary key of that value minus the best's, with its interval
            (None when the two could not be paired). The best itself is absent.
        tied: Values not significantly worse than the best, the best included, in table order.
        worse: Values significantly worse than the best.
        metric: The primary key's name in sentences (``ROUGE-L``).
        direction: ``higher`` or ``lower``: which way the primary key is better.
    """

    experiment: str
    factor: str
    choice: str | None
    best: str | None
    reason: str
    candidates: list[Candidate] = field(default_factory=list)
    vs_best: dict[str, Delta | None] = field(default_factory=dict)
    tied: tuple[str, ...] = ()
    worse: tuple[str, ...] = ()
    metric: str = "ROUGE-L"
    direction: str = "higher"

    def candidate(self, label: str) -> Candidate:
        return next(c for c in self.candidates if c.label == label)

    def sentences(self) -> list[str]:
        """The recommendation in words, each sentence derived from the fields above."""
        if self.reason == NONE:
            return [f"No value of `{self.factor}` finished, so there is nothing to recommend."]
        best = self.candidate(self.best)
        if self.reason == ONLY:
            return [
                f"Only {self.best} finished ({self.metric} {best.score:.2f}); with nothing to "
                "compare it with, this is no evidence for it."
            ]
        if self.reason == SIGNIFICANT:
            gaps = "; ".join(f"{label}: {_delta(self.vs_best[label])}" for label in self.worse)
            return [
                f"Recommended: **{self.best}**. Its {self.metric} ({best.score:.2f}) is "
                f"significantly {self.direction} than that of every other value (difference to the "
                f"best, 95% interval: {gaps})."
            ]
        others = [label for label in self.tied if label != self.best]
        gaps = "; ".join(f"{label}: {_delta(self.vs_best[label])}" for label in others)
        lines = [
            f"No value is significantly better than all the others: {_join(others)} "
            f"{'is' if len(others) == 1 else 'are'} within noise of the best {self.metric}, "
            f"{self.best} ({best.score:.2f}) (difference to the best, 95% interval: {gaps})."
        ]
        if self.worse:
            lines.append(
                f"{_join(self.worse)} {'is' if len(self.worse) == 1 else 'are'} "
                "significantly worse than the best."
            )
        lines.append(f"Recommended: **{self.choice}**, {self._why_cheapest()}.")
        return lines

    def _why_cheapest(self) -> str:
        chosen = self.candidate(self.choice)
        tied = [self.candidate(label) for label in self.tied]
        params = {c.trainable_params for c in tied}
        if len(params) > 1 and chosen.trainable_params is not None:
            why = (
                "the cheapest value within noise of the best (fewest trainable parameters: "
                f"{chosen.trainable_params:,.0f})"
            )
        elif chosen.train_tokens is not None and len({c.train_tokens for c in tied}) > 1:
            why = (
                "the cheapest value within noise of the best (the same trainable parameters, "
                f"the fewest training tokens: {chosen.train_tokens:,.0f})"
            )
        elif chosen.is_baseline:
            why = "the baseline's value, within noise of the best at the same cost"
        else:
            why = "the first of the values within noise of the best (their costs are equal)"
        if self.choice == self.best:
            why += f"; it also has the best {self.metric}"
        return why


def recommend(
    experiment: str,
    factor: str,
    candidates: list[Candidate],
    versus_best: Callable[[str, str], Delta | None],
    metric: str = "ROUGE-L",
    direction: str = "higher",
) -> Recommendation:
    """Apply the recommendation rule to one experiment's finished values.

    Args:
        experiment: The experiment's name.
        factor: The config field it varies.
        candidates: Its finished values, in table order.
        versus_best: ``(best_label, other_label) -> Delta`` of the primary key, other minus
            best, paired; None when the two cannot be paired.
        metric: The primary key's name in sentences.
        direction: Which way the primary key is better.
    """
    named = {"metric": metric, "direction": direction}
    if not candidates:
        return Recommendation(experiment, factor, None, None, NONE, **named)
    sign = 1 if direction == "higher" else -1
    best = max(candidates, key=lambda c: sign * c.score)  # max keeps the first of equal scores
    if len(candidates) == 1:
        return Recommendation(experiment, factor, best.label, best.label, ONLY, candidates,
                              **named)  # fmt: skip
    vs_best = {c.label: versus_best(best.label, c.label) for c in candidates if c is not best}
    # Unpaired (None) differences cannot be called significant: they count as within noise.
    worse = tuple(label for label, d in vs_best.items() if d is not None and d.verdict == LOSS)
    tied = tuple(c.label for c in candidates if c.label not in worse)
    if tied == (best.label,):
        choice, reason = best, SIGNIFICANT
    else:
        within_noise = [c for c in candidates if c.label in tied]
        choice, reason = min(within_noise, key=lambda c: c.cost), CHEAPEST  # ties: table order
    return Recommendation(
        experiment,
        factor,
        choice.label,
        best.label,
        reason,
        candidates,
        vs_best,
        tied,
        worse,
        **named,
    )


@dataclass(frozen=True)
class Overall:
    """The sweep-level recommendation: each experiment's choice applied to the baseline.

    Attributes:
        choices: Each experiment's recommendation, in config order.
        baseline_values: Experiment -> the baseline's value in it (experiments that include it).
    """

    choices: list[Recommendation]
    baseline_values: dict[str, str]
    has_confirmation: bool = False  # the plan trains the combination as one more run

    def changes(self) -> list[Recommendation]:
        """Experiments whose recommended value differs from the baseline's."""
        return [
            r
            for r in self.choices
            if r.choice is not None
            and r.reason in (SIGNIFICANT, CHEAPEST)
            and r.choice != self.baseline_values.get(r.experiment)
        ]

    def sentences(self) -> list[str]:
        """The overall recommendation in words, from the per-experiment verdicts."""
        if not self.choices:
            return ["The sweep has no experiments, so there is nothing beyond the baseline."]
        decided = [r for r in self.choices if r.reason in (SIGNIFICANT, CHEAPEST)]
        if not decided:
            return ["No experiment has two finished values, so there is no recommendation yet."]
        undecided = [f"`{r.factor}`" for r in self.choices if r not in decided]
        note = (
            [f"No value is recommended for {_join(undecided)}: fewer than two values finished."]
            if undecided
            else []
        )
        changes = self.changes()
        if not changes:
            every = "Every experiment" if not undecided else "Every other experiment"
            return [
                f"{every} recommends the baseline's value: keep the baseline configuration.",
                *note,
            ]
        settings = ", ".join(f"`{r.factor}` = {r.choice}" for r in changes)
        lines = [f"Recommended configuration: the baseline with {settings}.", *note]
        significant = [f"`{r.factor}`" for r in changes if r.reason == SIGNIFICANT]
        for_cost = [f"`{r.factor}`" for r in changes if r.reason == CHEAPEST]
        if significant:
            lines.append(
                f"{_the_values(significant)} significantly better than every alternative in "
                f"{'its experiment' if len(significant) == 1 else 'their experiments'}."
            )
        if for_cost:
            lines.append(
                f"{_the_values(for_cost)} chosen for cost: in "
                f"{'its experiment' if len(for_cost) == 1 else 'their experiments'} the "
                "differences to the best value are within noise."
            )
        if len(changes) > 1:
            lines.append(
                "The values were chosen one factor at a time around the baseline, which assumes "
                "that the factors do not interact; "
                + (
                    "the confirmation run below measures the combination."
                    if self.has_confirmation
                    else "the combination has not been trained as one run."
                )
            )
        return lines


def verdict_words(delta: Delta | None) -> str:
    """``significant gain`` / ``significant loss`` / ``within noise``, or ``—`` when unpaired."""
    return VERDICT_WORDS[delta.verdict] if delta is not None else "—"


def power_words(delta: Delta | None) -> str:
    """``±1.22``: the smallest difference the examples detect; for a difference within noise,
    also about how many examples would detect one of its size."""
    found = power_of(delta.uncorrected or delta) if delta else None
    if found is None:
        return "—"
    text = f"±{found.mde:.2f}"
    if delta.verdict == NOISE and found.needed is not None and found.needed > found.examples:
        text += f"; this Δ needs ~{found.needed:,} examples"
    return text


def _delta(delta: Delta | None) -> str:
    if delta is None:
        return "not paired"
    return f"{delta.delta:+.2f} [{delta.low:+.2f}, {delta.high:+.2f}]"


def _the_values(factors: list[str]) -> str:
    if len(factors) == 1:
        return f"The value of {factors[0]} is"
    return f"The values of {_join(factors)} are"


def _join(items: list[str] | tuple[str, ...]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
