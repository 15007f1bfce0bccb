"""The answer a reader wants first, as data: what to use, how sure that is, what mattered.

``find_answer`` turns the report's tables into an ``Answer``: the recommended configuration
(the baseline, one experiment's value, or a combination of several), where its number comes
from (a run of exactly that configuration, or none: then it says so instead of presenting
single-factor numbers as the combination's), its difference from the baseline and from the base
model zero-shot, which factors made a significant difference, and the one caveat that most
limits the conclusion. ``summary.answer_lines`` writes it as sentences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lorasweep.stats.bootstrap import NOISE, Delta
from lorasweep.stats.power import power_of

if TYPE_CHECKING:  # tables builds the answer, so it cannot be imported here at run time
    from lorasweep.report.recommend import Overall
    from lorasweep.report.tables import Confirmation, ExperimentTable, HealthRow, Row
    from lorasweep.stats.scores import ExampleScores

BASELINE, EXPERIMENT, CONFIRMATION, UNMEASURED = "baseline", "experiment", "confirmation", "none"


@dataclass(frozen=True)
class Factor:
    """One experiment's finding against the baseline.

    Attributes:
        name: The experiment.
        factor: Its dotted field (``lora.r``).
        significant: Its values whose difference from the baseline is significant (Holm).
        largest: The value with the largest difference within noise, when none is significant.
    """

    name: str
    factor: str
    significant: list[tuple[str, Delta]] = field(default_factory=list)
    largest: tuple[str, Delta] | None = None


@dataclass(frozen=True)
class Answer:
    """What the report opens with.

    Attributes:
        changes: ``(factor, value)`` the recommendation changes from the baseline (none: keep
            the baseline).
        measured: The run of exactly the recommended configuration; None when it was never run.
        source: Which run that is: ``baseline``, ``experiment``, ``confirmation``, or ``none``.
        vs_baseline: Its primary-key delta against the baseline (Holm-corrected for an
            experiment's value).
        vs_zero_shot: Its delta against the base model zero-shot (positive: better than it).
        factors: Each experiment's finding.
        confirmation_is_baseline: The confirmation combination is the baseline itself.
        caveat: The largest caveat, in a sentence; None when nothing stands out.
    """

    changes: list[tuple[str, str]]
    measured: Row | None
    source: str
    vs_baseline: Delta | None
    vs_zero_shot: Delta | None
    factors: list[Factor]
    confirmation_is_baseline: bool = False
    caveat: str | None = None


def find_answer(
    baseline: Row,
    experiments: list[ExperimentTable],
    overall: Overall,
    confirmation: Confirmation | None,
    health: list[HealthRow],
    base_eval: str | None,
    failed: list[str],
    scores: ExampleScores,
) -> Answer | None:
    """The answer, from the tables ``build_tables`` made; None before the baseline finished."""
    if not baseline.scored:
        return None
    primary = scores.scoring.primary
    changes = overall.changes()
    rows = {t.name: t.rows for t in experiments}
    measured, source = baseline, BASELINE
    if len(changes) == 1:
        change = changes[0]
        measured = next(r for r in rows[change.experiment] if r.label == change.choice)
        source = EXPERIMENT
    elif len(changes) > 1:
        measured, source = None, UNMEASURED
        if confirmation and confirmation.row.scored and _is_combination(confirmation, overall):
            measured, source = confirmation.row, CONFIRMATION
    vs_baseline = None
    if measured is not None and measured is not baseline:
        vs_baseline = measured.delta
    vs_zero_shot = None
    if measured is not None and base_eval is not None:
        vs_zero_shot = scores.compare((base_eval,), measured.done_ids).get(primary)
    factors = [_factor(t) for t in experiments]
    return Answer(
        changes=[(c.factor, c.choice) for c in changes],
        measured=measured,
        source=source,
        vs_baseline=vs_baseline,
        vs_zero_shot=vs_zero_shot,
        factors=factors,
        confirmation_is_baseline=(
            confirmation is not None and confirmation.row.run_ids == baseline.run_ids
        ),
        caveat=_caveat(measured, baseline, factors, health, failed),
    )


def _is_combination(confirmation: Confirmation, overall: Overall) -> bool:
    """Whether the confirmation run is the recommended combination (its label names every
    experiment's choice, as the driver writes it)."""
    label = " + ".join(f"{r.experiment}={r.choice}" for r in overall.choices)
    return confirmation.row.label == label


def _factor(table: ExperimentTable) -> Factor:
    compared = [(r.label, r.delta) for r in table.rows if not r.is_baseline and r.delta]
    significant = [(label, d) for label, d in compared if d.verdict != NOISE]
    largest = None
    if not significant and compared:
        largest = max(compared, key=lambda item: abs(item[1].delta))
    return Factor(table.name, table.factor, significant, largest)


def _caveat(
    measured: Row | None,
    baseline: Row,
    factors: list[Factor],
    health: list[HealthRow],
    failed: list[str],
) -> str | None:
    """The one caveat that limits the conclusion most: a health flag on the runs the answer
    rests on, failed runs, then the comparison the evaluation set was too small to decide."""
    relied = {r for row in (measured, baseline) if row is not None for r in row.done_ids}
    for row in health:
        if row.run_id in relied and row.health.flags:
            return f"generation health flags {row.name} (`{row.run_id}`): {row.health.flags[0]}"
    if failed:
        names = ", ".join(f"`{r}`" for r in failed)
        return f"{len(failed)} run(s) failed ({names}): the comparisons they are in are missing"
    undecided = [(f, f.largest) for f in factors if f.largest is not None]
    if undecided:
        factor, (label, delta) = max(undecided, key=lambda item: abs(item[1][1].delta))
        found = power_of(delta.uncorrected or delta)
        if found is not None and found.mde > 0:
            text = (
                f"the evaluation set detects differences of about ±{found.mde:.2f} (80% power); "
                f"`{factor.factor}` = {label} differs from the baseline by {delta.delta:+.2f}"
            )
            if found.needed is not None and found.needed > found.examples:
                text += f", which would need ~{found.needed:,} examples to detect"
            return text
    return None
