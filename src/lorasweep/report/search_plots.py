"""The search's chart: the primary key against each parameter. Thin: the points are computed
as data in ``report.search`` (``SearchTable.points``), which the tests check."""

from __future__ import annotations

import json
from pathlib import Path

from lorasweep.report.plots import plt, save_figure
from lorasweep.report.search import SearchTable, param_label


def chart(table: SearchTable | None, path: Path) -> Path | None:
    """The primary key against each parameter, one panel each, the best trial orange, the
    baseline's score a dashed line; a log-scale range gets a log axis."""
    if table is None or not any(table.points.values()):
        return None
    scoring = table.scoring
    names = [n for n in table.parameters if table.points.get(n)]
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    baseline = table.baseline.metrics.get(scoring.primary) if table.baseline else None
    for axis, name in zip(axes[0], names, strict=True):
        points = table.points[name]
        categorical = "CategoricalDistribution" in table.distributions.get(name, "")
        if categorical:  # every choice on the axis, in the config's order, tried or not
            choices = json.loads(table.distributions[name])["attributes"]["choices"]
            order = list(
                dict.fromkeys([*map(param_label, choices), *(param_label(p.value) for p in points)])
            )
            xs = [order.index(param_label(p.value)) for p in points]
            axis.set_xticks(range(len(order)), order)
        else:
            xs = [p.value for p in points]
            if '"log": true' in table.distributions.get(name, ""):
                axis.set_xscale("log")
        for x, p in zip(xs, points, strict=True):
            axis.errorbar(x, p.score, yerr=[[p.score - p.low], [p.high - p.score]], fmt="o",
                          color="tab:orange" if p.is_best else "tab:blue", capsize=3)  # fmt: skip
            axis.annotate(str(p.trial), (x, p.score), fontsize="x-small", xytext=(4, 2),
                          textcoords="offset points")  # fmt: skip
        if baseline is not None:
            axis.axhline(baseline, color="gray", linestyle="--", linewidth=0.8)
        axis.set_xlabel(name)
        axis.set_ylabel(scoring.label(scoring.primary))
        axis.margins(x=0.15, y=0.15)
    figure.suptitle(
        f"{scoring.label(scoring.primary)} per trial against each parameter "
        "(orange: best; dashed: baseline; bars: 95% CI)"
    )
    return save_figure(figure, path)
