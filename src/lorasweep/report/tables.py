"""The report's numbers as plain data, computed from the run store alone (no plotting here).

Every row of a table stands for a list of run ids, one per training seed (one without seeds):
its scores are the mean over seeds, with the standard deviation across seeds, and its delta
against the baseline comes from a paired bootstrap over the per-example scores in
``predictions.jsonl`` (hierarchical over seeds and examples when there are several seeds).
Which metrics score the runs, and which key the verdicts and recommendations rest on, come from
the sweep's ``evaluation`` section (``metrics.scoring.Scoring``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lorasweep.config.schema import lora_scaling
from lorasweep.metrics.registry import scoring_for
from lorasweep.metrics.scoring import Scoring
from lorasweep.report.answer import Answer, find_answer
from lorasweep.report.pareto import COST_DIRECTIONS, Tradeoff, tradeoff
from lorasweep.report.perspective import (
    HealthRow,
    PerspectiveRow,
    health_rows,
    perspective_rows,
    test_rows,
)
from lorasweep.report.recommend import Candidate, Overall, Recommendation, recommend
from lorasweep.report.rows import Row, configuration_row, holm_corrected
from lorasweep.stats.bootstrap import Delta
from lorasweep.stats.scores import ExampleScores
from lorasweep.store.records import PlanRecord, RunResult
from lorasweep.store.store import RunStore
from lorasweep.store.sweep_file import StoredSweep, read_sweep


@dataclass(frozen=True)
class ExperimentTable:
    name: str
    factor: str
    rows: list[Row]
    recommendation: Recommendation


@dataclass(frozen=True)
class Confirmation:
    """The combination of the recommended values, trained as one more configuration."""

    row: Row
    best: Row  # the best single-factor configuration
    vs_best: Delta | None  # the primary key of the combination minus the best's


@dataclass(frozen=True)
class SweepTables:
    name: str
    seeds: list[Any]  # the training seeds (one entry without seeds)
    baseline: Row | None
    base_model: RunResult | None
    experiments: list[ExperimentTable]
    best: Row | None  # the best primary score of any configuration, labelled ``experiment=value``
    tied_with_best: list[str]  # other configurations with exactly the same primary score
    overall: Overall
    confirmation: Confirmation | None
    test: list[PerspectiveRow]  # the held-out test split's re-evaluations, when planned
    perspective: list[PerspectiveRow]
    health: list[HealthRow]
    results: dict[str, RunResult]  # run id -> result record (any status)
    # The primary key against each cost of COST_DIRECTIONS, every configuration, front marked
    tradeoffs: list[Tradeoff] = field(default_factory=list)
    scoring: Scoring | None = None  # the metrics, their keys and the primary key
    sweep: StoredSweep = field(default_factory=StoredSweep)
    failures: dict[str, str] = field(default_factory=dict)  # metric -> why it is missing
    answer: Answer | None = None  # what the report opens with


def build_tables(store: RunStore, rescore: bool = False) -> SweepTables:
    """Everything the report shows, from ``plan.json``, ``sweep.yaml`` and the runs' records.

    Args:
        store: The sweep folder.
        rescore: Score the stored predictions again with every metric, ignoring the scores
            stored with them (after a custom metric's code changed).
    """
    plan = store.plan()
    sweep = read_sweep(store.root)
    scoring = scoring_for(sweep.evaluation)
    results = _results(store, plan)
    finished = {r for r, result in results.items() if result.done}
    scores = ExampleScores(store, finished, scoring, rescore)
    reference = _baseline_ids(plan)
    baseline = configuration_row("baseline", reference, True, results, scores, reference)

    experiments = []
    for experiment in plan.experiments:
        rows = [
            configuration_row(row.label, row.run_ids, row.is_baseline, results, scores, reference)
            for row in experiment.rows
        ]
        rows = _mark_best(holm_corrected(rows, scores, reference), scoring)
        experiments.append(
            ExperimentTable(
                experiment.name,
                experiment.factor,
                rows,
                _recommend(experiment.name, experiment.factor, rows, scores),
            )
        )

    # The best configuration of the whole sweep; the baseline counts once, under its own name,
    # and first, so that it wins a tie (a tie is no reason to change the baseline).
    candidates = ([baseline] if baseline.scored else []) + [
        replace(r, label=f"{t.name}={r.label}")
        for t in experiments
        for r in t.rows
        if r.scored and not r.is_baseline
    ]
    best = _best(candidates, scoring)
    tied_with_best = [
        r.label
        for r in candidates
        if r is not best and r.metrics[scoring.primary] == best.metrics[scoring.primary]
    ]
    overall = Overall(
        [t.recommendation for t in experiments],
        {t.name: r.label for t in experiments for r in t.rows if r.is_baseline},
        has_confirmation=plan.confirmation is not None,
    )
    confirmation = _confirmation(plan, results, scores, reference, best)
    base_model = results.get(plan.base_eval)
    base_model = base_model if base_model and base_model.done else None
    health = health_rows(store, plan, results, scores)
    failed = [r for r, result in results.items() if not result.done]
    answer = find_answer(
        baseline, experiments, overall, confirmation, health,
        base_model.run_id if base_model else None, failed, scores,
    )  # fmt: skip
    return SweepTables(
        name=plan.name,
        seeds=list(plan.seeds or [None]),
        baseline=baseline,
        base_model=base_model,
        experiments=experiments,
        best=best,
        tied_with_best=tied_with_best,
        overall=overall,
        confirmation=confirmation,
        test=test_rows(plan, results, scores),
        perspective=perspective_rows(
            store, plan, sweep, baseline, best, confirmation, results, scores
        ),
        health=health,
        results=results,
        tradeoffs=_tradeoffs(candidates, confirmation, scoring),
        scoring=scoring,
        sweep=sweep,
        failures=dict(scores.failures),
        answer=answer,
    )


def _best(rows: list[Row], scoring: Scoring) -> Row | None:
    """The row with the best primary score; the first of equal ones (the baseline comes first)."""
    sign = 1 if scoring.direction(scoring.primary) == "higher" else -1
    return max(rows, key=lambda r: sign * r.metrics[scoring.primary], default=None)


def _results(store: RunStore, plan: PlanRecord) -> dict[str, RunResult]:
    ids = [unit.run_id for unit in plan.units()]
    ids += [i for e in plan.experiments for row in e.rows for i in row.run_ids]
    ids += plan.confirmation.run_ids if plan.confirmation else ()
    return {run_id: result for run_id in dict.fromkeys(ids) if (result := store.result(run_id))}


def _baseline_ids(plan: PlanRecord) -> tuple[str, ...]:
    """The baseline's run per seed: from an experiment row that is the baseline, if any."""
    for experiment in plan.experiments:
        for row in experiment.rows:
            if row.is_baseline:
                return row.run_ids
    return plan.baseline_run_ids


def _tradeoffs(
    candidates: list[Row], confirmation: Confirmation | None, scoring: Scoring
) -> list[Tradeoff]:
    """The primary key against each cost over the configurations (each once), front marked."""
    rows = list(candidates)
    if confirmation and confirmation.row.scored:
        rows.append(replace(confirmation.row, label=f"confirmation ({confirmation.row.label})"))
    unique: dict[tuple[str, ...], Row] = {}
    for row in rows:  # the confirmation may be a configuration the experiments already ran
        unique.setdefault(row.done_ids, row)
    primary = scoring.primary
    configurations = [
        (row.label, {primary: row.metrics.get(primary), **asdict(row.cost)})
        for row in unique.values()
    ]
    direction = scoring.direction(primary)
    return [tradeoff(configurations, primary, cost, direction) for cost in COST_DIRECTIONS]


def _mark_best(rows: list[Row], scoring: Scoring) -> list[Row]:
    scored = [r for r in rows if r.metrics]
    best = {}
    for key in scoring.names:
        values = [r.metrics[key] for r in scored if key in r.metrics]
        if values:
            best[key] = max(values) if scoring.direction(key) == "higher" else min(values)
    return [replace(r, is_best={k: r.metrics.get(k) == v for k, v in best.items()}) for r in rows]


def _recommend(name: str, factor: str, rows: list[Row], scores: ExampleScores) -> Recommendation:
    scoring = scores.scoring
    finished = {r.label: r for r in rows if r.scored}
    candidates = [
        Candidate(
            r.label,
            r.metrics[scoring.primary],
            r.cost.trainable_params,
            r.cost.train_tokens,
            r.is_baseline,
        )
        for r in finished.values()
    ]

    def versus_best(best: str, other: str) -> Delta | None:
        deltas = scores.compare(finished[best].run_ids, finished[other].run_ids)
        return deltas.get(scoring.primary)

    metric = scoring.label(scoring.primary)
    direction = scoring.direction(scoring.primary)
    return recommend(name, factor, candidates, versus_best, metric, direction)


def _confirmation(
    plan: PlanRecord,
    results: dict[str, RunResult],
    scores: ExampleScores,
    reference: tuple[str, ...],
    best: Row | None,
) -> Confirmation | None:
    planned = plan.confirmation
    if not planned or not planned.run_ids:
        return None
    label = planned.label or "confirmation"
    row = configuration_row(label, planned.run_ids, False, results, scores, reference)
    if best is None:
        return None
    primary = scores.scoring.primary
    vs_best = scores.compare(best.run_ids, row.run_ids).get(primary) if row.scored else None
    return Confirmation(row, best, vs_best)


def describe_run(result: RunResult) -> str:
    """The settings that distinguish LoRA runs, in one line."""
    if "lora" not in result.config or "training" not in result.config:  # analyzed elsewhere
        predictions = result.config.get("analysis", {}).get("predictions")
        return ", ".join(result.labels) + (f" (`{predictions}`)" if predictions else "")
    lora, training = result.config["lora"], result.config["training"]
    modules = lora["target_modules"]
    modules = modules if isinstance(modules, str) else ", ".join(modules)
    length = (
        f"{training['max_steps']} steps"
        if training.get("max_steps")
        else f"{training['epochs']:g} epochs"
    )
    quantization = result.config.get("model", {}).get("quantization", "none")
    base = f", on a 4-bit ({quantization}) base" if quantization != "none" else ""
    return (
        f"{lora_variant(lora)} r={lora['r']}, alpha={lora['alpha']:g} "
        f"(scaling {lora_scaling_of(lora):.3g}), dropout={lora['dropout']:g}, "
        f"targets {modules}, lr {training['learning_rate']:g}, "
        f"batch {training['batch_size']}x{training['gradient_accumulation_steps']}, {length}{base}"
    )


def lora_variant(lora: dict[str, Any]) -> str:
    """LoRA, rsLoRA, DoRA or rsLoRA + DoRA, from a resolved ``lora`` section."""
    names = [n for n, key in (("rsLoRA", "use_rslora"), ("DoRA", "use_dora")) if lora.get(key)]
    return " + ".join(names) or "LoRA"


def lora_scaling_of(lora: dict[str, Any]) -> float:
    """The effective scaling of a resolved ``lora`` section: alpha/r, or alpha/sqrt(r)."""
    return lora_scaling(lora["r"], lora["alpha"], lora.get("use_rslora", False))
