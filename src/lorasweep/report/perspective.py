"""The report's rows beside the experiments: the held-out test split, the perspective table
(base model, LoRA baseline, best and confirmation, extractive, external and API rows, published
numbers) and generation health, as data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lorasweep.baselines.rows import baseline_rows
from lorasweep.evaluation.extractive import extractive_predictions
from lorasweep.external import external_rows
from lorasweep.metrics.health import Health, generation_health
from lorasweep.report.api_rows import api_row
from lorasweep.report.rows import Row, configuration_row
from lorasweep.stats.bootstrap import Delta
from lorasweep.stats.pairing import pair_examples
from lorasweep.stats.scores import ExampleScores
from lorasweep.store.records import PlanRecord, RunResult, UnitKind
from lorasweep.store.store import RunStore
from lorasweep.store.sweep_file import StoredSweep

if TYPE_CHECKING:
    from lorasweep.report.tables import Confirmation


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


TEST_NAMES = {
    "baseline": "LoRA baseline",
    "confirmation": "confirmation run",
    "best": "best single-factor configuration",
    "best trial": "best search trial",
}


def test_rows(
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


def perspective_rows(
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


def health_rows(
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
