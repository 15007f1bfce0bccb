"""The API baselines a sweep folder holds, read back for the report and ``status``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lorasweep.baselines.run import BASELINES_DIR
from lorasweep.store.records import BASELINE_ADVICE, BaselineResult
from lorasweep.store.store import read_json, read_jsonl, result_files


def baseline_rows(root: Path) -> list[tuple[BaselineResult, list[dict[str, Any]]]]:
    """(record, predictions) of every API baseline in ``root``, by name; a failed one has no
    predictions.

    Raises:
        StoreError: A record or predictions file is damaged (the message says what to do).
    """
    out = []
    for result in result_files(Path(root) / BASELINES_DIR):
        record = BaselineResult.from_json(read_json(result, BASELINE_ADVICE), result)
        predictions = read_jsonl(result.parent / "predictions.jsonl", BASELINE_ADVICE)
        out.append((record, predictions if record.done else []))
    return out
