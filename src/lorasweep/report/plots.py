"""Thin matplotlib charts over the report's tables; the numbers are computed in ``tables``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, safe on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

from lorasweep.metrics.scoring import Scoring  # noqa: E402
from lorasweep.report.pareto import COST_NAMES, Tradeoff  # noqa: E402
from lorasweep.report.tables import ExperimentTable  # noqa: E402
from lorasweep.stats.bootstrap import GAIN, LOSS  # noqa: E402
from lorasweep.store.store import RunStore  # noqa: E402

VERDICT_COLORS = {GAIN: "tab:green", LOSS: "tab:red"}  # within noise: grey


def experiment_chart(table: ExperimentTable, path: Path, scoring: Scoring) -> Path | None:
    """The primary key per value with its 95% bootstrap interval, the baseline highlighted."""
    rows = [r for r in table.rows if r.scored]
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(max(4.0, 1.2 * len(rows) + 2), 3.2))
    colors = ["tab:orange" if r.is_baseline else "tab:blue" for r in rows]
    heights = [r.metrics[scoring.primary] for r in rows]
    errors = [
        [h - r.interval.low if r.interval else 0 for h, r in zip(heights, rows, strict=True)],
        [r.interval.high - h if r.interval else 0 for h, r in zip(heights, rows, strict=True)],
    ]
    bars = axis.bar([r.label for r in rows], heights, color=colors, yerr=errors, capsize=4)
    axis.bar_label(bars, fmt="%.1f", padding=2, label_type="center", color="white")
    axis.set_xlabel(table.factor)
    axis.set_ylabel(scoring.label(scoring.primary))
    axis.set_title(f"{table.name} (orange: baseline; bars: 95% CI of the mean)")
    axis.margins(y=0.15)
    return save_figure(figure, path)


def delta_chart(table: ExperimentTable, path: Path, scoring: Scoring) -> Path | None:
    """The primary key's delta against the baseline per value with its paired 95% interval."""
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
    axis.set_xlabel(f"Δ {scoring.label(scoring.primary)} vs baseline (95% CI)")
    axis.set_ylabel(table.factor)
    axis.set_title(f"{table.name}: green gain, red loss, grey within noise")
    return save_figure(figure, path)


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
    return save_figure(figure, path)


def tradeoff_chart(tradeoffs: list[Tradeoff], path: Path, scoring: Scoring) -> Path | None:
    """One panel per cost: the primary key against it, the Pareto front joined and labelled."""
    panels = [t for t in tradeoffs if t.points]
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for axis, panel in zip(axes[0], panels, strict=True):
        inner = [p for p in panel.points if not p.on_front]
        axis.scatter([p.cost for p in inner], [p.quality for p in inner], color="tab:gray")
        front = panel.front
        axis.plot([p.cost for p in front], [p.quality for p in front], "o-", color="tab:blue")
        for point in panel.points:
            axis.annotate(point.label, (point.cost, point.quality), fontsize="x-small",
                          xytext=(3, 3), textcoords="offset points")  # fmt: skip
        if panel.cost_key == "trainable_params" and len({p.cost for p in panel.points}) > 1:
            axis.set_xscale("log")  # ranks and target sets grow parameters geometrically
            axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
            axis.xaxis.set_minor_formatter(ticker.NullFormatter())
        axis.set_xlabel(COST_NAMES[panel.cost_key])
        axis.set_ylabel(scoring.label(panel.quality_key))
        axis.margins(x=0.15, y=0.15)
    better = "up" if scoring.direction(scoring.primary) == "higher" else "down"
    figure.suptitle(
        f"{scoring.label(scoring.primary)} against cost "
        f"(blue: Pareto front; {better} and left is better)"
    )
    return save_figure(figure, path)


def save_figure(figure: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
