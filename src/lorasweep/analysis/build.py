"""Turn a study's prediction files into a run store, so the sweep report applies unchanged.

Every file becomes a finished run (``runs/<id>/result.json`` with ``predictions.jsonl`` scored
by the study's metrics), the study's experiments become the plan, and ``sweep.yaml`` records
the metrics and where the numbers came from. Every file is paired with the baseline's examples
(by id, else by input text) and reordered to them; the report then compares like with like,
exactly as for runs lorasweep trained. The folder is built aside and moved into place whole.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorasweep.analysis.study import EVALUATION_KEYS, Study, StudyCost, resolve
from lorasweep.config.plan import value_label
from lorasweep.errors import UserError
from lorasweep.external import Fields, read_predictions
from lorasweep.metrics.registry import build_scoring
from lorasweep.report.markdown import write_report
from lorasweep.stats.pairing import pair_examples
from lorasweep.store.records import (
    PlannedConfirmation,
    PlannedExperiment,
    PlannedRow,
    PlannedUnit,
    PlanRecord,
    RunResult,
    Status,
    UnitKind,
)
from lorasweep.store.store import RunStore, replace_dir, write_jsonl, write_yaml
from lorasweep.store.sweep_file import SWEEP

ANALYSIS = "analysis"  # sweep.yaml's section that marks a store built from a study
NO_ZERO_SHOT = "base-none"  # the plan's zero-shot id when the study has none


@dataclass
class _File:
    """One predictions file of the study, and the run it becomes."""

    field: str
    path: Path
    labels: list[str] = field(default_factory=list)
    cost: StudyCost = field(default_factory=StudyCost)
    kind: UnitKind = UnitKind.TRAIN

    @property
    def run_id(self) -> str:
        prefix = "base" if self.kind is UnitKind.ZERO_SHOT else "run"
        digest = hashlib.sha256(str(self.path).encode() + self.path.read_bytes())
        return f"{prefix}-{digest.hexdigest()[:12]}"


def analyze(study: Study, study_file: Path, out: Path) -> Path:
    """Score the study's files into a run store at ``out`` and write its report.

    Returns:
        The report's path.

    Raises:
        UserError: A file cannot be read, or does not hold the baseline's examples.
    """
    files = _files(study, study_file)
    fields = Fields(study.fields.prediction, study.fields.reference, study.fields.id,
                    study.fields.input)  # fmt: skip
    baseline = files[study.baseline.predictions]
    reference_rows = _keyed(read_predictions(baseline.path, fields), baseline)
    aligned = {baseline.path: (reference_rows, None)}
    for file in files.values():
        if file is not baseline:
            aligned[file.path] = _aligned(read_predictions(file.path, fields), reference_rows, file)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-{os.getpid()}-", dir=out.parent))
    try:
        store = RunStore(staging)
        scoring = build_scoring(study.evaluation)
        for file in files.values():
            rows, _ = aligned[file.path]
            scored = scoring.score(rows, rescore=True)  # a file's own score fields are not used
            write_jsonl(store.run_dir(file.run_id) / "predictions.jsonl", scored.rows)
            store.write_result(_result(file, study_file, scoring.headline(scored.rows)))
        store.write_plan(_plan(study, files))
        paired_by = sorted({by for _, by in aligned.values() if by})
        write_yaml(staging / SWEEP, _sweep(study, study_file, len(reference_rows), paired_by))
        write_report(store)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_dir(staging, out)
    return out / "report" / "report.md"


def _files(study: Study, study_file: Path) -> dict[str, _File]:
    """Predictions path as written -> its run; a file named twice serves both labels."""
    files: dict[str, _File] = {}

    def add(field: str, name: str, label: str, cost: StudyCost, kind=UnitKind.TRAIN) -> None:
        path = resolve(study_file, name).resolve()
        file = files.setdefault(name, _File(field, path, cost=cost, kind=kind))
        file.labels.append(label)

    add("baseline.predictions", study.baseline.predictions, "baseline", study.baseline.cost)
    for i, experiment in enumerate(study.experiments):
        for j, value in enumerate(experiment.values):
            if value.baseline:
                files[study.baseline.predictions].labels.append(f"{experiment.name}={value.label}")
            else:
                add(f"experiments[{i}].values[{j}].predictions", value.predictions,
                    f"{experiment.name}={value.label}", value.cost)  # fmt: skip
    if study.confirmation is not None:
        add("confirmation.predictions", study.confirmation.predictions, "confirmation",
            study.confirmation.cost)  # fmt: skip
    if study.zero_shot is not None:
        add("zero_shot.predictions", study.zero_shot.predictions, "zero-shot",
            study.zero_shot.cost, UnitKind.ZERO_SHOT)  # fmt: skip
    return files


def _keyed(rows: list[dict[str, Any]], file: _File) -> list[dict[str, Any]]:
    """The baseline's rows, each with an id (its position when the file has none), and none
    twice: they are what every other file is paired with."""
    if pair_examples(rows, rows) is None:
        raise UserError(
            f"{file.field}: {file.path}: the examples cannot be told apart (no unique id or "
            "input field; set fields.id or fields.input)"
        )
    return [{**row, "id": row.get("id", str(i))} for i, row in enumerate(rows)]


def _aligned(
    rows: list[dict[str, Any]], reference: list[dict[str, Any]], file: _File
) -> tuple[list[dict[str, Any]], str]:
    """``rows`` reordered to the baseline's examples, with the baseline's ids."""
    plain = [{k: v for k, v in r.items() if k != "id"} for r in reference]
    pairing = pair_examples(reference, rows) or pair_examples(plain, rows)
    if pairing is None:
        raise UserError(
            f"{file.field}: {file.path} does not hold the baseline's {len(reference)} examples "
            f"({_missing(reference, rows)}); every configuration must be evaluated on them"
        )
    matched = []
    for baseline_row, i in zip(reference, pairing.indices, strict=True):
        row = {**rows[i], "id": baseline_row["id"]}
        if "input" in baseline_row:
            row["input"] = baseline_row["input"]
        matched.append(row)
    return matched, pairing.by


def _missing(reference: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    """How the file falls short, by the key it shares with the baseline."""
    for key in ("id", "input"):
        if all(key in r for r in rows) and all(key in r for r in reference):
            theirs = {" ".join(str(r[key]).split()) for r in rows}
            gone = [r[key] for r in reference if " ".join(str(r[key]).split()) not in theirs]
            first = str(gone[0])[:40] if gone else ""
            return f"{len(gone)} missing by {key}, first {first!r}"
    return "no id or input field shared with the baseline's file"


def _result(file: _File, study_file: Path, metrics: dict[str, float]) -> RunResult:
    cost = file.cost.model_dump(exclude_none=True)
    timings = {k: cost.pop(k) for k in ("train_s", "eval_s") if k in cost}
    return RunResult(
        run_id=file.run_id,
        kind=file.kind,
        status=Status.DONE,
        labels=tuple(file.labels),
        config={ANALYSIS: {"study": str(study_file.resolve()), "predictions": str(file.path)}},
        metrics=metrics,
        timings=timings,
        efficiency=cost,
    )


def _plan(study: Study, files: dict[str, _File]) -> PlanRecord:
    baseline = files[study.baseline.predictions].run_id
    experiments = []
    for experiment in study.experiments:
        rows = []
        for value in experiment.values:
            run_id = baseline if value.baseline else files[value.predictions].run_id
            rows.append(PlannedRow(value.label, (run_id,), value.baseline))
        experiments.append(PlannedExperiment(experiment.name, experiment.factor, tuple(rows)))
    confirmation = None
    if study.confirmation is not None:
        values = study.confirmation.values
        label = " + ".join(
            f"{e.name}={value_label(values[e.name])}" for e in study.experiments if e.name in values
        )
        confirmation = PlannedConfirmation((files[study.confirmation.predictions].run_id,), label)
    zero_shot = files[study.zero_shot.predictions].run_id if study.zero_shot else NO_ZERO_SHOT
    runs = tuple(
        PlannedUnit(f.run_id, UnitKind.TRAIN, tuple(f.labels))
        for f in files.values()
        if f.kind is UnitKind.TRAIN
    )
    return PlanRecord(study.name, (baseline,), zero_shot, (), runs, tuple(experiments),
                      confirmation)  # fmt: skip


def _sweep(study: Study, study_file: Path, examples: int, paired_by: list[str]) -> dict:
    evaluation = study.evaluation.model_dump(mode="json", include=set(EVALUATION_KEYS))
    return {
        "name": study.name,
        "model": {"name": study.model},
        "data": {"source": study.data},
        "evaluation": {**evaluation, "size": examples},
        "reported": [r.model_dump(mode="json") for r in study.reported],
        ANALYSIS: {
            "study": str(study_file.resolve()),
            "baseline": study.baseline.label,
            "examples": examples,
            "paired_by": paired_by,
        },
    }
