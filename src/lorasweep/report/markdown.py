"""Write the sweep report (Markdown with PNG charts) from the run store alone."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from lorasweep.metrics.rouge import ROUGE_KEYS
from lorasweep.report import plots
from lorasweep.report.tables import PRIMARY, Row, SweepTables, build_tables, describe_run
from lorasweep.store.store import RunStore, replace_dir

NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L"}


def write_report(store: RunStore) -> Path:
    """Build ``report/report.md`` and its charts; the folder is replaced as a whole."""
    tables = build_tables(store)
    store.root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".report-", dir=store.root))
    charts: dict[str, list[str]] = {}
    for table in tables.experiments:
        made = [
            plots.experiment_chart(table, staging / f"{table.name}.png"),
            plots.loss_chart(table, store, staging / f"{table.name}-loss.png"),
        ]
        charts[table.name] = [p.name for p in made if p]
    (staging / "report.md").write_text(render(tables, _sweep_summary(store), charts))
    replace_dir(staging, store.report_dir)
    return store.report_dir / "report.md"


def render(tables: SweepTables, summary: str, charts: dict[str, list[str]]) -> str:
    """The report's Markdown text."""
    lines = [f"# LoRA sweep report: {tables.name}", "", summary, ""]
    for table in tables.experiments:
        lines += [f"## Experiment: {table.name} (`{table.factor}`)", ""]
        lines += _experiment_table(table.rows)
        lines += [""] + [f"![{name}]({name})" for name in charts.get(table.name, [])] + [""]
    lines += _winner(tables)
    lines += _perspective(tables)
    lines += _runs(tables)
    return "\n".join(lines) + "\n"


def _experiment_table(rows: list[Row]) -> list[str]:
    header = "| value | " + " | ".join(NAMES[k] for k in ROUGE_KEYS) + " | Δ ROUGE-L vs baseline |"
    lines = [header, "|---|" + "---:|" * (len(ROUGE_KEYS) + 1)]
    for row in rows:
        label = f"{row.label} (baseline)" if row.is_baseline else row.label
        if not row.metrics:
            lines.append(f"| {label} | " + " | ".join([row.status] * len(ROUGE_KEYS)) + " | |")
            continue
        cells = [_bold(f"{row.metrics[k]:.2f}", row.is_best.get(k, False)) for k in ROUGE_KEYS]
        delta = "—" if row.is_baseline or row.delta is None else f"{row.delta:+.2f}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {delta} |")
    return lines


def _winner(tables: SweepTables) -> list[str]:
    lines = ["## Winning configuration", ""]
    winner = tables.winner
    if winner is None:
        return lines + ["No LoRA run finished, so there is no winner yet.", ""]
    score = winner["metrics"][PRIMARY]
    text = f"Highest ROUGE-L: **{_label(winner)}** (`{winner['run_id']}`) with {score:.2f}"
    if tables.baseline is not None:
        gain = score - tables.baseline["metrics"][PRIMARY]
        text += (
            " — it is the baseline itself."
            if winner["run_id"] == tables.baseline["run_id"]
            else f", {gain:+.2f} points against the baseline."
        )
    lines += [text, "", f"Settings: {describe_run(winner)}.", ""]
    lines += [
        "This ranks single runs on one evaluation subset; differences of a point or less "
        "between configurations are often within noise.",
        "",
    ]
    return lines


def _perspective(tables: SweepTables) -> list[str]:
    entries = [
        ("base model, zero-shot (same prompt)", tables.base_model),
        ("LoRA baseline", tables.baseline),
        (f"best run ({_label(tables.winner)})" if tables.winner else "best run", tables.winner),
    ]
    lines = ["## Perspective", ""]
    lines += ["| system | " + " | ".join(NAMES[k] for k in ROUGE_KEYS) + " |"]
    lines += ["|---|" + "---:|" * len(ROUGE_KEYS)]
    for name, result in entries:
        cells = [f"{result['metrics'][k]:.2f}" if result else "—" for k in ROUGE_KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def _runs(tables: SweepTables) -> list[str]:
    lines = ["## Runs", "", "| run | serves | status | train s | eval s | trainable params |"]
    lines += ["|---|---|---|---:|---:|---:|"]
    for run_id, result in tables.results.items():
        timings = result.get("timings", {})
        efficiency = result.get("efficiency", {})
        params = efficiency.get("trainable_params")
        lines.append(
            f"| `{run_id}` | {', '.join(result['labels'])} | {result['status']} | "
            f"{_number(timings.get('train_s'))} | {_number(timings.get('eval_s'))} | "
            f"{params if params is not None else ''} |"
        )
    failed = [r for r in tables.results.values() if r["status"] != "done"]
    for result in failed:
        lines += ["", f"`{result['run_id']}` failed: {result.get('error', 'unknown error')}"]
    return lines + [""]


def _sweep_summary(store: RunStore) -> str:
    import yaml

    sweep = yaml.safe_load((store.root / "sweep.yaml").read_text())
    evaluation = sweep["evaluation"]
    stemming = "with" if evaluation["use_stemmer"] else "no"
    return (
        f"Model `{sweep['model']['name']}`, data `{sweep['data']['source']}`. "
        f"Each configuration is trained once and evaluated on the same {evaluation['size']} "
        f"examples of the `{evaluation['split']}` split (shuffle seed {evaluation['seed']}) "
        f"with greedy decoding. Scores are ROUGE F-measures in points (x100) from Google's "
        f"`rouge-score`, {stemming} stemming, averaged over examples. **Bold**: the best value "
        f"in its column."
    )


def _label(result: dict[str, Any] | None) -> str:
    if not result:
        return ""
    labels = [x for x in result["labels"] if x != "baseline"]
    return "baseline" if "baseline" in result["labels"] else (labels[0] if labels else "")


def _bold(text: str, bold: bool) -> str:
    return f"**{text}**" if bold else text


def _number(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else ""
