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
from statistics import fmean, stdev
from typing import Any

from lorasweep.baselines.rows import baseline_rows
from lorasweep.config.schema import lora_scaling
from lorasweep.evaluation.extractive import extractive_predictions
from lorasweep.external import external_rows
from lorasweep.metrics.health import Health, generation_health
from lorasweep.metrics.registry import scoring_for
from lorasweep.metrics.scoring import Scoring
from lorasweep.report.answer import Answer, find_answer
from lorasweep.report.api_rows import api_row
from lorasweep.report.pareto import COST_DIRECTIONS, Tradeoff, tradeoff
from lorasweep.report.recommend import Candidate, Overall, Recommendation, recommend
from lorasweep.stats.bootstrap import Delta, Interval
from lorasweep.stats.multiplicity import corrected_deltas
from lorasweep.stats.pairing import pair_examples
from lorasweep.stats.scores import ExampleScores
from lorasweep.store.records import PlanRecord, RunResult, Status, UnitKind
from lorasweep.store.store import RunStore
from lorasweep.store.sweep_file import StoredSweep, read_sweep


@dataclass(frozen=True)
class Cost:
    """What a configuration costs, averaged over its finished seeds (None when not recorded).

    Attributes:
        trainable_params: Adapter parameters trained.
        train_s: Training wall time.
        train_tokens: Real (non-padding) tokens trained: a property of the configuration.
        adapter_bytes: The saved adapter's size on disk.
        train_tokens_per_s: Real (non-padding) training tokens per second.
        peak_memory_bytes: CUDA max allocated on a GPU, peak resident set size on the CPU.
        eval_s: Generation wall time on the evaluation examples.
        eval_tokens_per_s: Generated tokens per second.
    """

    trainable_params: float | None = None
    train_s: float | None = None
    train_tokens: float | None = None
    adapter_bytes: float | None = None
    train_tokens_per_s: float | None = None
    peak_memory_bytes: float | None = None
    eval_s: float | None = None
    eval_tokens_per_s: float | None = None


@dataclass(frozen=True)
class Row:
    """One configuration of a table: one run per seed.

    Attributes:
        label: The value as the config writes it (``16``), or a name (``rank=16``).
        run_ids: One run id per seed, in seed order.
        status: ``done`` when at least one seed finished, else the first seed's status.
        metrics: Mean over the finished seeds of each run's numbers (the mean over examples,
            or the corpus-level score of a metric that reports one).
        spread: Standard deviation across finished seeds (empty with fewer than two).
        done_ids: The finished runs.
        vs_baseline: Metric -> paired delta against the baseline (empty for the baseline).
        is_baseline: The row is the baseline's configuration.
        is_best: Metric -> the best value of its table.
        cost: Trainable parameters and training seconds.
        intervals: Key -> 95% bootstrap interval of its mean per-example score.
        primary: The key ``delta`` and ``interval`` are about.
    """

    label: str
    run_ids: tuple[str, ...]
    status: str
    metrics: dict[str, float]
    spread: dict[str, float]
    done_ids: tuple[str, ...]
    vs_baseline: dict[str, Delta]
    is_baseline: bool
    is_best: dict[str, bool] = field(default_factory=dict)
    cost: Cost = Cost()
    intervals: dict[str, Interval] = field(default_factory=dict)
    primary: str = "rougeL"

    @property
    def run_id(self) -> str:
        return self.run_ids[0]

    @property
    def delta(self) -> Delta | None:
        """The paired delta of the primary key against the baseline."""
        return self.vs_baseline.get(self.primary)

    @property
    def interval(self) -> Interval | None:
        """The 95% interval of the primary key's mean (None without predictions)."""
        return self.intervals.get(self.primary)

    @property
    def scored(self) -> bool:
        """Finished, with a number for the primary key (which a failed metric lacks)."""
        return self.primary in self.metrics


@dataclass(frozen=True)
class ExperimentTable:
    name: str
    factor: str
    rows: list[Row]
    recommendation: Recommendation


@dataclass(frozen=True)
class PerspectiveRow:
    """A system in the perspective table: measured here, extractive, external, or reported.

    Attributes:
        name: What the row is.
        kind: ``measured``, ``extractive``, ``external`` or ``reported``.
        metrics: Mean scores (for external rows paired with the sweep: on the sweep's examples).
        vs_baseline: Paired delta of the primary key against the LoRA baseline; None when not
            paired.
        note: Where the numbers come from (run ids, file, source, pairing).
    """

    name: str
    kind: str
    metrics: dict[str, float]
    vs_baseline: Delta | None
    note: str = ""
    is_baseline: bool = False  # the LoRA baseline itself, the reference of the deltas
    per_seed: tuple[tuple[Any, float | None], ...] = ()  # (seed, ROUGE-L; None: not done)


