"""chrF and BLEU with ``sacrebleu``: sentence-level scores per example, corpus-level in tables.

The published chrF or BLEU of a system is a corpus statistic (n-gram counts summed over every
example, then one score), not a mean of sentence scores, so the tables show sacrebleu's corpus
score. The paired bootstrap needs a score per example: those are sacrebleu's sentence scores
(BLEU with effective order, as sacrebleu advises for single sentences). Several references are
scored together, the way sacrebleu scores multi-reference test sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sacrebleu.metrics import BLEU, CHRF

from lorasweep.metrics.base import Key, Metric


class _Sacrebleu(Metric):
    """A sacrebleu metric: ``_sentence`` scores examples, ``_corpus`` the whole set."""

    _sentence: BLEU | CHRF
    _corpus: BLEU | CHRF

    @property
    def signature(self) -> str:
        return f"{self.name}:{self._sentence.get_signature()}"

    def describe(self) -> str:
        label = self.keys[0].label
        return (
            f"{label} in points from `sacrebleu` ({self._corpus.get_signature()}), corpus-level "
            f"in the tables; its Δ and intervals are of the mean sentence-level {label}"
        )

    def score(self, prediction: str, reference: str) -> dict[str, float]:
        return self.score_references(prediction, [reference])

    def score_references(self, prediction: str, references: Sequence[str]) -> dict[str, float]:
        sentence = self._sentence.sentence_score(prediction, list(references))
        return {self.keys[0].name: sentence.score}

    def corpus(
        self, predictions: Sequence[str], references: Sequence[Sequence[str]]
    ) -> dict[str, float]:
        # sacrebleu takes one stream per reference position; a shorter list is padded with None.
        width = max(len(r) for r in references)
        streams = [[r[i] if i < len(r) else None for r in references] for i in range(width)]
        return {self.keys[0].name: self._corpus.corpus_score(list(predictions), streams).score}


class ChrfOptions(BaseModel):
    """chrF's settings (sacrebleu's defaults); ``word_order: 2`` is chrF++."""

    model_config = ConfigDict(extra="forbid")
    char_order: int = Field(default=6, ge=1, le=20)
    word_order: int = Field(default=0, ge=0, le=4)
    beta: int = Field(default=2, ge=1, le=10)
    lowercase: bool = False


class Chrf(_Sacrebleu):
    """Character n-gram F-score (chrF), in points; robust to morphology, good for translation."""

    name = "chrf"
    keys = (Key("chrf", "chrF"),)
    Options = ChrfOptions

    def __init__(self, char_order: int = 6, word_order: int = 0, beta: int = 2,
                 lowercase: bool = False) -> None:  # fmt: skip
        settings = dict(char_order=char_order, word_order=word_order, beta=beta,
                        lowercase=lowercase)  # fmt: skip
        self._sentence = self._corpus = CHRF(**settings)
        self.keys = self.keys_for(ChrfOptions(word_order=word_order))

    @classmethod
    def keys_for(cls, options: ChrfOptions) -> tuple[Key, ...]:
        return (Key("chrf", "chrF++" if options.word_order else "chrF"),)


class BleuOptions(BaseModel):
    """BLEU's settings (sacrebleu's defaults); ``tokenize`` as sacrebleu names its tokenizers."""

    model_config = ConfigDict(extra="forbid")
    tokenize: Literal["13a", "intl", "char", "zh", "none"] = "13a"
    lowercase: bool = False


class Bleu(_Sacrebleu):
    """BLEU, in points (sacrebleu's defaults: 13a tokenization, exponential smoothing)."""

    name = "bleu"
    keys = (Key("bleu", "BLEU"),)
    Options = BleuOptions

    def __init__(self, tokenize: str = "13a", lowercase: bool = False) -> None:
        self._sentence = BLEU(tokenize=tokenize, lowercase=lowercase, effective_order=True)
        self._corpus = BLEU(tokenize=tokenize, lowercase=lowercase)
