"""Thin matplotlib charts over the report's tables; the numbers are computed in ``tables``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, safe on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402

from lorasweep.report.tables import PRIMARY, ExperimentTable  # noqa: E402
from lorasweep.store.store import RunStore  # noqa: E402


def experiment_chart(table: ExperimentTable, path: Path) -> Path | None:
    """ROUGE-L per value, the baseline's bar highlighted."""
    rows = [r for r in table.rows if r.metrics]
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(max(4.0, 1.2 * len(rows) + 2), 3.2))
    colors = ["tab:orange" if r.is_baseline else "tab:blue" for r in rows]
    bars = axis.bar([r.label for r in rows], [r.metrics[PRIMARY] for r in rows], color=colors)
    axis.bar_label(bars, fmt="%.1f", padding=2)
    axis.set_xlabel(table.factor)
    axis.set_ylabel("ROUGE-L")
    axis.set_title(f"{table.name} (orange: baseline)")
    axis.margins(y=0.15)
    return _save(figure, path)


def loss_chart(table: ExperimentTable, store: RunStore, path: Path) -> Path | None:
    """Training loss per step for each value of the experiment."""
    figure, axis = plt.subplots(figsize=(6, 3.2))
    drawn = False
    for row in table.rows:
        log = store.train_log(row.run_id)
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
