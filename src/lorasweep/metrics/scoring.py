"""The sweep's metrics together: score examples, name and orient every key, pick the primary.

``Scoring`` is what the rest of lorasweep asks about metrics: the keys and their directions,
labels and table columns, the primary key that decisions rest on, per-example scores (reusing
scores already stored) and each run's headline numbers. A metric that fails is left out with
its reason; the other metrics, and the run, go on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import TYPE_CHECKING, Any

from lorasweep.metrics.base import Key, Metric, MetricError, references_of

if TYPE_CHECKING:
    from lorasweep.store.score_cache import ScoreCache


@dataclass
class Scored:
    """Per-example scores of a set of rows, and the metrics that could not score them."""

    rows: list[dict[str, Any]]  # the input rows with every metric's keys added
    failures: dict[str, str] = field(default_factory=dict)  # metric name -> why it is left out


class Scoring:
    """The configured metrics and the primary key.

    Args:
        metrics: In config order.
        primary: The key verdicts, recommendations and charts are about.
    """

    def __init__(self, metrics: Sequence[Metric], primary: str) -> None:
        self.metrics = list(metrics)
        self.primary = primary

    @property
    def keys(self) -> list[Key]:
        """Every metric's keys, in config order (a custom metric's once it has scored)."""
        return [key for metric in self.metrics for key in metric.keys]

    @property
    def names(self) -> list[str]:
        return [key.name for key in self.keys]

    @property
    def directions(self) -> dict[str, str]:
        return {key.name: key.direction for key in self.keys}

    def direction(self, key: str) -> str:
        return self.directions.get(key, "higher")

    def label(self, key: str) -> str:
        return next((k.label for k in self.keys if k.name == key), key)

    @property
    def table_keys(self) -> list[str]:
        """The keys of the experiment tables: each metric's table keys, and the primary."""
        keys = [
            k
            for metric in self.metrics
            for k in (metric.table_keys or [key.name for key in metric.keys])
        ]
        return keys if self.primary in keys else [*keys, self.primary]

    def by_metric(self, keys: Sequence[str]) -> list[list[str]]:
        """``keys`` grouped by the metric that writes them, in config order: each group is
        bootstrapped together, apart from the other metrics' keys."""
        groups = [[k.name for k in m.keys if k.name in keys] for m in self.metrics]
        return [group for group in groups if group]

    def score(
        self,
        rows: Sequence[Mapping[str, Any]],
        cache: ScoreCache | None = None,
        rescore: bool = False,
    ) -> Scored:
        """Every metric's per-example scores for rows with ``prediction`` and ``reference``.

        A metric's scores come from, in order: ``cache`` (computed earlier for the same texts
        and the same metric signature, for metrics that keep their scores); the rows
        themselves, when every row already carries one of its keys (scored when the run was
        evaluated; skipped with ``rescore``); else the metric scores the texts now, and
        ``cache`` keeps the result if the metric keeps its scores.
        """
        out = [dict(row) for row in rows]
        if not out:
            return Scored(out)
        predictions = [str(row.get("prediction") or "") for row in rows]
        failures = {}
        try:
            references = [references_of(row.get("reference", "")) for row in rows]
        except MetricError as err:
            return Scored(out, {m.name: str(err) for m in self.metrics})
        for metric in self.metrics:
            stored = [k.name for k in metric.keys if all(k.name in row for row in rows)]
            keep = cache if metric.keep_scores else None
            cached = keep.get(metric.signature, predictions, references) if keep else None
            if cached is not None:
                scores = cached
            elif stored and not rescore:
                continue
            else:
                try:
                    scores = metric.score_all(predictions, references)
                except MetricError as err:
                    failures[metric.name] = str(err)
                    continue
                if keep is not None:
                    keep.put(metric.signature, predictions, references, scores)
            for row, score in zip(out, scores, strict=True):
                row.update(score)
        return Scored(out, failures)

    def headline(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        """A set of scored rows' numbers by key: the corpus score for metrics that report one,
        else the mean over examples; keys some row lacks are left out."""
        if not rows:
            return {}
        numbers: dict[str, float] = {}
        for metric in self.metrics:
            keys = [k.name for k in metric.keys if all(k.name in row for row in rows)]
            if not keys:
                continue
            corpus = None
            if len(keys) == len(metric.keys):  # it scored these rows: ask for its corpus number
                predictions = [str(row.get("prediction") or "") for row in rows]
                references = [references_of(row.get("reference", "")) for row in rows]
                corpus = metric.corpus(predictions, references)
            for key in keys:
                numbers[key] = corpus[key] if corpus else fmean(row[key] for row in rows)
        return numbers


class FailedMetric(Metric):
    """A metric that could not be built where it runs (a custom file missing on a worker):
    it fails every set of examples with the reason, so only it is left out."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    @property
    def signature(self) -> str:
        return f"failed:{self.name}"

    def score_all(self, predictions, references) -> list[dict[str, float]]:
        raise MetricError(self.reason)
