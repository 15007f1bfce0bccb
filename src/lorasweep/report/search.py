"""The report's search section: every trial ranked, honest about the winner.

The numbers are data first (``build_search``): each trial's scores, its paired delta against
the baseline with Holm's correction over the search's comparisons (one per distinct
configuration) and the uncorrected 95% interval beside it, its delta against the best trial,
the score against each parameter (the charts' data), the parameters' fANOVA importance, and the
best trial's change from the validation split, where it was chosen, to the held-out test split.
The sentences are generated from those numbers; ``section`` lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from lorasweep.errors import UserError
from lorasweep.metrics.scoring import Scoring
from lorasweep.report.recommend import verdict_words
from lorasweep.report.tables import (
    PerspectiveRow,
    Row,
    SweepTables,
    configuration_row,
    holm_corrected,
)
from lorasweep.stats import multiplicity
from lorasweep.stats.bootstrap import CONFIDENCE, GAIN, LOSS, NOISE, Delta
from lorasweep.stats.scores import ExampleScores
from lorasweep.store.records import PlannedSearch
from lorasweep.store.store import RunStore

# fANOVA fits a random forest to (parameters -> score): with fewer finished trials than this, or
# fewer than two per parameter, its importances are noise, and the table says so instead.
MIN_IMPORTANCE_TRIALS = 4
IMPORTANCE_SEED = 0  # the forest's seed: a rebuilt report shows the same importances


@dataclass(frozen=True)
class TrialRow:
    """One trial of the search.

    Attributes:
        number: Its number (1-based, the order it was asked in).
        params: Field -> the value it set.
        row: Its scores, interval, cost and delta against the baseline (Holm-corrected).
        vs_best: Its primary key minus the best trial's, paired (None for the best itself).
        same_as: The earlier trial whose configuration it repeats (its runs were not redone).
        rank: 1 for the best; None when unfinished.
    """

    number: int
    params: dict[str, Any]
    row: Row
    vs_best: Delta | None = None
    same_as: int | None = None
    rank: int | None = None


@dataclass(frozen=True)
class Point:
    """One trial in a per-parameter chart: the parameter's value, the score and its interval."""

    trial: int
    value: Any
    score: float
    low: float
    high: float
    is_best: bool


@dataclass(frozen=True)
class TestCheck:
    """The best trial on the validation split, where it was chosen, and on the test split.

    Attributes:
        trial: The best trial's number.
        validation: Its primary score on the validation split.
        validation_delta: Its delta against the baseline there (uncorrected, 95%).
        test: Its primary score on the test split (None: not evaluated there).
        test_delta: Its delta against the baseline on the test split.
        is_baseline: The best trial is the baseline's configuration.
    """

    trial: int
    validation: float
    validation_delta: Delta | None
    test: float | None
    test_delta: Delta | None
    is_baseline: bool = False


@dataclass(frozen=True)
class SearchTable:
    """Everything the search section shows."""

    sampler: str
    seed: int
    target: int
    parameters: list[str]
    trials: list[TrialRow]  # finished ones best first, then the unfinished in asked order
    best: TrialRow | None
    family_size: int  # comparisons with the baseline that Holm's correction spans
    baseline: Row | None
    importance: dict[str, float] | None
    importance_note: str
    test: TestCheck | None
    points: dict[str, list[Point]] = field(default_factory=dict)
    distributions: dict[str, str] = field(default_factory=dict)  # field -> Optuna's JSON
    scoring: Scoring | None = None

    @property
    def finished(self) -> list[TrialRow]:
        return [t for t in self.trials if t.rank is not None]


