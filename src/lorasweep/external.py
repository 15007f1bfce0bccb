"""Score predictions made elsewhere (an API model, another tool) and add them to a sweep.

A predictions file is JSONL, one example a line, with a prediction and a reference (a text, or a
list of texts for several references), and optionally an id or the input text, which pair the
examples with a sweep's for the significance test. ``lorasweep score`` is the command.

Added to a sweep, a file becomes ``SWEEP_DIR/external/<name>/`` holding ``predictions.jsonl``
(with per-example scores of the sweep's metrics) and ``result.json``; the report lists it in its
perspective table, scored with the sweep's metrics as they are when it is built.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorasweep.errors import UserError
from lorasweep.metrics.scoring import Scoring
from lorasweep.stats.bootstrap import Delta, Interval, mean_intervals, paired_bootstraps
from lorasweep.stats.pairing import pair_examples
from lorasweep.store.records import StoreError
from lorasweep.store.store import (
    RunStore,
    read_json,
    read_jsonl,
    result_files,
    write_json,
    write_jsonl,
)

EXTERNAL_DIR = "external"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Fields:
    """Which JSON fields hold what; ``id`` and ``input`` are optional in the file."""

    prediction: str = "prediction"
    reference: str = "reference"
    id: str = "id"
    input: str = "input"


@dataclass(frozen=True)
class ScoredFile:
    """One predictions file, scored."""

    name: str
    source: Path
    rows: list[dict[str, Any]]  # id / input when present, reference, prediction, scores
    metrics: dict[str, float]
    intervals: dict[str, Interval] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # metric -> why it is left out


def prediction_files(path: Path) -> list[Path]:
    """``path`` itself, or the ``.jsonl`` files of a directory, sorted by name."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".jsonl" and p.is_file())
        if not files:
            raise UserError(f"{path}: no .jsonl files in this directory")
        return files
    if not path.is_file():
        raise UserError(f"{path}: no such file or directory")
    return [path]


def read_predictions(path: Path, fields: Fields = Fields()) -> list[dict[str, Any]]:
    """The examples of a predictions file, with lorasweep's field names.

    Raises:
        UserError: One line naming the file, the line and the field that is wrong.
    """
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise UserError(f"{where}: expected a JSON object, got {type(record).__name__}")
        row = {
            "prediction": _text(record, fields.prediction, where),
            "reference": _reference(record, fields.reference, where),
        }
        for ours, theirs in (("id", fields.id), ("input", fields.input)):
            if record.get(theirs) is not None:
                row[ours] = record[theirs] if ours == "input" else str(record[theirs])
        rows.append(row)
    if not rows:
        raise UserError(f"{path}: no predictions (the file is empty)")
    return rows


def _text(record: dict[str, Any], name: str, where: str) -> str:
    if name not in record:
        raise UserError(f"{where}: no field {name!r} (fields: {', '.join(record) or 'none'})")
    value = record[name]
    if value is None:
        return ""  # an API that returned nothing: an empty prediction, scored as 0
    if not isinstance(value, str):
        raise UserError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    return value


def _reference(record: dict[str, Any], name: str, where: str) -> str | list[str]:
    value = record.get(name)
    if isinstance(value, list):
        if not value or not all(isinstance(v, str) for v in value):
            raise UserError(f"{where}: field {name!r} must be a string or a list of strings")
        return value
    return _text(record, name, where)


def score_file(
    path: Path, name: str | None = None, fields: Fields = Fields(), scoring: Scoring | None = None
) -> ScoredFile:
    """Read and score one predictions file: per-example scores, each key's number (corpus-level
    where the metric reports one) and the 95% interval of its mean (default metric: ROUGE)."""
    from lorasweep.config.schema import EvaluationConfig
    from lorasweep.metrics.registry import build_scoring

    name = name or path.stem
    if not _NAME.match(name):
        raise UserError(f"--name: {name!r} cannot name a row; use letters, digits and _ . + - only")
    scoring = scoring or build_scoring(EvaluationConfig())
    rows = read_predictions(path, fields)
    scored = scoring.score(rows, rescore=True)  # a file's own score fields are not trusted
    keys = [k for k in scoring.names if all(k in row for row in scored.rows)]
    intervals = {k: mean_intervals({k: [r[k] for r in scored.rows]})[k] for k in keys}
    metrics = scoring.headline(scored.rows)
    return ScoredFile(name, path, scored.rows, metrics, intervals, scored.failures)


def compare_files(
    reference: ScoredFile, other: ScoredFile, scoring: Scoring
) -> dict[str, Delta] | None:
    """Paired bootstrap of ``other - reference`` per key on ``reference``'s examples.

    None when ``other`` does not hold every one of ``reference``'s examples (matched by id,
    else by input text).
    """
    pairing = pair_examples(reference.rows, other.rows)
    if pairing is None:
        return None
    matched = [other.rows[i] for i in pairing.indices]
    deltas = {}
    for keys in scoring.by_metric([k for k in reference.intervals if k in other.intervals]):
        deltas.update(
            paired_bootstraps(
                {k: [r[k] for r in reference.rows] for k in keys},
                {k: [r[k] for r in matched] for k in keys},
                scoring.directions,
            )
        )
    return deltas


def add_to_sweep(store: RunStore, scored: ScoredFile, use_stemmer: bool) -> Path:
    """Store a scored file as an external row of the sweep; a row of the same name is replaced."""
    folder = store.root / EXTERNAL_DIR / scored.name
    write_jsonl(folder / "predictions.jsonl", scored.rows)
    write_json(
        folder / "result.json",
        {
            "name": scored.name,
            "kind": "external",
            "status": "done",
            "source": str(scored.source.resolve()),
            "examples": len(scored.rows),
            "use_stemmer": use_stemmer,
            "metrics": scored.metrics,
        },
    )  # last: like a run's, its presence marks the row complete
    return folder


def external_rows(store: RunStore) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(result record, predictions) of every external row added to the sweep, sorted by name."""
    out = []
    for result in result_files(store.root / EXTERNAL_DIR):
        advice = f"score that file again with `lorasweep score FILE --into {store.root}`"
        record = read_json(result, advice)
        if not (isinstance(record, dict) and isinstance(record.get("name"), str)
                and isinstance(record.get("metrics"), dict)):  # fmt: skip
            raise StoreError(f"{result}: damaged (no name or metrics)", advice)
        out.append((record, read_jsonl(result.parent / "predictions.jsonl", advice)))
    return out
