"""The report's opening: how the numbers were made (methods), and the answer first."""

from __future__ import annotations

from lorasweep.report import search
from lorasweep.report.answer import CONFIRMATION, EXPERIMENT, Answer
from lorasweep.report.formatting import delta_cell, score_cell
from lorasweep.report.recommend import power_words, verdict_words
from lorasweep.report.search import SearchTable
from lorasweep.report.tables import SweepTables
from lorasweep.stats import multiplicity, power
from lorasweep.stats.bootstrap import CONFIDENCE, RESAMPLES


def methods(tables: SweepTables) -> str:
    """How the numbers were made: model, data, examples, metrics, intervals, corrections."""
    scoring = tables.scoring
    seeds = [s for s in tables.seeds if s is not None]
    training = (
        f"trained once per seed ({', '.join(map(str, seeds))}); scores are means over seeds "
        "± their standard deviation"
        if len(seeds) > 1
        else "trained once"
    )
    resampling = "seeds and examples (both paired)" if len(seeds) > 1 else "the examples (paired)"
    described = "; ".join(m.describe() for m in scoring.metrics)
    if len(scoring.metrics) > 1:
        described += (
            f". Deltas, verdicts and recommendations are about "
            f"{scoring.label(scoring.primary)} (`evaluation.primary`)"
        )
    failed = "".join(
        f"\n\n⚠ Metric `{name}` is left out where it failed: {reason}"
        for name, reason in tables.failures.items()
    )
    return (
        _provenance(tables, training)
        + f" Scores are {described}. **Bold**: the best value in its column.{failed}\n\n"
        f"Δ is a difference of means against the baseline on the same examples; its "
        f"{CONFIDENCE:.0%} interval is the percentile interval of {RESAMPLES:,} bootstrap "
        f"resamples of {resampling}. A difference is a *significant gain* or *loss* when the "
        f"interval excludes 0, else *within noise*. P(Δ≤0) is the share of resamples at or "
        f"below 0.\n\n"
        f"An experiment with k values makes k-1 comparisons with the baseline, so its verdicts "
        f"use {multiplicity.DESCRIPTION}, each metric its own family: the {multiplicity.METHOD} "
        f"CI is the interval at the level of the comparison's step of the procedure, and the "
        f"uncorrected {CONFIDENCE:.0%} interval is shown beside it. The comparisons with an "
        f"experiment's best value need no correction (*significantly best* requires every one "
        f"of them to be significant; *within noise of the best* is the cautious side), and the "
        f"perspective rows are single comparisons, uncorrected. *Detectable Δ* is the smallest "
        f"difference the evaluation examples detect with {power.POWER:.0%} power (two-sided "
        f"{power.ALPHA:.0%}), from the spread of the paired per-example differences; for a "
        f"difference within noise it adds about how many examples would detect one of its size."
    )


def _provenance(tables: SweepTables, training: str) -> str:
    """Where the predictions come from: this sweep's runs, or a study's files."""
    sweep = tables.sweep
    evaluation = sweep.evaluation
    described = ", ".join(f"{name} `{value}`" for name, value in
                          (("model", sweep.model), ("data", sweep.data)) if value)  # fmt: skip
    if sweep.analysis:
        paired = " and ".join(
            {"id": "id", "input": "input text"}.get(by, by) for by in sweep.analysis["paired_by"]
        )
        return (
            (f"Study of {described}. " if described else "")
            + f"The predictions were made outside lorasweep, one file per configuration, "
            f"listed in `{sweep.analysis['study']}`; the baseline is "
            f"{sweep.analysis['baseline']}. Every file is scored here on the baseline's "
            f"{evaluation.size} examples" + (f", paired with it by {paired}." if paired else ".")
        )
    return (
        f"Model `{sweep.model}`, data `{sweep.data}`. "
        f"Each configuration is {training}, and evaluated on the same {evaluation.size} "
        f"examples of the `{evaluation.split}` split (shuffle seed {evaluation.seed}) "
        f"with greedy decoding."
    )


