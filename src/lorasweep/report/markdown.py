"""Write the sweep report (Markdown with PNG charts) from the run store alone.

Numbers and verdicts come from ``tables`` and sentences from ``recommend``; this module only
lays them out.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from lorasweep.errors import UserError
from lorasweep.metrics.scoring import Scoring
from lorasweep.report import plots, search, search_plots, sections
from lorasweep.report.formatting import (
    bold,
    bytes_cell,
    delta_cell,
    number_cell,
    params_cell,
    score_cell,
)
from lorasweep.report.pareto import COST_NAMES, Tradeoff
from lorasweep.report.recommend import (
    CHEAPEST,
    ONLY,
    SIGNIFICANT,
    Recommendation,
    power_words,
    verdict_words,
)
from lorasweep.report.summary import answer_lines, methods
from lorasweep.report.tables import (
    Row,
    SweepTables,
    build_tables,
    describe_run,
)
from lorasweep.stats import multiplicity
from lorasweep.stats.bootstrap import CONFIDENCE, GAIN, LOSS, NOISE
from lorasweep.store.store import RunStore, replace_dir

STAGING = ".report-"  # .report-<pid>-<random>: a build's folder until it replaces report/

BASIS = {
    SIGNIFICANT: "significantly best",
    CHEAPEST: "cheapest within noise of the best",
    ONLY: "only finished value",
}


def write_report(store: RunStore, rescore: bool = False) -> Path:
    """Build ``report/report.md`` and its charts; the folder is replaced as a whole.

    Args:
        store: The sweep folder.
        rescore: Score the stored predictions again with every metric (``report --rescore``).
    """
    check_report_dir(store)
    tables = build_tables(store, rescore)
    store.root.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(store.root)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING}{os.getpid()}-", dir=store.root))
    try:
        _write_into(staging, store, tables)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_dir(staging, store.report_dir)
    return store.report_dir / "report.md"


def check_report_dir(store: RunStore) -> None:
    """The report can go in place: ``report/`` is a folder or absent, never a file to replace.

    Raises:
        UserError: Something else is where the report folder goes.
    """
    path = store.report_dir
    if path.exists() and not path.is_dir():
        raise UserError(
            f"{path} is a file where the report folder goes; move or delete it, then rerun"
        )


def remove_stale_staging(root: Path) -> None:
    """Remove the staging folders of report builds whose process has died (killed mid-build);
    a build still running in another process keeps its folder."""
    for folder in root.glob(f"{STAGING}*"):
        owner = folder.name.removeprefix(STAGING).split("-", 1)[0]
        if folder.is_dir() and not (owner.isdigit() and _alive(int(owner))):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OverflowError:  # not a pid at all
        return False
    return True


def _write_into(staging: Path, store: RunStore, tables: SweepTables) -> None:
    charts: dict[str, list[str]] = {}
    for table in tables.experiments:
        made = [
            plots.experiment_chart(table, staging / f"{table.name}.png", tables.scoring),
            plots.delta_chart(table, staging / f"{table.name}-delta.png", tables.scoring),
            plots.loss_chart(table, store, staging / f"{table.name}-loss.png"),
        ]
        charts[table.name] = [p.name for p in made if p]
    tradeoff = plots.tradeoff_chart(
        tables.tradeoffs, staging / "quality-vs-cost.png", tables.scoring
    )
    summary = methods(tables)
    searched = search.build_search(store, tables)
    made = search_plots.chart(searched, staging / "search-parameters.png")
    extra = search.section(searched, [made.name] if made else [])
    text = render(tables, summary, charts, tradeoff.name if tradeoff else None, extra, searched)
    (staging / "report.md").write_text(text)


def render(
    tables: SweepTables,
    summary: str,
    charts: dict[str, list[str]],
    tradeoff_chart: str | None = None,
    search_lines: list[str] = (),
    searched: search.SearchTable | None = None,
) -> str:
    """The report's Markdown text; ``search_lines``: the search section (``report.search``)."""
    scoring = tables.scoring
    lines = [f"# LoRA sweep report: {tables.name}", "", *answer_lines(tables, searched)]
    lines += [summary, ""]
    for table in tables.experiments:
        lines += [f"## Experiment: {table.name} (`{table.factor}`)", ""]
        lines += experiment_table(table.rows, scoring)
        if len(scoring.metrics) > 1:
            lines += [""] + every_metric_table(table.rows, scoring)
        lines += [""] + efficiency_table(table.rows)
        lines += [""] + [f"![{name}]({name})" for name in charts.get(table.name, [])] + [""]
        lines += recommendation_section(table.recommendation, table.rows, scoring)
    lines += list(search_lines)
    if tables.experiments or not search_lines:  # a search alone: its own recommendation
        lines += _overall(tables)
    lines += _confirmation(tables)
    lines += quality_cost_section(tables.tradeoffs, tradeoff_chart, scoring)
    lines += sections.test_section(tables)
    lines += sections.perspective_section(tables)
    lines += sections.health_section(tables)
    lines += sections.runs_section(tables)
    return "\n".join(lines) + "\n"


