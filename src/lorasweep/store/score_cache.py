"""Scores computed after a run was evaluated: a metric added to the config, or ``--rescore``.

``SWEEP_DIR/scores/<key>.jsonl`` holds one metric's per-example scores for one set of texts,
keyed by a hash of the metric's signature and of the predictions and references it scored, so a
stored entry is only ever read for the same metric on the same texts. The folder is derived
data: deleting it costs a re-scoring, nothing else. Run folders are never edited.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lorasweep.store.store import read_jsonl, write_jsonl

SCORES = "scores"


class ScoreCache:
    """Per-example scores of a sweep folder's metrics, by signature and texts."""

    def __init__(self, root: str | Path) -> None:
        self.folder = Path(root) / SCORES

    def _path(self, signature: str, predictions: list[str], references: list[list[str]]) -> Path:
        texts = json.dumps([signature, predictions, references], ensure_ascii=False)
        return self.folder / f"{hashlib.sha256(texts.encode()).hexdigest()[:24]}.jsonl"

    def get(
        self, signature: str, predictions: list[str], references: list[list[str]]
    ) -> list[dict[str, float]] | None:
        path = self._path(signature, predictions, references)
        try:
            rows = read_jsonl(path)
        except (OSError, ValueError):  # damaged: score again
            return None
        return rows if rows and len(rows) == len(predictions) else None

    def put(
        self,
        signature: str,
        predictions: list[str],
        references: list[list[str]],
        scores: list[dict[str, float]],
    ) -> None:
        write_jsonl(self._path(signature, predictions, references), scores)
