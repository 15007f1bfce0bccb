"""Thin matplotlib charts over the report's tables; the numbers are computed in ``tables``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, safe on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402

from lorasweep.report.tables import PRIMARY, ExperimentTable  # noqa: E402
from lorasweep.stats.bootstrap import GAIN, LOSS  # noqa: E402
from lorasweep.store.store import RunStore  # noqa: E402

VERDICT_COLORS = {GAIN: "tab:green", LOSS: "tab:red"}  # within noise: grey


def experiment_chart(table: ExperimentTable, path: Path) -> Path | None:
    """ROUGE-L per value with its 95% bootstrap interval, the baseline's bar highlighted."""
    rows = [r for r in table.rows if r.metrics]
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(max(4.0, 1.2 * len(rows) + 2), 3.2))
    colors = ["tab:orange" if r.is_baseline else "tab:blue" for r in rows]
    heights = [r.metrics[PRIMARY] for r in rows]
    errors = [
        [h - r.interval.low if r.interval else 0 for h, r in zip(heights, rows, strict=True)],
        [r.interval.high - h if r.interval else 0 for h, r in zip(heights, rows, strict=True)],
    ]
    bars = axis.bar([r.label for r in rows], heights, color=colors, yerr=errors, capsize=4)
    axis.bar_label(bars, fmt="%.1f", padding=2, label_type="center", color="white")
    axis.set_xlabel(table.factor)
    axis.set_ylabel("ROUGE-L")
    axis.set_title(f"{table.name} (orange: baseline; bars: 95% CI of the mean)")
    axis.margins(y=0.15)
    return _save(figure, path)


def delta_chart(table: ExperimentTable, path: Path) -> Path | None:
    """ROUGE-L delta against the baseline per value with its paired 95% interval."""
    rows = [r for r in table.rows if r.delta is not None]
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(6, 0.5 * len(rows) + 1.4))
    for y, row in enumerate(rows):
        delta = row.delta
        color = VERDICT_COLORS.get(delta.verdict, "tab:gray")
        axis.errorbar(
            delta.delta,
            y,
            xerr=[[delta.delta - delta.low], [delta.high - delta.delta]],
            fmt="o",
            color=color,
            capsize=4,
        )
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_yticks(range(len(rows)), [r.label for r in rows])
    axis.set_ylim(-0.7, len(rows) - 0.3)
    axis.set_xlabel("Δ ROUGE-L vs baseline (95% CI)")
    axis.set_ylabel(table.factor)
    axis.set_title(f"{table.name}: green gain, red loss, grey within noise")
    return _save(figure, path)


def loss_chart(table: ExperimentTable, store: RunStore, path: Path) -> Path | None:
    """Training loss per step for each value of the experiment (its first finished seed)."""
    figure, axis = plt.subplots(figsize=(6, 3.2))
    drawn = False
    for row in table.rows:
        log = store.train_log(row.done_ids[0]) if row.done_ids else []
        if log:
            label = f"{row.label} (baseline)" if row.is_baseline else row.label
            axis.plot([e["step"] for e in log], [e["loss"] for e in log], label=label)
            drawn = True
    if not drawn:
        plt.close(figure)
        return None
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("training loss")
    axis.set_title(f"{table.name}: training loss")
    axis.legend(title=table.factor, fontsize="small")
    return _save(figure, path)


def _save(figure: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