def experiment_table(rows: list[Row], scoring: Scoring) -> list[str]:
    """value | scores | Δ [Holm CI] | [95% CI] | share <= 0 | verdict | power | params."""
    keys, primary = scoring.table_keys, scoring.label(scoring.primary)
    header = (
        "| value | "
        + " | ".join(scoring.label(k) for k in keys)
        + f" | Δ {primary} vs baseline [{multiplicity.METHOD} CI] | uncorrected "
        f"[{CONFIDENCE:.0%} CI] | P(Δ≤0) | verdict ({multiplicity.METHOD}) "
        "| detectable Δ (80% power) | trainable params |"
    )
    lines = [header, "|---|" + "---:|" * (len(keys) + 3) + "---|---:|---:|"]
    partial = False  # some delta rests on fewer seeds than the row's mean
    for row in rows:
        label = f"{row.label} (baseline)" if row.is_baseline else row.label
        if not row.metrics:
            cells = [row.status] * len(keys) + [""] * 6
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
            continue
        cells = [bold(score_cell(row, k), row.is_best.get(k, False)) for k in keys]
        if row.is_baseline:
            cells += ["—", "—", "—", "—", "—"]
        else:
            delta = row.delta
            mark = " †" if delta and delta.n_seeds < len(row.done_ids) else ""
            partial = partial or bool(mark)
            cells += [
                delta_cell(delta) + mark,
                delta_cell(delta.uncorrected or delta) if delta else "—",
                f"{delta.share_at_or_below_zero:.3f}" if delta else "—",
                verdict_words(delta),
                power_words(delta),
            ]
        cells.append(params_cell(row.cost.trainable_params))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if partial:
        lines += [
            "",
            "† Δ pairs seed i with the baseline's seed i, so it uses only the seeds that "
            "finished for both configurations; the scores beside it average all finished seeds.",
        ]
    return lines


