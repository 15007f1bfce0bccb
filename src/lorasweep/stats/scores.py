"""Per-example scores of a sweep's runs (and of other prediction sets), aligned and compared.

A source is a run id, whose scores are read from its ``predictions.jsonl``, or a name under
which rows were added (extractive baselines, external files). Comparisons pair the examples
of two sources and bootstrap the difference of their means.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lorasweep.metrics.rouge import DIRECTIONS, ROUGE_KEYS
from lorasweep.stats.bootstrap import Delta, Interval, mean_intervals, paired_bootstraps
from lorasweep.stats.pairing import pair_examples
from lorasweep.store.store import RunStore


class ExampleScores:
    """Per-example scores by source (a run id, or a name for extractive and external rows).

    Args:
        store: Where run ids' ``predictions.jsonl`` are read from.
        finished: The run ids that finished; only they take part in comparisons.
    """

    def __init__(self, store: RunStore, finished: set[str]) -> None:
        self.store = store
        self.finished = set(finished)  # sources whose scores are complete
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._compared: dict[tuple[tuple[str, ...], tuple[str, ...]], dict[str, Delta]] = {}

    def add(self, source: str, rows: list[dict[str, Any]]) -> None:
        self._rows[source] = rows
        self.finished.add(source)

    def rows(self, source: str) -> list[dict[str, Any]]:
        if source not in self._rows:
            self._rows[source] = self.store.predictions(source)
        return self._rows[source]

    def matrices(self, sources: list[str], reference: str) -> dict[str, np.ndarray] | None:
        """Metric -> (len(sources), examples) scores on ``reference``'s examples, in its order.

        Only metrics every row of every source carries are returned (old records have no
        ROUGE-Lsum); None when some source does not hold all of ``reference``'s examples.
        """
        anchor = self.rows(reference)
        aligned = []
        for source in sources:
            rows = self.rows(source)
            pairing = pair_examples(anchor, rows)
            if pairing is None:
                return None
            aligned.append([rows[i] for i in pairing.indices])
        keys = [k for k in ROUGE_KEYS if all(k in r for rows in aligned for r in rows)]
        return {k: np.array([[r[k] for r in rows] for rows in aligned]) for k in keys}

    def compare(self, reference: tuple[str, ...], other: tuple[str, ...]) -> dict[str, Delta]:
        """Paired bootstrap of ``other - reference`` over their per-seed sources.

        Seeds are paired by position (seed i with seed i), and a pair counts when both of its
        runs finished. A single source on one side (the zero-shot evaluation, an external file)
        is paired with every seed of the other.
        """
        key = (reference, other)
        if key not in self._compared:
            self._compared[key] = self._compare(reference, other)
        return self._compared[key]

    def _compare(self, reference: tuple[str, ...], other: tuple[str, ...]) -> dict[str, Delta]:
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
        return paired_bootstraps(a, b, DIRECTIONS)

    def interval(self, sources: tuple[str, ...], metric: str) -> Interval | None:
        """The mean of ``metric`` over the sources (seeds) and examples, with its interval."""
        if not sources:
            return None
        scores = self.matrices(list(sources), sources[0])
        if not scores or metric not in scores:
            return None
        return mean_intervals({metric: scores[metric]})[metric]
