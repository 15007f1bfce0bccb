"""The perspective table's rows for API baselines: paired like external predictions, with
the model, its token usage and the cost from the config's prices in the note."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lorasweep.store.records import BaselineResult


def api_row(
    record: BaselineResult,
    predictions: list[dict[str, Any]],
    reference: tuple[str, ...],
    scores: Any,
    paired: Callable[..., Any],
) -> Any:
    """The row of one API baseline; ``paired`` builds a paired row (``tables._external``).

    A failed baseline is a row without numbers whose note is its error.
    """
    from lorasweep.report.tables import PerspectiveRow

    if not record.done:
        return PerspectiveRow(record.name, "api", {}, None, f"`{record.model}`: failed: "
                              f"{record.error or 'unknown error'}")  # fmt: skip
    return paired(record.name, predictions, reference, scores, "api", usage_note(record) + "; ")


def usage_note(record: BaselineResult) -> str:
    """``gpt-4o-mini`` at its API, tokens in and out, and the cost when prices are known."""
    usage = record.usage
    note = f"`{record.model}` at {record.base_url}"
    if usage.get("prompt_tokens") or usage.get("completion_tokens"):
        note += (f", {usage.get('prompt_tokens', 0):,} prompt + "
                 f"{usage.get('completion_tokens', 0):,} completion tokens")  # fmt: skip
    if record.cost_usd is not None:
        note += f", ${record.cost_usd:.4f}"
    return note