def every_metric_table(rows: list[Row], scoring: Scoring) -> list[str]:
    """Every key of every metric: its mean with an interval, and its paired delta and verdict
    against the baseline (the table above shows the primary key's only)."""
    lines = [
        f"Every metric (mean over examples [{CONFIDENCE:.0%} CI]; Δ vs baseline, paired, "
        f"{multiplicity.METHOD}-corrected over the experiment):",
        "",
        f"| value | metric | mean [{CONFIDENCE:.0%} CI] | Δ vs baseline "
        f"[{multiplicity.METHOD} CI] | P(Δ≤0) | verdict ({multiplicity.METHOD}) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in rows:
        if not row.metrics:
            continue
        label = f"{row.label} (baseline)" if row.is_baseline else row.label
        for key in [k for k in scoring.names if k in row.intervals]:
            interval = row.intervals[key]
            mean = f"{interval.estimate:.2f} [{interval.low:.2f}, {interval.high:.2f}]"
            delta = row.vs_baseline.get(key)
            if row.is_baseline:
                cells = ["—", "—", "(the baseline)"]
            else:
                share = f"{delta.share_at_or_below_zero:.3f}" if delta else "—"
                cells = [delta_cell(delta), share, verdict_words(delta)]
            lines.append(f"| {label} | {scoring.label(key)} | {mean} | " + " | ".join(cells) + " |")
    return lines


def efficiency_table(rows: list[Row]) -> list[str]:
    """What each value costs: parameters, adapter size, training and generation speed, memory."""
    lines = [
        "Cost (mean over finished seeds; tokens/s counts real tokens, not padding):",
        "",
        "| value | trainable params | adapter | train s | train tokens/s | peak memory | eval s "
        "| generated tokens/s |",
        "|---|" + "---:|" * 7,
    ]
    for row in rows:
        if not row.metrics:
            continue
        label = f"{row.label} (baseline)" if row.is_baseline else row.label
        c = row.cost
        cells = [
            params_cell(c.trainable_params), bytes_cell(c.adapter_bytes), number_cell(c.train_s),
            number_cell(c.train_tokens_per_s, ",.0f"), bytes_cell(c.peak_memory_bytes),
            number_cell(c.eval_s), number_cell(c.eval_tokens_per_s, ",.0f"),
        ]  # fmt: skip
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def quality_cost_section(
    tradeoffs: list[Tradeoff], chart: str | None, scoring: Scoring
) -> list[str]:
    """The primary key against each cost, every configuration, the Pareto front marked (◆)."""
    panels = [t for t in tradeoffs if t.points]
    if not panels:
        return []
    primary = scoring.label(scoring.primary)
    good = "high" if scoring.direction(scoring.primary) == "higher" else "low"
    lines = [
        "## Quality against cost",
        "",
        f"A configuration is on the Pareto front (◆) when no other has a {primary} at "
        f"least as {good} at a cost at least as low (and is better on one of the two).",
        "",
    ]
    labels = list(dict.fromkeys(p.label for t in panels for p in t.points))
    points = [{p.label: p for p in t.points} for t in panels]
    quality = {p.label: p.quality for t in panels for p in t.points}
    head = f"| configuration | {primary} | "
    head += " | ".join(COST_NAMES[t.cost_key] for t in panels) + " |"
    lines += [head, "|---|---:|" + "---:|" * len(panels)]
    for label in labels:
        cells = []
        for by_label, panel in zip(points, panels, strict=True):
            point = by_label.get(label)
            if point is None:
                cells.append("—")
                continue
            text = (
                params_cell(point.cost)
                if panel.cost_key == "trainable_params"
                else number_cell(point.cost)
            )
            cells.append(f"{text} ◆" if point.on_front else text)
        lines.append(f"| {label} | {quality[label]:.2f} | " + " | ".join(cells) + " |")
    lines.append("")
    sentences = [
        f"Against {COST_NAMES[t.cost_key]}, the front is "
        + ", ".join(f"{p.label} ({p.quality:.2f})" for p in t.front)
        + ", cheapest first."
        for t in panels
    ]
    lines += [" ".join(sentences), ""]
    if chart:
        lines += [f"![{chart}]({chart})", ""]
    return lines


def recommendation_section(
    recommendation: Recommendation, rows: list[Row], scoring: Scoring
) -> list[str]:
    """The experiment's recommendation: the numbers it rests on, then the sentences."""
    lines = ["### Recommendation", ""]
    if recommendation.reason in (SIGNIFICANT, CHEAPEST):
        lines += [
            f"| value | {scoring.label(scoring.primary)} | Δ vs best [{CONFIDENCE:.0%} CI] "
            "| verdict vs best "
            "| trainable params | training tokens |",
            "|---|---:|---:|---|---:|---:|",
        ]
        by_label = {r.label: r for r in rows}
        for candidate in recommendation.candidates:
            row = by_label[candidate.label]
            if candidate.label == recommendation.best:
                delta, verdict = "— (best)", "—"
            else:
                found = recommendation.vs_best[candidate.label]
                delta, verdict = delta_cell(found), verdict_words(found)
            lines.append(
                f"| {candidate.label} | {score_cell(row, scoring.primary)} | {delta} | {verdict} | "
                f"{params_cell(candidate.trainable_params)} | "
                f"{number_cell(candidate.train_tokens, ',.0f')} |"
            )
        lines.append("")
    return lines + [" ".join(recommendation.sentences()), ""]


def _overall(tables: SweepTables) -> list[str]:
    key = tables.scoring.primary
    name = tables.scoring.label(key)
    lines = ["## Recommendation", ""]
    if tables.experiments:
        lines += [
            f"| experiment | factor | recommended | basis | {name} "
            f"| Δ {name} vs baseline [{CONFIDENCE:.0%} CI] | verdict vs baseline |",
            "|---|---|---|---|---:|---:|---|",
        ]
        for table in tables.experiments:
            choice = table.recommendation
            row = next((r for r in table.rows if r.label == choice.choice), None)
            if row is None:
                lines.append(f"| {table.name} | `{table.factor}` | — | no finished value | | | |")
                continue
            delta = "—" if row.is_baseline else delta_cell(row.delta)
            verdict = "(the baseline)" if row.is_baseline else verdict_words(row.delta)
            lines.append(
                f"| {table.name} | `{table.factor}` | {choice.choice} | {BASIS[choice.reason]} "
                f"| {score_cell(row, key)} | {delta} | {verdict} |"
            )
        lines.append("")
    lines += [" ".join(tables.overall.sentences()), ""]
    best = tables.best
    if best is None:
        return lines + ["No LoRA run finished, so there is no best configuration yet.", ""]
    ids = ", ".join(f"`{r}`" for r in best.done_ids)
    highest = "Highest" if tables.scoring.direction(key) == "higher" else "Lowest"
    text = f"{highest} {name} of any configuration: **{best.label}** ({ids}), "
    text += f"{score_cell(best, key)}"
    if tables.tied_with_best:
        text += f" (tied with {', '.join(tables.tied_with_best)})"
    if best.is_baseline:
        text += ": the baseline itself."
    elif best.delta is not None:
        text += f", {delta_cell(best.delta)} against the baseline ({verdict_words(best.delta)})."
    else:
        text += "."
    settings = tables.results[best.done_ids[0]]
    return lines + [text, "", f"Its settings: {describe_run(settings)}.", ""]


def _confirmation(tables: SweepTables) -> list[str]:
    confirmation = tables.confirmation
    if confirmation is None:
        return []
    lines = ["## Confirmation run", ""]
    row, best = confirmation.row, confirmation.best
    if tables.answer is not None and tables.answer.confirmation_is_baseline:
        return lines + [
            f"The combination of the recommended values ({row.label}) is the baseline itself: "
            "every experiment recommends the baseline's value, so there is nothing to confirm.",
            "",
        ]
    if not row.metrics:
        return lines + [f"The confirmation run ({row.label}) is {row.status}.", ""]
    lines += _score_table(
        [(f"confirmation ({row.label})", row), (f"best single-factor ({best.label})", best)],
        tables.scoring,
    )
    delta = confirmation.vs_best
    key = tables.scoring.primary
    name = tables.scoring.label(key)
    if delta is None:
        sentence = (
            f"The combination measured {name} {score_cell(row, key)}; it could not be "
            f"paired with the best single-factor configuration ({best.label})."
        )
    else:
        consequence = {
            GAIN: "the recommended values add up",
            LOSS: f"the factors interact, so prefer {best.label}",
            NOISE: "the combination neither adds up nor hurts, measurably",
        }[delta.verdict]
        sentence = (
            f"The combination measured {name} {score_cell(row, key)}, {delta_cell(delta)} "
            f"against the best single-factor configuration ({best.label}, "
            f"{score_cell(best, key)}): {verdict_words(delta)}; {consequence}."
        )
    return lines + ["", sentence, ""]


def _score_table(rows: list[tuple[str, Row]], scoring: Scoring) -> list[str]:
    keys = scoring.table_keys
    lines = [
        "| configuration | "
        + " | ".join(scoring.label(k) for k in keys)
        + f" | Δ {scoring.label(scoring.primary)} vs baseline [{CONFIDENCE:.0%} CI] | verdict |",
        "|---|" + "---:|" * (len(keys) + 1) + "---|",
    ]
    for name, row in rows:
        cells = [score_cell(row, k) for k in keys]
        if row.is_baseline:
            cells += ["—", "(the baseline)"]
        else:
            cells += [delta_cell(row.delta), verdict_words(row.delta)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
