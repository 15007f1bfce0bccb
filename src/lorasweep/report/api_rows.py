"""The perspective table's rows for API baselines: paired like external predictions, with
the model, its token usage and the cost from the config's prices in the note."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lorasweep.store.records import BaselineResult

if TYPE_CHECKING:
    from lorasweep.report.perspective import PerspectiveRow
    from lorasweep.stats.scores import ExampleScores

# (name, predictions, reference, scores, kind, details) -> a paired row: tables._external
PairedRow = Callable[..., "PerspectiveRow"]


def api_row(
    record: BaselineResult,
    predictions: list[dict[str, Any]],
    reference: tuple[str, ...],
    scores: ExampleScores,
    paired: PairedRow,
) -> PerspectiveRow:
    """The row of one API baseline, paired with the LoRA baseline's examples by ``paired``;
    a failed baseline is a row without numbers whose note is its error."""
    from lorasweep.report.perspective import PerspectiveRow

    if not record.done:
        note = f"`{record.model}`: failed: {record.error or 'unknown error'}"
        return PerspectiveRow(record.name, "api", {}, None, note)
    return paired(record.name, predictions, reference, scores, "api", usage_note(record) + "; ")


def usage_note(record: BaselineResult) -> str:
    """``gpt-4o-mini`` at its API, tokens in and out, and the cost when prices are known."""
    usage = record.usage
    note = f"`{record.model}` at {record.base_url}"
    if usage.get("prompt_tokens") or usage.get("completion_tokens"):
        prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        note += f", {prompt:,} prompt + {completion:,} completion tokens"
    if record.cost_usd is not None:
        note += f", ${record.cost_usd:.4f}"
    return note
