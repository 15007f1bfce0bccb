"""Match the examples of two prediction files, so that their scores can be compared pairwise.

Examples are matched by ``id`` when both sides have unique ids, else by the input text
(whitespace-normalised). The other side may hold more examples than the reference side; it must
hold every one of the reference's examples, or there is no pairing at all (a paired test on a
subset would compare numbers other than the ones in the table).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Pairing:
    """For each reference example, the index of the same example on the other side."""

    indices: list[int]
    by: str  # "id" or "input"


def _keys(rows: Sequence[dict[str, Any]], field: str) -> list[str] | None:
    values = [row.get(field) for row in rows]
    if any(v is None for v in values):
        return None
    keys = [" ".join(str(v).split()) if field == "input" else str(v) for v in values]
    return keys if len(set(keys)) == len(keys) else None


def pair_examples(
    reference: Sequence[dict[str, Any]], other: Sequence[dict[str, Any]]
) -> Pairing | None:
    """Where each of ``reference``'s examples sits in ``other``, or None when they do not match.

    Args:
        reference: Rows with ``id`` and/or ``input`` (a run's ``predictions.jsonl``).
        other: Rows of the other side, in any order.
    """
    if not reference or not other:
        return None
    for field in ("id", "input"):
        mine, theirs = _keys(reference, field), _keys(other, field)
        if mine is None or theirs is None:
            continue
        position = {key: i for i, key in enumerate(theirs)}
        if all(key in position for key in mine):
            return Pairing([position[key] for key in mine], field)
    return None
