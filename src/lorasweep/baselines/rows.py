"""The API baselines a sweep folder holds, read back for the report and ``status``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lorasweep.baselines.run import BASELINES_DIR
from lorasweep.store.records import BASELINE_ADVICE, BaselineResult
from lorasweep.store.store import read_json, read_jsonl


def baseline_rows(root: Path) -> list[tuple[BaselineResult, list[dict[str, Any]]]]:
    """(record, predictions) of every API baseline in ``root``, by name; a failed one has no
    predictions.

    Raises:
        StoreError: A record or predictions file is damaged (the message says what to do).
    """
    folder = Path(root) / BASELINES_DIR
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.iterdir()):
        result = path / "result.json"
        if result.is_file():
            record = BaselineResult.from_json(read_json(result, BASELINE_ADVICE), result)
            predictions = read_jsonl(path / "predictions.jsonl", BASELINE_ADVICE)
            out.append((record, predictions if record.done else []))
    return out
