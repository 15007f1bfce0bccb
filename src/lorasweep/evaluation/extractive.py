"""Extractive baselines that need no model: pick utterances (lines) of the dialogue as the summary.

They put the sweep's numbers in perspective: a fine-tuned model that does not beat "the first
three lines of the chat" has learned little. Each is scored on the sweep's own evaluation
examples, so it pairs with the runs for the significance test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

UTTERANCES = 3


def utterances(dialogue: str) -> list[str]:
    """The dialogue's non-empty lines, stripped: one utterance each."""
    return [line.strip() for line in dialogue.splitlines() if line.strip()]


def first_utterances(dialogue: str, k: int = UTTERANCES) -> str:
    """The first ``k`` utterances, one per line."""
    return "\n".join(utterances(dialogue)[:k])


def longest_utterances(dialogue: str, k: int = UTTERANCES) -> str:
    """The ``k`` longest utterances (in words; earlier wins a tie), in dialogue order."""
    lines = utterances(dialogue)
    ranked = sorted(range(len(lines)), key=lambda i: (-len(lines[i].split()), i))[:k]
    return "\n".join(lines[i] for i in sorted(ranked))


BASELINES: dict[str, Callable[[str], str]] = {
    f"first {UTTERANCES} utterances": first_utterances,
    f"{UTTERANCES} longest utterances": longest_utterances,
}


def extractive_predictions(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each extractive baseline's predictions for ``rows``, to be scored like a run's.

    Args:
        rows: A run's ``predictions.jsonl`` rows (``id``, ``input`` and ``reference`` are used).

    Returns:
        Baseline name -> rows with id, input, reference and prediction.
    """
    return {
        name: [
            {
                "id": row.get("id"),
                "input": row["input"],
                "reference": row["reference"],
                "prediction": pick(str(row["input"])),
            }
            for row in rows
        ]
        for name, pick in BASELINES.items()
    }