def build_search(store: RunStore, tables: SweepTables) -> SearchTable | None:
    """The search's numbers from the store, or None for a sweep without a search."""
    plan = store.plan()
    search = plan.search
    if search is None or tables.scoring is None:
        return None
    scoring = tables.scoring
    finished = {r for r, result in tables.results.items() if result.done}
    scores = ExampleScores(store, finished, scoring)
    reference = tables.baseline.run_ids if tables.baseline else plan.baseline_run_ids
    rows, first_of = [], {}
    for trial in search.trials:
        first_of.setdefault(trial.run_ids, trial.number)
        is_baseline = trial.run_ids == tuple(reference)
        label = f"trial {trial.number}"
        rows.append(
            configuration_row(label, trial.run_ids, is_baseline, tables.results, scores, reference)
        )
    # One comparison per distinct configuration: a repeated suggestion is the same runs.
    distinct = {t.run_ids: i for i, t in reversed(list(enumerate(search.trials)))}
    family = [rows[i] for i in sorted(distinct.values())]
    corrected = {r.run_ids: r for r in holm_corrected(family, scores, reference)}
    rows = [corrected[r.run_ids] for r in rows]
    trials = [
        TrialRow(t.number, t.params, row, same_as=_earlier(first_of[t.run_ids], t.number))
        for t, row in zip(search.trials, rows, strict=True)
    ]
    sign = 1 if scoring.direction(scoring.primary) == "higher" else -1
    ranked = sorted((t for t in trials if t.row.scored),
                    key=lambda t: (-sign * t.row.metrics[scoring.primary], t.number))  # fmt: skip
    best = ranked[0] if ranked else None
    ranks = {t.number: i + 1 for i, t in enumerate(ranked)}
    trials = [
        replace(t, rank=ranks.get(t.number), vs_best=_vs_best(t, best, scores, scoring))
        for t in ranked + [t for t in trials if t.number not in ranks]
    ]
    best = trials[0] if best else None
    finished_distinct = [t for t in trials if t.rank is not None and t.same_as is None]
    importance, note = param_importance(search, finished_distinct, scoring)
    return SearchTable(
        sampler=search.sampler,
        seed=search.seed,
        target=search.target,
        parameters=list(search.distributions),
        trials=trials,
        best=best,
        family_size=sum(1 for r in family if r.delta is not None),
        baseline=tables.baseline,
        importance=importance,
        importance_note=note,
        test=_test_check(best, tables.test, scoring),
        points=parameter_points(trials, list(search.distributions), scoring),
        distributions=dict(search.distributions),
        scoring=scoring,
    )


def _earlier(first: int, number: int) -> int | None:
    return first if first != number else None


def _vs_best(
    trial: TrialRow, best: TrialRow | None, scores: ExampleScores, scoring: Scoring
) -> Delta | None:
    if best is None or trial.number == best.number or not trial.row.scored:
        return None
    return scores.compare(best.row.run_ids, trial.row.run_ids).get(scoring.primary)


def parameter_points(
    trials: list[TrialRow], parameters: list[str], scoring: Scoring
) -> dict[str, list[Point]]:
    """Per parameter, every finished trial's value, primary score and its 95% interval."""
    best = next((t.number for t in trials if t.rank == 1), None)
    points: dict[str, list[Point]] = {}
    for name in parameters:
        found = []
        for t in sorted((t for t in trials if t.rank is not None), key=lambda t: t.number):
            score = t.row.metrics[scoring.primary]
            interval = t.row.interval
            low, high = (interval.low, interval.high) if interval else (score, score)
            found.append(Point(t.number, t.params.get(name), score, low, high, t.number == best))
        points[name] = found
    return points


def param_importance(
    search: PlannedSearch, trials: list[TrialRow], scoring: Scoring
) -> tuple[dict[str, float] | None, str]:
    """fANOVA importance of each parameter for the primary key, or None and why not.

    Computed over the distinct finished configurations (a repeated one would count twice).
    """
    needed = max(MIN_IMPORTANCE_TRIALS, 2 * len(search.distributions))
    if len(trials) < needed:
        return None, (
            f"Parameter importance needs at least {needed} finished distinct trials "
            f"(two per parameter, at least {MIN_IMPORTANCE_TRIALS}); this search has "
            f"{len(trials)}."
        )
    values = [t.row.metrics[scoring.primary] for t in trials]
    if len(set(values)) == 1:
        return None, "Every trial scored the same, so no parameter explains any difference."
    from lorasweep.search.study import import_optuna

    try:
        optuna = import_optuna()
        import sklearn  # noqa: F401  (fANOVA's forest; optuna imports it lazily)
        from optuna.distributions import json_to_distribution
        from optuna.importance import FanovaImportanceEvaluator, get_param_importances
        from optuna.trial import create_trial
    except (ImportError, UserError):
        return None, (
            "Parameter importance needs optuna and scikit-learn: pip install 'lorasweep[search]'."
        )
    from lorasweep.search.space import suggested

    distributions = {k: json_to_distribution(v) for k, v in search.distributions.items()}
    direction = "maximize" if scoring.direction(scoring.primary) == "higher" else "minimize"
    study = optuna.create_study(direction=direction)
    for trial, value in zip(trials, values, strict=True):
        params = {name: suggested(trial.params[name]) for name in distributions}
        study.add_trial(create_trial(params=params, distributions=distributions, value=value))
    evaluator = FanovaImportanceEvaluator(seed=IMPORTANCE_SEED)
    importance = get_param_importances(study, evaluator=evaluator, normalize=True)
    return {name: float(importance.get(name, 0.0)) for name in distributions}, ""


