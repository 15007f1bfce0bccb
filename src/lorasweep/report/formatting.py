"""How the report writes numbers: scores, deltas with intervals, counts and sizes."""

from __future__ import annotations

from lorasweep.report.rows import Row
from lorasweep.stats.bootstrap import Delta


def score_cell(row: Row, key: str) -> str:
    if key not in row.metrics:
        return "—"
    text = f"{row.metrics[key]:.2f}"
    return f"{text} ± {row.spread[key]:.2f}" if key in row.spread else text


def delta_cell(delta: Delta | None) -> str:
    if delta is None:
        return "—"
    return f"{delta.delta:+.2f} [{delta.low:+.2f}, {delta.high:+.2f}]"


def params_cell(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None else ""


def bytes_cell(value: float | None) -> str:
    """Bytes in binary units: 1.5 MiB, 2.0 GiB."""
    if value is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""  # unreachable: GiB ends the loop


def count_cell(value: int | None) -> str:
    return str(value) if value is not None else "—"


def bold(text: str, bold: bool) -> str:
    return f"**{text}**" if bold else text


def number_cell(value: float | None, spec: str = ".1f") -> str:
    return format(value, spec) if value is not None else ""
