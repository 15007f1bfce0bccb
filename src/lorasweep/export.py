"""The sweep's run table for other tools (pandas, spreadsheets, trackers): one row per run.

Built from the run store alone (``plan.json``, each run's ``result.json`` and predictions), so a
sweep that is still going exports its planned runs too. The metric columns are the sweep's
metrics as configured now: a metric added after the runs scores their stored predictions.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Literal

from lorasweep.metrics.registry import scoring_for
from lorasweep.paths import check_output_file
from lorasweep.stats.scores import ExampleScores
from lorasweep.store.records import Status, UnitKind
from lorasweep.store.store import RunStore, open_sweep, write_text
from lorasweep.store.sweep_file import read_sweep

Format = Literal["csv", "json"]
FORMATS: tuple[Format, ...] = ("csv", "json")

# The resolved settings that tell runs apart: column name -> (config section, key).
SETTINGS = {
    "r": ("lora", "r"),
    "alpha": ("lora", "alpha"),
    "dropout": ("lora", "dropout"),
    "target_modules": ("lora", "target_modules"),
    "learning_rate": ("training", "learning_rate"),
    "max_steps": ("training", "max_steps"),
    "epochs": ("training", "epochs"),
}


def run_table(store: RunStore) -> list[dict[str, Any]]:
    """One row per run of the plan, the zero-shot evaluation first.

    Each row holds the run's id, kind, status, labels, the experiments it serves, the key resolved
    settings, the metrics, timings and efficiency figures of its result (empty while planned) and
    the error of a failed run (or what is wrong with a damaged result, exported as planned).
    Values keep their JSON types (lists stay lists).
    """
    plan = store.plan()
    scores = ExampleScores(store, set(), scoring_for(read_sweep(store.root).evaluation))
    experiments: dict[str, list[str]] = {}
    for experiment in plan.experiments:
        for row in experiment.rows:
            experiments.setdefault(row.run_id, []).append(experiment.name)
    rows = []
    for unit in plan.units():
        if unit.kind is UnitKind.TEST:
            continue
        result = store.result(unit.run_id)
        config = result.config if result else {}
        row: dict[str, Any] = {
            "run_id": unit.run_id,
            "kind": unit.kind.value,
            "status": (result.status if result else Status.PLANNED).value,
            "labels": list(unit.labels),
            "experiments": experiments.get(unit.run_id, []),
            "is_baseline": unit.run_id == plan.baseline,
        }
        for column, (section, key) in SETTINGS.items():
            row[column] = (config.get(section) or {}).get(key)
        row.update(scores.run_numbers(result) if result and result.done else {})
        row.update(result.timings if result else {})
        row.update(result.efficiency if result else {})
        damage = store.damage(unit.run_id)
        row["error"] = result.error if result else damage.problem if damage else None
        rows.append(row)
    return rows


def flat(value: Any) -> str | int | float | bool | None:
    """A table cell for tools without lists: lists joined by ``;``, mappings as JSON."""
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every column of ``rows``, in first-seen order (runs not yet done lack metric columns)."""
    return list(dict.fromkeys(key for row in rows for key in row))


def to_csv(rows: list[dict[str, Any]]) -> str:
    names = columns(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: flat(row.get(name)) for name in names})
    return buffer.getvalue()


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2) + "\n"


def export_runs(sweep: str | Path | RunStore, fmt: Format = "csv", out: Path | None = None) -> Path:
    """Write the run table of a sweep atomically; returns the file written.

    A run whose ``result.json`` is damaged is exported as planned (not done); the store's
    ``damaged`` names it.

    Args:
        sweep: A sweep folder (it holds ``plan.json``), or its store.
        fmt: ``csv`` (lists joined by ``;``) or ``json`` (a list of row objects).
        out: The file to write; default ``<sweep folder>/runs.<fmt>``.

    Raises:
        UserError: ``sweep`` is not a sweep folder, its plan is damaged, or the file cannot be
            written there.
    """
    store = sweep if isinstance(sweep, RunStore) else open_sweep(sweep)
    path = Path(out) if out is not None else store.root / f"runs.{fmt}"
    check_output_file(path, "--out" if out is not None else "sweep_dir")
    rows = run_table(store)
    write_text(path, to_csv(rows) if fmt == "csv" else to_json(rows))
    return path