def _test_check(
    best: TrialRow | None, test: list[PerspectiveRow], scoring: Scoring
) -> TestCheck | None:
    if best is None:
        return None
    row = next((r for r in test if "best search trial" in r.name), None)
    validation = best.row.metrics[scoring.primary]
    delta = best.row.delta.uncorrected or best.row.delta if best.row.delta else None
    if row is None:
        return TestCheck(best.number, validation, delta, None, None, best.row.is_baseline)
    return TestCheck(best.number, validation, delta, row.metrics.get(scoring.primary),
                     row.vs_baseline, best.row.is_baseline or row.is_baseline)  # fmt: skip


def sentences(table: SearchTable) -> list[str]:
    """The search's findings in words, each from the numbers of the tables beside it."""
    scoring = table.scoring
    metric = scoring.label(scoring.primary)
    best = table.best
    if best is None:
        return ["No trial of the search finished, so there is no best trial yet."]
    lines = []
    name = f"trial {best.number} ({describe(best.params)})"
    finished = len(table.finished)
    family = f"Holm's correction over {table.family_size} comparison" + (
        "s" if table.family_size != 1 else ""
    )
    delta = best.row.delta
    if best.row.is_baseline:
        lines.append(
            f"The best of the {finished} finished trials, {name}, is the baseline's "
            f"configuration ({metric} {best.row.metrics[scoring.primary]:.2f})."
        )
    elif delta is not None and delta.verdict == GAIN:
        lines.append(
            f"The best of the {finished} finished trials is {name}: {metric} "
            f"{best.row.metrics[scoring.primary]:.2f}, {_delta(delta)} against the baseline, a "
            f"significant gain after {family} (uncorrected 95%: {_delta(delta.uncorrected)})."
        )
    else:
        verdict = verdict_words(delta) if delta is not None else "not paired with the baseline"
        lines.append(
            f"No trial is significantly better than the baseline after {family}: the best of "
            f"the {finished} finished trials, {name}, scores {metric} "
            f"{best.row.metrics[scoring.primary]:.2f}, {_delta(delta)} against the baseline "
            f"({verdict}; uncorrected 95%: {_delta(delta.uncorrected if delta else None)})."
        )
    close = [t for t in table.finished[1:] if t.vs_best is not None and t.vs_best.verdict == NOISE]
    worse = [t for t in table.finished[1:] if t.vs_best is not None and t.vs_best.verdict == LOSS]
    if close:
        cheapest = min([best, *close], key=_cost)
        lines.append(
            f"{len(close)} other trial{'s are' if len(close) != 1 else ' is'} within noise of the "
            f"best ({', '.join(str(t.number) for t in close)}) and {len(worse)} significantly "
            f"worse; the cheapest within noise of the best is trial {cheapest.number} "
            f"({describe(cheapest.params)}"
            + (
                f", {cheapest.row.cost.trainable_params:,.0f} trainable parameters)."
                if cheapest.row.cost.trainable_params is not None
                else ")."
            )
        )
    elif worse:
        lines.append(f"Every other finished trial is significantly worse than trial {best.number}.")
    if table.importance:
        ranked = sorted(table.importance.items(), key=lambda kv: -kv[1])
        lines.append(
            f"By fANOVA over the {len(table.finished)} finished trials, `{ranked[0][0]}` "
            f"explains the largest share of the variation in {metric} ({ranked[0][1]:.2f})"
            + "".join(f", then `{n}` ({v:.2f})" for n, v in ranked[1:])
            + "."
        )
    lines.append(_test_sentence(table, metric))
    return lines


def _test_sentence(table: SearchTable, metric: str) -> str:
    check = table.test
    chosen = f"the best of {len(table.finished)} trials chosen on the validation examples"
    if check is None or check.test is None:
        return (
            f"The best trial has not been re-evaluated on held-out examples (set `test:` in "
            f"the config): its validation {metric} is {chosen}, so it is optimistic (the "
            "winner's curse)."
        )
    change = check.test - check.validation
    if check.is_baseline or check.validation_delta is None or check.test_delta is None:
        return (
            f"On the held-out test split trial {check.trial} scores {metric} {check.test:.2f} "
            f"({check.validation:.2f} on validation, {change:+.2f} from validation to test)."
        )
    shrink = check.test_delta.delta - check.validation_delta.delta
    if shrink == 0:
        moved = f"is {check.test_delta.delta:+.2f} on both splits"
    else:
        moved = (
            f"{'shrank' if shrink < 0 else 'grew'} from {check.validation_delta.delta:+.2f} on "
            f"validation to {check.test_delta.delta:+.2f} on test ({shrink:+.2f})"
        )
    return (
        f"On the held-out test split trial {check.trial} scores {metric} {check.test:.2f} "
        f"({change:+.2f} from validation to test), {_delta(check.test_delta)} against the "
        f"baseline ({verdict_words(check.test_delta)}); its difference to the baseline {moved}. "
        f"The validation number is {chosen}, optimistic on average (the winner's curse): "
        "quote the test number."
    )


