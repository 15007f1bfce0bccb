"""The report's numbers as plain data, computed from the run store alone (no plotting here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lorasweep.metrics.rouge import DIRECTIONS, ROUGE_KEYS
from lorasweep.store.store import DONE, RunStore

PRIMARY = "rougeL"  # the metric deltas, winners and charts are about


@dataclass(frozen=True)
class Row:
    label: str
    run_id: str
    status: str
    metrics: dict[str, float]  # empty unless done
    delta: float | None  # PRIMARY minus the baseline's
    is_baseline: bool
    is_best: dict[str, bool]  # per metric: the best value of its table


@dataclass(frozen=True)
class ExperimentTable:
    name: str
    factor: str
    rows: list[Row]


@dataclass(frozen=True)
class SweepTables:
    name: str
    baseline: dict[str, Any] | None
    base_model: dict[str, Any] | None
    experiments: list[ExperimentTable]
    winner: dict[str, Any] | None
    results: dict[str, dict[str, Any]]  # run id -> result record (any status)


def build_tables(store: RunStore) -> SweepTables:
    """Everything the report shows, from ``plan.json`` and the runs' result records."""
    plan = store.plan()
    ids = [plan["base_eval"]] + [r["run_id"] for r in plan["runs"]]
    results = {run_id: result for run_id in ids if (result := store.result(run_id))}
    done = {run_id: r for run_id, r in results.items() if r["status"] == DONE}
    baseline = done.get(plan["baseline"])
    baseline_score = baseline["metrics"][PRIMARY] if baseline else None

    experiments = []
    for experiment in plan["experiments"]:
        rows = []
        for row in experiment["rows"]:
            result = results.get(row["run_id"])
            metrics = result["metrics"] if result and result["status"] == DONE else {}
            delta = (
                metrics[PRIMARY] - baseline_score
                if metrics and baseline_score is not None
                else None
            )
            status = result["status"] if result else "planned"
            rows.append(
                Row(row["label"], row["run_id"], status, metrics, delta, row["is_baseline"], {})
            )
        experiments.append(
            ExperimentTable(experiment["name"], experiment["factor"], _mark_best(rows))
        )

    lora_runs = [r for r in done.values() if r["kind"] == "lora"]
    winner = max(lora_runs, key=lambda r: r["metrics"][PRIMARY], default=None)
    return SweepTables(
        name=plan["name"],
        baseline=baseline,
        base_model=done.get(plan["base_eval"]),
        experiments=experiments,
        winner=winner,
        results=results,
    )


def _mark_best(rows: list[Row]) -> list[Row]:
    scored = [r for r in rows if r.metrics]
    best = {}
    for key in ROUGE_KEYS:
        values = [r.metrics[key] for r in scored]
        if values:
            best[key] = max(values) if DIRECTIONS[key] == "higher" else min(values)
    return [
        Row(
            **{
                **r.__dict__,
                "is_best": {k: bool(r.metrics) and r.metrics[k] == v for k, v in best.items()},
            }
        )
        for r in rows
    ]


def describe_run(result: dict[str, Any]) -> str:
    """The settings that distinguish LoRA runs, in one line."""
    lora, training = result["config"]["lora"], result["config"]["training"]
    modules = lora["target_modules"]
    modules = modules if isinstance(modules, str) else ", ".join(modules)
    length = (
        f"{training['max_steps']} steps"
        if training.get("max_steps")
        else f"{training['epochs']:g} epochs"
    )
    return (
        f"r={lora['r']}, alpha={lora['alpha']:g}, dropout={lora['dropout']:g}, "
        f"targets {modules}, lr {training['learning_rate']:g}, "
        f"batch {training['batch_size']}x{training['gradient_accumulation_steps']}, {length}"
    )
