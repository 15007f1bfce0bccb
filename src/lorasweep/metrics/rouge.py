"""ROUGE with Google's ``rouge-score`` package: per-example F-measures in points (x100)."""

from __future__ import annotations

from statistics import fmean

from rouge_score import rouge_scorer

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")
# Direction of every metric lorasweep reports, declared once for tables and recommendations.
DIRECTIONS = {"rouge1": "higher", "rouge2": "higher", "rougeL": "higher"}


def score_examples(
    predictions: list[str], references: list[str], use_stemmer: bool = False
) -> list[dict[str, float]]:
    """ROUGE-1/2/L F-measure of each prediction against its reference, in points.

    Args:
        predictions: Generated texts.
        references: Reference texts, in the same order.
        use_stemmer: Apply rouge-score's Porter stemmer to both sides.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=use_stemmer)
    rows = []
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(reference, prediction)  # rouge-score takes (target, prediction)
        rows.append({key: 100 * scores[key].fmeasure for key in ROUGE_KEYS})
    return rows


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each ROUGE key over examples (the number papers report)."""
    return {key: fmean(row[key] for row in rows) for key in ROUGE_KEYS} if rows else {}