def _cost(trial: TrialRow) -> tuple[float, float, int]:
    inf = float("inf")
    cost = trial.row.cost
    return (
        cost.trainable_params if cost.trainable_params is not None else inf,
        cost.train_tokens if cost.train_tokens is not None else inf,
        trial.number,
    )


def describe(params: dict[str, Any]) -> str:
    """``lora.r=8, training.learning_rate=3.2e-3``."""
    from lorasweep.search.space import label

    return ", ".join(f"{name}={label(value)}" for name, value in params.items())


def _delta(delta: Delta | None) -> str:
    if delta is None:
        return "—"
    return f"{delta.delta:+.2f} [{delta.low:+.2f}, {delta.high:+.2f}]"


def section(table: SearchTable | None, charts: list[str]) -> list[str]:
    """The search section's Markdown lines (none for a sweep without a search)."""
    if table is None:
        return []
    scoring = table.scoring
    metric = scoring.label(scoring.primary)
    method = multiplicity.METHOD
    lines = [
        f"## Search ({table.sampler}, seed {table.seed}): {len(table.finished)} of "
        f"{table.target} trials finished",
        "",
        f"Every trial of the search, best {metric} first. Δ vs baseline is paired on the same "
        f"examples; its verdict uses {multiplicity.DESCRIPTION}, here the search's "
        f"{table.family_size} distinct configurations against the baseline, with the "
        f"uncorrected {CONFIDENCE:.0%} interval beside it. Δ vs best is uncorrected: the "
        "best was chosen on these examples, so *within noise of the best* is the cautious "
        "reading.",
        "",
    ]
    head = "| rank | trial | " + " | ".join(f"`{p}`" for p in table.parameters)
    head += (
        f" | {metric} [{CONFIDENCE:.0%} CI] | Δ vs baseline [{method} CI] | uncorrected "
        f"[{CONFIDENCE:.0%} CI] | verdict ({method}) | Δ vs best [{CONFIDENCE:.0%} CI] | "
        "verdict vs best | trainable params |"
    )
    lines += [
        head,
        "|---:|---:|" + "---|" * len(table.parameters) + "---:|" * 3 + "---|---:|---|---:|",
    ]
    for trial in table.trials:
        row = trial.row
        number = f"{trial.number}" + (f" (= {trial.same_as})" if trial.same_as else "")
        params = [param_label(trial.params.get(p)) for p in table.parameters]
        if not row.scored:
            cells = ["", number, *params, row.status, "", "", "", "", "", ""]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        interval = row.interval
        score = f"{row.metrics[scoring.primary]:.2f}"
        if interval:
            score += f" [{interval.low:.2f}, {interval.high:.2f}]"
        if row.is_baseline:
            vs_baseline = ["— (the baseline)", "—", "—"]
        else:
            delta = row.delta
            vs_baseline = [_delta(delta), _delta(delta.uncorrected or delta if delta else None),
                           verdict_words(delta)]  # fmt: skip
        vs_best = ["— (best)", "—"] if trial.rank == 1 else [
            _delta(trial.vs_best), verdict_words(trial.vs_best)]  # fmt: skip
        params_cost = row.cost.trainable_params
        cells = [str(trial.rank), number, *params, score, *vs_baseline, *vs_best,
                 f"{params_cost:,.0f}" if params_cost is not None else ""]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "### Parameter importance", ""]
    if table.importance:
        lines += [
            f"fANOVA (Optuna's `FanovaImportanceEvaluator`, seed {IMPORTANCE_SEED}): the share "
            f"of the variance of {metric} over the finished trials that each parameter explains "
            "(normalised to sum to 1). With few trials it is a rough guide, not a verdict.",
            "",
            "| parameter | importance |",
            "|---|---:|",
        ]
        for name, value in sorted(table.importance.items(), key=lambda kv: -kv[1]):
            lines.append(f"| `{name}` | {value:.2f} |")
    else:
        lines.append(table.importance_note)
    lines.append("")
    lines += [f"![{name}]({name})" for name in charts]
    lines += ["", "### Test-split check of the best trial", ""]
    check = table.test
    if check is not None and check.test is not None:
        lines += [
            f"| trial {check.trial} | {metric} | Δ vs baseline [{CONFIDENCE:.0%} CI] |",
            "|---|---:|---:|",
            f"| validation (chosen here) | {check.validation:.2f} "
            f"| {_delta(check.validation_delta)} |",
            f"| test (held out) | {check.test:.2f} | {_delta(check.test_delta)} |",
            "",
        ]
    lines += ["### Search recommendation", "", " ".join(sentences(table)), ""]
    return lines


def param_label(value: Any) -> str:
    """A trial's value as the tables write it; ``—`` for a field it did not set."""
    from lorasweep.search.space import label

    return label(value) if value is not None else "—"