def answer_lines(tables: SweepTables, searched: SearchTable | None = None) -> list[str]:
    """The answer first: the recommendation with its intervals, the factors that mattered and
    those that did not, the search's best trial, the confirmation and the largest caveat,
    generated from the numbers."""
    answer, scoring = tables.answer, tables.scoring
    if answer is None:
        return ["**The answer:** the baseline has not finished, so there is none yet.", ""]
    name = scoring.label(scoring.primary)
    lines = ["## The answer", ""]
    found = search.sentences(searched) if searched is not None and searched.best else []
    if tables.experiments or not found:
        lines.append("- " + _recommended(answer, name))
    if found:  # the best trial against the baseline (Holm), then its test-split check
        heading = "Search" if tables.experiments else "Recommended, from the search"
        lines.append(f"- **{heading}:** {found[0]} {found[-1]}")
    lines += [f"- {line}" for line in _factors(answer)]
    confirmation = tables.confirmation
    if answer.confirmation_is_baseline:
        lines.append(
            "- **Confirmation:** the combination of the recommended values is the baseline "
            "itself, so there is nothing to confirm."
        )
    elif confirmation is not None and confirmation.row.scored and confirmation.vs_best:
        delta = confirmation.vs_best
        lines.append(
            f"- **Confirmation:** the combination ({confirmation.row.label}) measured {name} "
            f"{score_cell(confirmation.row, scoring.primary)}, {delta_cell(delta)} against the "
            f"best single-factor configuration ({confirmation.best.label}): "
            f"{verdict_words(delta)}."
        )
    if answer.caveat:
        lines.append(f"- **Largest caveat:** {answer.caveat}.")
    return lines + [""]


def _recommended(answer: Answer, name: str) -> str:
    settings = " and ".join(f"`{factor}` = {value}" for factor, value in answer.changes)
    what = f"the baseline with {settings}" if answer.changes else "keep the baseline"
    row = answer.measured
    if row is None:
        return (
            f"**Recommended: {what}.** That combination was never run as one configuration, so "
            "no number here measures it, and the factors may interact: train it to confirm "
            "(a `lorasweep run` with `confirmation: true` does)."
        )
    interval = row.interval
    text = f"**Recommended: {what}**"
    if answer.source == EXPERIMENT:
        text += f" (measured as {row.label})"
    elif answer.source == CONFIRMATION:
        text += " (measured by the confirmation run)"
    text += f": {name} {score_cell(row, row.primary)}"
    if interval is not None:
        text += f" [{interval.low:.2f}, {interval.high:.2f}]"
    parts = []
    if answer.vs_baseline is not None:
        correction = f"{multiplicity.METHOD}-corrected; " if answer.source == EXPERIMENT else ""
        parts.append(
            f"{delta_cell(answer.vs_baseline)} against the baseline ({correction}"
            f"{verdict_words(answer.vs_baseline)})"
        )
    if answer.vs_zero_shot is not None:
        parts.append(
            f"{delta_cell(answer.vs_zero_shot)} against the base model zero-shot "
            f"({verdict_words(answer.vs_zero_shot)})"
        )
    return text + (", " + " and ".join(parts) if parts else "") + "."


def _factors(answer: Answer) -> list[str]:
    if not answer.factors:
        return []
    mattered = [
        f"`{f.factor}` ("
        + ", ".join(f"{label}: {delta_cell(d)} {d.verdict}" for label, d in f.significant)
        + ")"
        for f in answer.factors
        if f.significant
    ]
    within = [f for f in answer.factors if not f.significant]
    lines = []
    if mattered:
        lines.append(
            f"**Significant against the baseline ({multiplicity.METHOD}):** " + "; ".join(mattered)
        )
    if within:
        described = []
        for f in within:
            if f.largest is None:
                described.append(f"`{f.factor}` (not compared)")
                continue
            label, delta = f.largest
            described.append(
                f"`{f.factor}` (largest: {label}, {delta_cell(delta)}; {power_words(delta)})"
            )
        lines.append("**Within noise:** " + "; ".join(described))
    return lines
