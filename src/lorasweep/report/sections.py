"""The report's sections after the experiments: the held-out test split, the perspective
table, generation health and the list of runs, laid out from ``tables``' data."""

from __future__ import annotations

from lorasweep.metrics import health
from lorasweep.metrics.scoring import Scoring
from lorasweep.report.formatting import (
    bytes_cell,
    count_cell,
    delta_cell,
    number_cell,
    params_cell,
)
from lorasweep.report.recommend import verdict_words
from lorasweep.report.tables import PerspectiveRow, SweepTables, lora_scaling_of, lora_variant
from lorasweep.stats.bootstrap import CONFIDENCE

KINDS = {
    "measured": "measured",
    "extractive": "extractive, no model",
    "external": "external predictions",
    "api": "API model, measured here",
    "reported": "**reported**, not measured",
}


def test_section(tables: SweepTables) -> list[str]:
    if not tables.test:
        return []
    seeds = max(len(row.per_seed) for row in tables.test)
    lines = [
        "## Held-out test split",
        "",
        "The configurations chosen on the evaluation split, re-evaluated on examples not used "
        "to choose them; a configuration with several roles is listed once."
        + (
            f" Every seed's adapter is evaluated: scores are means over the {seeds} seeds, "
            f"each seed's {tables.scoring.label(tables.scoring.primary)} beside them."
            if seeds > 1
            else ""
        ),
        "",
    ]
    lines += perspective_table(tables.test, tables.scoring, kinds=False, per_seed=seeds > 1)
    sentences = [
        f"On the test split, the {row.name} scores {delta_cell(row.vs_baseline)} "
        f"{tables.scoring.label(tables.scoring.primary)} against the LoRA baseline: "
        f"{verdict_words(row.vs_baseline)}."
        for row in tables.test
        if row.vs_baseline is not None
    ]
    return lines + ["", " ".join(sentences), ""] if sentences else lines + [""]


def perspective_section(tables: SweepTables) -> list[str]:
    lines = ["## Perspective", ""]
    if not tables.perspective:
        return lines + ["Nothing finished yet.", ""]
    lines += perspective_table(tables.perspective, tables.scoring, kinds=True)
    lines.append("")
    if any(r.kind == "reported" for r in tables.perspective):
        lines += [
            "Reported rows are copied from their source, not measured here: their examples, "
            "prompt and metric settings may differ, so they have no interval and no verdict.",
            "",
        ]
    return lines


def perspective_table(
    rows: list[PerspectiveRow], scoring: Scoring, kinds: bool, per_seed: bool = False
) -> list[str]:
    keys = [k for k in scoring.names if any(k in r.metrics for r in rows)]
    primary = scoring.label(scoring.primary)
    head = "| system | " + ("kind | " if kinds else "")
    head += " | ".join(scoring.label(k) for k in keys)
    head += f" | {primary} per seed" if per_seed else ""
    head += f" | Δ {primary} vs LoRA baseline [{CONFIDENCE:.0%} CI] | verdict | source |"
    numbers = len(keys) + 1 + per_seed
    lines = [head, "|---|" + ("---|" if kinds else "") + "---:|" * numbers + "---|---|"]
    for row in rows:
        cells = [f"{row.metrics[k]:.2f}" if k in row.metrics else "—" for k in keys]
        if per_seed:
            cells.append(
                ", ".join(
                    f"{seed}: {value:.2f}" if value is not None else f"{seed}: —"
                    for seed, value in row.per_seed
                )
            )
        if row.is_baseline:
            cells += ["—", "(the baseline)"]
        else:
            cells += [delta_cell(row.vs_baseline), verdict_words(row.vs_baseline)]
        kind = f"{KINDS[row.kind]} | " if kinds else ""
        lines.append(f"| {row.name} | {kind}" + " | ".join(cells) + f" | {row.note} |")
    return lines


def health_section(tables: SweepTables) -> list[str]:
    lines = [
        "## Generation health",
        "",
        f"Flagged when more than {health.MAX_EMPTY_SHARE:.0%} of outputs are empty, more than "
        f"{health.MAX_HIT_LIMIT_SHARE:.0%} stop at max_new_tokens, the mean length ratio "
        f"(prediction words / reference words) is outside "
        f"{health.LENGTH_RATIO_RANGE[0]:g}-{health.LENGTH_RATIO_RANGE[1]:g}, or more than "
        f"{health.MAX_REPEAT_SHARE:.0%} repeat the prompt (share {health.REPEAT_NGRAM} words in "
        f"a row with the input, or open with its first {health.START_WORDS} words).",
        "",
        "| run | examples | empty | hit max_new_tokens | length ratio | repeat prompt | flags |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in tables.health:
        h = row.health
        flags = "⚠ " + "; ".join(h.flags) if h.flags else "ok"
        name = f"{row.name} (`{row.run_id}`)" if row.run_id else row.name
        lines.append(
            f"| {name} | {h.examples} | {h.empty} | {count_cell(h.hit_limit)} | "
            f"{number_cell(h.length_ratio, '.2f')} | {count_cell(h.repeats_prompt)} | {flags} |"
        )
    return lines + [""]


def runs_section(tables: SweepTables) -> list[str]:
    lines = [
        "## Runs",
        "",
        "| run | serves | status | LoRA scaling | train s | eval s | trainable params | adapter "
        "| train tokens/s | generated tokens/s | peak memory |",
        "|---|---|---|" + "---:|" * 8,
    ]
    for run_id, result in tables.results.items():
        timings, efficiency = result.timings, result.efficiency
        lora = result.config.get("lora")
        scaling = f"{lora_scaling_of(lora):.3g} ({lora_variant(lora)})" if lora else "–"
        lines.append(
            f"| `{run_id}` | {', '.join(result.labels)} | {result.status} | {scaling} | "
            f"{number_cell(timings.get('train_s'))} | {number_cell(timings.get('eval_s'))} | "
            f"{params_cell(efficiency.get('trainable_params'))} | "
            f"{bytes_cell(efficiency.get('adapter_bytes'))} | "
            f"{number_cell(efficiency.get('train_tokens_per_s'), ',.0f')} | "
            f"{number_cell(efficiency.get('eval_tokens_per_s'), ',.0f')} | "
            f"{bytes_cell(efficiency.get('peak_memory_bytes'))} |"
        )
    for result in tables.results.values():
        if not result.done:
            lines += ["", f"`{result.run_id}` {result.status}: {result.error or 'unknown error'}"]
    return lines + [""]