@dataclass(frozen=True)
class HealthRow:
    name: str
    run_id: str | None  # None for an external file
    health: Health


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
    health = _health(store, plan, results, scores)
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
        test=_test_rows(plan, results, scores),
        perspective=_perspective(store, plan, sweep, baseline, best, confirmation, results, scores),
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


def configuration_row(
    label: str,
    run_ids: tuple[str, ...],
    is_baseline: bool,
    results: dict[str, RunResult],
    scores: ExampleScores,
    reference: tuple[str, ...],
) -> Row:
    """One configuration's row: its seeds' mean scores and spread, its cost, and its paired
    deltas against ``reference`` (the baseline's runs), uncorrected."""
    finished = [results[r] for r in run_ids if r in results and results[r].done]
    done_ids = tuple(r.run_id for r in finished)
    primary = scores.scoring.primary
    if not finished:
        statuses = [results[r].status.value for r in run_ids if r in results]
        return Row(label, run_ids, statuses[0] if statuses else "planned", {}, {}, (), {},
                   is_baseline, primary=primary)  # fmt: skip
    numbers = [scores.run_numbers(r) for r in finished]
    keys = [k for k in scores.scoring.names if all(k in n for n in numbers)]
    metrics = {k: fmean(n[k] for n in numbers) for k in keys}
    spread = {k: stdev(n[k] for n in numbers) for k in keys} if len(finished) > 1 else {}
    vs_baseline = {} if is_baseline else scores.compare(reference, run_ids)
    return Row(
        label,
        run_ids,
        Status.DONE.value,
        metrics,
        spread,
        done_ids,
        vs_baseline,
        is_baseline,
        cost=_cost(finished),
        intervals=scores.intervals(done_ids),
        primary=primary,
    )


def holm_corrected(rows: list[Row], scores: ExampleScores, reference: tuple[str, ...]) -> list[Row]:
    """The rows' deltas against the baseline with Holm's correction over the experiment's
    comparisons, each key its own family (``stats.multiplicity``)."""
    corrected = [dict(r.vs_baseline) for r in rows]
    for key in dict.fromkeys(k for r in rows for k in r.vs_baseline):
        family = {i: r.vs_baseline[key] for i, r in enumerate(rows) if key in r.vs_baseline}

        def widen(i: int, level: float, key: str = key) -> Delta | None:
            return scores.compare(reference, rows[i].run_ids, level).get(key)

        for i, delta in corrected_deltas(family, widen).items():
            corrected[i][key] = delta
    return [replace(r, vs_baseline=c) for r, c in zip(rows, corrected, strict=True)]


def _cost(finished: list[RunResult]) -> Cost:
    def mean(section: str, key: str) -> float | None:
        values = [getattr(r, section).get(key) for r in finished]
        return fmean(values) if values and None not in values else None

    return Cost(
        trainable_params=mean("efficiency", "trainable_params"),
        train_s=mean("timings", "train_s"),
        train_tokens=mean("efficiency", "train_tokens"),
        adapter_bytes=mean("efficiency", "adapter_bytes"),
        train_tokens_per_s=mean("efficiency", "train_tokens_per_s"),
        peak_memory_bytes=mean("efficiency", "peak_memory_bytes"),
        eval_s=mean("timings", "eval_s"),
        eval_tokens_per_s=mean("efficiency", "eval_tokens_per_s"),
    )


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


TEST_NAMES = {
    "baseline": "LoRA baseline",
    "confirmation": "confirmation run",
    "best": "best single-factor configuration",
    "best trial": "best search trial",
}


def _test_rows(
    plan: PlanRecord, results: dict[str, RunResult], scores: ExampleScores
) -> list[PerspectiveRow]:
    """The test split's re-evaluations: one row per configuration, whatever roles it has, its
    scores the mean over its seeds' adapters, each seed's primary score beside them."""
    evaluations = plan.test_evaluations()
    baseline = next((e.run_ids for e in evaluations if "baseline" in e.roles), ())
    rows = []
    for evaluation in evaluations:
        name = ", ".join(TEST_NAMES.get(role, role) for role in evaluation.roles)
        is_baseline = evaluation.run_ids == baseline
        row = configuration_row(name, evaluation.run_ids, is_baseline, results, scores, baseline)
        if not row.metrics:
            continue
        primary = scores.scoring.primary
        per_seed = tuple(
            (seed, scores.run_numbers(results[r]).get(primary) if r in row.done_ids else None)
            for seed, r in zip(plan.seeds or (None,), evaluation.run_ids, strict=False)
        )
        rows.append(
            PerspectiveRow(name, "measured", row.metrics, row.delta, _ids(row), is_baseline,
                           per_seed=per_seed)
        )  # fmt: skip
    return rows


