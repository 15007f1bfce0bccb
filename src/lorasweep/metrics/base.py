"""The metric extension point: what scores a prediction against its references.

A metric names its score keys once, with their display labels and directions (which way is
better); everything downstream (intervals, verdicts, recommendations, Pareto fronts, charts,
tables, trackers, export) reads them from here. Adding one means writing one module with one
``Metric`` subclass that overrides ``score`` and naming it in ``registry.METRICS``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from lorasweep.config.schema import EvaluationConfig

Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class Key:
    """One score a metric writes for each example.

    Attributes:
        name: The column in ``predictions.jsonl`` and the tables (``rougeL``).
        label: How the report names it (``ROUGE-L``).
        direction: ``higher`` or ``lower``: which way is better.
    """

    name: str
    label: str
    direction: Direction = "higher"


class MetricError(ValueError):
    """A metric could not score a set of examples; the message says which and why. The metric
    is left out of that evaluation, the others go on."""


class NoOptions(BaseModel):
    """Options of a metric that takes none: any key is an error."""

    model_config = ConfigDict(extra="forbid")


class Metric:
    """A metric: override ``score``; the other methods have defaults that fit most metrics.

    Scores are per example, so that two configurations can be compared with a paired bootstrap
    on the same examples. A metric whose published number is a corpus-level statistic (BLEU,
    chrF) also overrides ``corpus``: the tables show that number, while the intervals and
    verdicts rest on the per-example scores.

    Attributes:
        name: The name a config uses (``metrics: [rouge, chrf]``).
        keys: The scores it writes for each example.
        table_keys: The keys the experiment tables show (default: all of them).
        Options: Its config options (``{bertscore: {model: ./roberta}}``), checked at load time.
        keep_scores: Keep the scores it computes after a run in the sweep folder (a slow metric,
            or user code whose scores ``report --rescore`` refreshes); cheap ones score again.
    """

    name: ClassVar[str] = "metric"
    keys: tuple[Key, ...] = ()
    table_keys: tuple[str, ...] | None = None
    Options: ClassVar[type[BaseModel]] = NoOptions
    keep_scores: ClassVar[bool] = False

    @classmethod
    def from_config(cls, options: BaseModel, evaluation: EvaluationConfig) -> Metric:
        """The metric a config entry asks for, from its validated ``Options``."""
        return cls(**options.model_dump())

    @classmethod
    def keys_for(cls, options: BaseModel) -> tuple[Key, ...]:
        """The keys an entry with these options writes, known without building the metric."""
        return cls.keys

    @property
    def signature(self) -> str:
        """What identifies its scores: two metrics with the same signature give the same numbers
        for the same texts (stored scores are reused on that basis)."""
        return self.name

    @property
    def directions(self) -> dict[str, Direction]:
        return {key.name: key.direction for key in self.keys}

    def describe(self) -> str:
        """What its numbers are, for the report's opening paragraph."""
        return f"{', '.join(k.label for k in self.keys)}, averaged over examples"

    def score(self, prediction: str, reference: str) -> dict[str, float]:
        """Scores of one prediction against one reference, by key."""
        raise NotImplementedError

    def score_references(self, prediction: str, references: Sequence[str]) -> dict[str, float]:
        """Scores of one prediction against its references: the best per key by default
        (override for a metric that scores all references at once, as BLEU does)."""
        return best_of([self.score(prediction, r) for r in references], self.directions)

    def score_all(
        self, predictions: Sequence[str], references: Sequence[Sequence[str]]
    ) -> list[dict[str, float]]:
        """Every example's scores (override to batch, as a model-based metric does)."""
        return [self.score_references(p, r) for p, r in zip(predictions, references, strict=True)]

    def corpus(
        self, predictions: Sequence[str], references: Sequence[Sequence[str]]
    ) -> dict[str, float] | None:
        """The corpus-level number per key, when that is what the metric reports; None: the
        mean over examples."""
        return None


def best_of(
    scores: Sequence[Mapping[str, float]], directions: Mapping[str, str]
) -> dict[str, float]:
    """Per key, the best score over several references (``max``, or ``min`` for lower)."""
    if not scores:
        raise MetricError("an example has an empty list of references")
    keys = list(scores[0])
    pick = {k: (min if directions.get(k) == "lower" else max) for k in keys}
    return {k: pick[k](s[k] for s in scores) for k in keys}


def references_of(reference: str | Sequence[str]) -> list[str]:
    """An example's references as a list (a row holds a text, or a list of texts)."""
    if isinstance(reference, str):
        return [reference]
    references = [str(r) for r in reference]
    if not references:
        raise MetricError("an example has an empty list of references")
    return references
