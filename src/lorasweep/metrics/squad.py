"""Exact match and token-level F1 with SQuAD's answer normalisation, in points (x100).

For short answers: extraction, classification labels, question answering. Both sides are
lowercased, stripped of punctuation and of the articles a/an/the, and whitespace-collapsed
before comparing, as the official SQuAD evaluation script does; with several references an
example takes its best match (the script's ``metric_max_over_ground_truths``). As in its v2
version, an empty prediction matches an empty reference.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from lorasweep.metrics.base import Key, Metric

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and articles, collapse whitespace (SQuAD's normalisation)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


class ExactMatch(Metric):
    """100 when the normalised prediction equals the normalised reference, else 0."""

    name = "exact_match"
    keys = (Key("exact_match", "exact match"),)

    def describe(self) -> str:
        return (
            "exact match in points (100 when equal after SQuAD's normalisation), averaged over "
            "examples"
        )

    def score(self, prediction: str, reference: str) -> dict[str, float]:
        same = normalize_answer(prediction) == normalize_answer(reference)
        return {"exact_match": 100.0 if same else 0.0}


class TokenF1(Metric):
    """The F1 of the normalised words two answers share (a bag of words, counts clipped)."""

    name = "f1"
    keys = (Key("f1", "token F1"),)

    def describe(self) -> str:
        return "token F1 in points (words after SQuAD's normalisation), averaged over examples"

    def score(self, prediction: str, reference: str) -> dict[str, float]:
        predicted, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
        if not predicted or not gold:
            return {"f1": 100.0 if predicted == gold else 0.0}
        same = sum((Counter(predicted) & Counter(gold)).values())
        if same == 0:
            return {"f1": 0.0}
        precision, recall = same / len(predicted), same / len(gold)
        return {"f1": 100 * 2 * precision * recall / (precision + recall)}