def _perspective(
    store: RunStore,
    plan: PlanRecord,
    sweep: StoredSweep,
    baseline: Row,
    best: Row | None,
    confirmation: Confirmation | None,
    results: dict[str, RunResult],
    scores: ExampleScores,
) -> list[PerspectiveRow]:
    reference = baseline.done_ids
    primary = scores.scoring.primary
    rows = []
    base = results.get(plan.base_eval)
    if base and base.done:
        rows.append(
            PerspectiveRow(
                "base model, zero-shot (same prompt)",
                "measured",
                scores.run_numbers(base),
                scores.compare(reference, (base.run_id,)).get(primary),
                f"`{base.run_id}`",
            )
        )
    if baseline.metrics:
        rows.append(
            PerspectiveRow(
                "LoRA baseline", "measured", baseline.metrics, None, _ids(baseline), True
            )
        )
    if best is not None and best.run_ids != baseline.run_ids:
        rows.append(
            PerspectiveRow(
                f"best configuration ({best.label})",
                "measured",
                best.metrics,
                best.delta,
                _ids(best),
            )
        )
    if confirmation is not None and confirmation.row.metrics:
        row = confirmation.row
        rows.append(
            PerspectiveRow(
                f"confirmation run ({row.label})", "measured", row.metrics, row.delta, _ids(row)
            )
        )
    # Every run scores the same examples; take them from the baseline, else from any run.
    source = next(iter(reference), None) or next(
        (r for r, result in results.items() if result.done), None
    )
    examples = scores.rows(source) if source else []
    if examples and all("input" in row and "reference" in row for row in examples):
        for name, predictions in extractive_predictions(examples).items():
            scored = scores.add(f"extractive:{name}", predictions)
            rows.append(
                PerspectiveRow(
                    name,
                    "extractive",
                    scores.scoring.headline(scored),
                    scores.compare(reference, (f"extractive:{name}",)).get(primary),
                    "lines of the input, no model",
                )
            )
    for result, predictions in external_rows(store):
        rows.append(_external(result["name"], predictions, reference, scores))
    for record, predictions in baseline_rows(store.root):  # API models asked here
        rows.append(api_row(record, predictions, reference, scores, _external))
    for reported in sweep.reported:
        rows.append(
            PerspectiveRow(reported.label, "reported", reported.numbers(), None, reported.source)
        )
    return rows


def _external(
    name: str,
    predictions: list[dict[str, Any]],
    reference: tuple[str, ...],
    scores: ExampleScores,
    kind: str = "external",
    details: str = "",
) -> PerspectiveRow:
    """A row of predictions made elsewhere (a file, an API model), paired with the sweep's
    examples when it holds them all; ``details`` opens its note."""
    source = f"{kind}:{name}"
    scored = scores.add(source, predictions)
    headline = scores.scoring.headline
    pairing = pair_examples(scores.rows(reference[0]), predictions) if reference else None
    if pairing is None:
        why = "not the sweep's" if reference else "no finished LoRA baseline yet"
        note = details + f"{len(predictions)} examples, {why}: not paired"
        return PerspectiveRow(name, kind, headline(scored), None, note)
    matched = [scored[i] for i in pairing.indices]
    note = details + f"paired by {pairing.by} on the sweep's {len(matched)} examples"
    if len(matched) < len(predictions):
        note += f" (of {len(predictions)} in the file)"
    return PerspectiveRow(
        name,
        kind,
        headline(matched),
        scores.compare(reference, (source,)).get(scores.scoring.primary),
        note,
    )


def _health(
    store: RunStore, plan: PlanRecord, results: dict[str, RunResult], scores: ExampleScores
) -> list[HealthRow]:
    rows = []
    for run_id, result in results.items():
        if not result.done:
            continue
        cap = _token_cap(result)
        name = "zero-shot" if result.kind is UnitKind.ZERO_SHOT else ", ".join(result.labels)
        rows.append(HealthRow(name, run_id, generation_health(scores.rows(run_id), cap)))
    for result, predictions in external_rows(store):
        rows.append(HealthRow(f"{result['name']} (external)", None, generation_health(predictions)))
    for record, predictions in baseline_rows(store.root):
        if record.done:
            health = generation_health(predictions, record.max_tokens)
            rows.append(HealthRow(f"{record.name} (API, {record.model})", None, health))
    return rows


def _token_cap(result: RunResult) -> int | None:
    """The run's max_new_tokens: the value it used (``auto`` resolved), else the config's."""
    for record in (result.generation, result.config.get("generation")):
        cap = (record or {}).get("max_new_tokens")
        if isinstance(cap, int) and not isinstance(cap, bool):
            return cap
    return None


def _ids(row: Row) -> str:
    return ", ".join(f"`{r}`" for r in row.done_ids)


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
