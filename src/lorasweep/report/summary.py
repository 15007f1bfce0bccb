"""The report's opening: how the numbers were made (methods), and the answer first."""

from __future__ import annotations

from lorasweep.report.tables import SweepTables
from lorasweep.stats import multiplicity, power
from lorasweep.stats.bootstrap import CONFIDENCE, RESAMPLES


def methods(tables: SweepTables) -> str:
    """How the numbers were made: model, data, examples, metrics, intervals, corrections."""
    sweep, scoring = tables.sweep, tables.scoring
    evaluation = sweep.evaluation
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
        f"Model `{sweep.model}`, data `{sweep.data}`. "
        f"Each configuration is {training}, and evaluated on the same {evaluation.size} "
        f"examples of the `{evaluation.split}` split (shuffle seed {evaluation.seed}) "
        f"with greedy decoding. Scores are {described}. **Bold**: the best value "
        f"in its column.{failed}\n\n"
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
