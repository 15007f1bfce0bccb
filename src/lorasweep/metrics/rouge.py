"""ROUGE with Google's ``rouge-score`` package: per-example F-measures in points (x100).

ROUGE-Lsum splits texts into sentences on newlines only, as ``rouge-score`` does by default (no
nltk sentence splitter): summaries here are one line, so for them ROUGE-Lsum equals ROUGE-L, and
multi-line outputs (or references) are compared sentence by sentence. An example with several
references takes, per metric, the best F-measure over its references (``score_multi``).
"""

from __future__ import annotations

from statistics import fmean

from rouge_score import rouge_scorer

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
# Direction of every metric lorasweep reports, declared once for tables and recommendations.
DIRECTIONS = {"rouge1": "higher", "rouge2": "higher", "rougeL": "higher", "rougeLsum": "higher"}
NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum"}

Reference = str | list[str]  # one reference, or several (the example scores its best match)


def score_examples(
    predictions: list[str], references: list[Reference], use_stemmer: bool = False
) -> list[dict[str, float]]:
    """ROUGE-1/2/L/Lsum F-measure of each prediction against its reference(s), in points.

    Args:
        predictions: Generated texts.
        references: Reference texts, in the same order; an entry may be a list of references,
            scored as the best F-measure over them, per metric.
        use_stemmer: Apply rouge-score's Porter stemmer to both sides.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=use_stemmer)
    rows = []
    for prediction, reference in zip(predictions, references, strict=True):
        if isinstance(reference, list):
            if not reference:
                raise ValueError("an example has an empty list of references")
            scores = scorer.score_multi(reference, prediction)
        else:
            scores = scorer.score(reference, prediction)  # rouge-score takes (target, prediction)
        rows.append({key: 100 * scores[key].fmeasure for key in ROUGE_KEYS})
    return rows


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each ROUGE key over examples (the number papers report).

    Keys missing from some rows (records written before ROUGE-Lsum existed) are left out.
    """
    keys = [key for key in ROUGE_KEYS if rows and all(key in row for row in rows)]
    return {key: fmean(row[key] for row in rows) for key in keys}
