"""Per-example scores of a sweep's runs (and of other prediction sets), aligned and compared.

A source is a run id, whose scores are read from its ``predictions.jsonl``, or a name under
which rows were added (extractive baselines, external files). Every source is scored with the
sweep's metrics (``metrics.scoring.Scoring``): scores stored with the predictions are used as
they are, a metric added later scores the stored texts. Comparisons pair the examples of two
sources and bootstrap the difference of their means.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lorasweep.metrics.scoring import Scoring
from lorasweep.stats.bootstrap import (
    CONFIDENCE,
    Delta,
    Interval,
    mean_intervals,
    paired_bootstraps,
)
from lorasweep.stats.pairing import pair_examples
from lorasweep.store.records import RunResult
from lorasweep.store.score_cache import ScoreCache
from lorasweep.store.store import RunStore


class ExampleScores:
    """Per-example scores by source (a run id, or a name for extractive and external rows).

    Args:
        store: Where run ids' ``predictions.jsonl`` are read from, and scores computed later
            are kept (``scores/``).
        finished: The run ids that finished; only they take part in comparisons.
        scoring: The metrics and the primary key.
        rescore: Score every source's texts again, ignoring the scores stored with them.
    """

    def __init__(
        self, store: RunStore, finished: set[str], scoring: Scoring, rescore: bool = False
    ) -> None:
        self.store = store
        self.finished = set(finished)  # sources whose scores are complete
        self.scoring = scoring
        self.rescore = rescore
        self.failures: dict[str, str] = {}  # metric name -> why it is missing somewhere
        self._cache = ScoreCache(store.root)
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._compared: dict[tuple[Any, ...], dict[str, Delta]] = {}

    def add(self, source: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Score rows that are not a run's (extractive, external) under ``source``."""
        self._rows[source] = self._scored(rows)
        self.finished.add(source)
        return self._rows[source]

    def rows(self, source: str) -> list[dict[str, Any]]:
        """The source's rows with every metric's per-example scores."""
        if source not in self._rows:
            self._rows[source] = self._scored(self.store.predictions(source))
        return self._rows[source]

    def headline(self, source: str) -> dict[str, float]:
        """The source's numbers by key (corpus-level where the metric reports one)."""
        return self.scoring.headline(self.rows(source))

    def run_numbers(self, result: RunResult) -> dict[str, float]:
        """A finished run's numbers by key, from its scored predictions (the record's own means
        when its predictions are gone)."""
        numbers = self.headline(result.run_id)
        return numbers or {k: v for k, v in result.metrics.items() if k in self.scoring.names}

    def _scored(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        scored = self.scoring.score(rows, self._cache, self.rescore)
        for name, reason in scored.failures.items():
            self.failures.setdefault(name, reason)
        return scored.rows

    def matrices(self, sources: list[str], reference: str) -> dict[str, np.ndarray] | None:
        """Metric -> (len(sources), examples) scores on ``reference``'s examples, in its order.

        Only keys every row of every source carries are returned (old records have no
        ROUGE-Lsum, a metric may have failed on one source); None when some source does not
        hold all of ``reference``'s examples.
        """
        anchor = self.rows(reference)
        aligned = []
        for source in sources:
            rows = self.rows(source)
            pairing = pair_examples(anchor, rows)
            if pairing is None:
                return None
            aligned.append([rows[i] for i in pairing.indices])
        keys = [k for k in self.scoring.names if all(k in r for rows in aligned for r in rows)]
        return {k: np.array([[r[k] for r in rows] for rows in aligned]) for k in keys}

    def compare(
        self, reference: tuple[str, ...], other: tuple[str, ...], confidence: float = CONFIDENCE
    ) -> dict[str, Delta]:
        """Paired bootstrap of ``other - reference`` over their per-seed sources.

        Seeds are paired by position (seed i with seed i), and a pair counts when both of its
        runs finished. A single source on one side (the zero-shot evaluation, an external file)
        is paired with every seed of the other. ``confidence`` sets the intervals' coverage
        (wider for a family-wise correction); the resamples are the same at every coverage.
        """
        key = (reference, other, confidence)
        if key not in self._compared:
            self._compared[key] = self._compare(reference, other, confidence)
        return self._compared[key]

    def _compare(
        self, reference: tuple[str, ...], other: tuple[str, ...], confidence: float
    ) -> dict[str, Delta]:
        if len(reference) == 1 or len(other) == 1:
            pairs = [(a, b) for a in reference for b in other]
        else:
            pairs = list(zip(reference, other, strict=False))
        pairs = [(a, b) for a, b in pairs if a in self.finished and b in self.finished]
        if not pairs:
            return {}
        a = self.matrices([p[0] for p in pairs], pairs[0][0])
        b = self.matrices([p[1] for p in pairs], pairs[0][0])
        if a is None or b is None:
            return {}
        # One bootstrap per metric: a metric's keys share their resamples, and its numbers do
        # not depend on which other metrics the sweep has (the resampling is chunked by size).
        deltas = {}
        for keys in self.scoring.by_metric([k for k in a if k in b]):
            deltas.update(
                paired_bootstraps(
                    {k: a[k] for k in keys},
                    {k: b[k] for k in keys},
                    self.scoring.directions,
                    confidence=confidence,
                )
            )
        return deltas

    def intervals(self, sources: tuple[str, ...]) -> dict[str, Interval]:
        """Each key's mean over the sources (seeds) and examples, with its interval."""
        if not sources:
            return {}
        scores = self.matrices(list(sources), sources[0]) or {}
        # Each key alone, so that its interval does not depend on the other keys.
        return {k: mean_intervals({k: v})[k] for k, v in scores.items()}
