"""ROUGE with Google's ``rouge-score`` package: per-example F-measures in points (x100).

ROUGE-Lsum splits texts into sentences on newlines only, as ``rouge-score`` does by default (no
nltk sentence splitter): summaries here are one line, so for them ROUGE-Lsum equals ROUGE-L, and
multi-line outputs (or references) are compared sentence by sentence. An example with several
references takes, per metric, the best F-measure over its references (as ``score_multi`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from statistics import fmean

from pydantic import BaseModel
from rouge_score import rouge_scorer

from lorasweep.metrics.base import Key, Metric, references_of

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")

Reference = str | list[str]  # one reference, or several (the example scores its best match)


class Rouge(Metric):
    """ROUGE-1/2/L/Lsum F-measures; stemming follows ``evaluation.use_stemmer``."""

    name = "rouge"
    keys = (
        Key("rouge1", "ROUGE-1"),
        Key("rouge2", "ROUGE-2"),
        Key("rougeL", "ROUGE-L"),
        Key("rougeLsum", "ROUGE-Lsum"),
    )
    table_keys = ("rouge1", "rouge2", "rougeL")  # ROUGE-Lsum equals ROUGE-L on one-line outputs

    def __init__(self, use_stemmer: bool = False) -> None:
        self.use_stemmer = use_stemmer
        self._scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=use_stemmer)

    @classmethod
    def from_config(cls, options: BaseModel, evaluation) -> Rouge:
        return cls(use_stemmer=evaluation.use_stemmer)

    @property
    def signature(self) -> str:
        version = metadata.version("rouge-score")
        return f"rouge:stemmer={self.use_stemmer}:rouge-score={version}"

    def describe(self) -> str:
        stemming = "with" if self.use_stemmer else "no"
        return (
            f"ROUGE F-measures in points (x100) from Google's `rouge-score`, {stemming} "
            "stemming, averaged over examples"
        )

    def score(self, prediction: str, reference: str) -> dict[str, float]:
        scores = self._scorer.score(reference, prediction)  # rouge-score takes (target, prediction)
        return {key: 100 * scores[key].fmeasure for key in ROUGE_KEYS}


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
    rouge = Rouge(use_stemmer)
    return rouge.score_all(predictions, [references_of(r) for r in references])


def mean_scores(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """The mean of each ROUGE key over examples (the number papers report).

    Keys missing from some rows (records written before ROUGE-Lsum existed) are left out.
    """
    keys = [key for key in ROUGE_KEYS if rows and all(key in row for row in rows)]
    return {key: fmean(row[key] for row in rows) for key in keys}
