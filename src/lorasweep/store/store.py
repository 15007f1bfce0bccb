"""The run store: one folder per sweep, one per adapter and per evaluation, written atomically.

Layout::

    SWEEP_DIR/
      sweep.yaml            the validated sweep config, every default filled in
      plan.json             the units, the experiments' rows, the follow-ups (records.PlanRecord)
      adapters/<adapter_id>/  one trained adapter, keyed by what shapes its training
        config.yaml         its resolved training config (its hash is the folder name)
        train_log.jsonl     loss and learning rate per optimizer step
        adapter/            the PEFT adapter (PeftModel.from_pretrained loads it)
        checkpoint.pt       resumable training state, while training is unfinished
        adapter.json        written last: training time, parameters, tokens (AdapterRecord)
      runs/<run_id>/        one evaluation: run-<hash> (an adapter with the evaluation and
                            generation settings), base-<hash> (zero-shot), test-<hash>
        config.yaml         the unit's resolved config (its hash is the folder name)
        predictions.jsonl   id, input, reference, prediction and per-example ROUGE
        result.json         written last: status, metrics, timings, environment (RunResult)
      report/               report.md and its plots

An adapter is done once its ``adapter.json`` exists, a unit once its ``result.json`` says so;
neither file is edited afterwards. Changing only generation or evaluation settings gives new
run ids over the same adapters: they are evaluated again, not retrained.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from lorasweep.store.records import AdapterRecord, PlanRecord, RunResult, Status, StoreError

RESULT, ADAPTER_RECORD, PLAN = "result.json", "adapter.json", "plan.json"
CHECKPOINT = "checkpoint.pt"


class RunStore:
    """Read and write one sweep's folder; the only code that knows its file names.

    Args:
        root: The sweep folder; created on the first write.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def adapter_dir(self, adapter_id: str) -> Path:
        return self.root / "adapters" / adapter_id

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def is_sweep(self) -> bool:
        """Whether the folder holds a sweep (a plan.json), whatever its state."""
        return (self.root / PLAN).is_file()

    def result(self, run_id: str) -> RunResult | None:
        """The unit's result record, or None while it has none."""
        path = self.run_dir(run_id) / RESULT
        return RunResult.from_json(_read_json(path, _UNIT_ADVICE), path) if path.is_file() else None

    def status(self, run_id: str) -> Status:
        result = self.result(run_id)
        return result.status if result else Status.PLANNED

    def write_result(self, result: RunResult) -> None:
        write_json(self.run_dir(result.run_id) / RESULT, result.to_json())

    def adapter(self, adapter_id: str) -> AdapterRecord | None:
        """The adapter's record once it is trained and saved, else None."""
        path = self.adapter_dir(adapter_id) / ADAPTER_RECORD
        if not path.is_file():
            return None
        return AdapterRecord.from_json(_read_json(path, _ADAPTER_ADVICE), path)

    def write_adapter(self, record: AdapterRecord) -> None:
        write_json(self.adapter_dir(record.adapter_id) / ADAPTER_RECORD, record.to_json())

    def predictions(self, run_id: str) -> list[dict[str, Any]]:
        return read_jsonl(self.run_dir(run_id) / "predictions.jsonl")

    def train_log(self, run_id: str) -> list[dict[str, Any]]:
        """The loss curve of the adapter a run evaluated (empty for none)."""
        result = self.result(run_id)
        if result is None or result.adapter_id is None:
            return []
        return read_jsonl(self.adapter_dir(result.adapter_id) / "train_log.jsonl")

    def plan(self) -> PlanRecord:
        path = self.root / PLAN
        if not path.is_file():
            raise StoreError(f"{self.root} is not a sweep folder (no plan.json)")
        return PlanRecord.from_json(_read_json(path, _PLAN_ADVICE), path)

    def write_plan(self, plan: PlanRecord) -> None:
        write_json(self.root / PLAN, plan.to_json())

    def files(self, folder: Path, skip: Iterable[str] = ()) -> dict[str, bytes]:
        """The files below ``folder`` as {path relative to the store: bytes}, for shipping a
        unit's inputs or outputs between machines; ``skip`` names files to leave out."""
        skipped = set(skip)
        return {
            path.relative_to(self.root).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name not in skipped and not path.name.startswith(".")
        }

    def write_files(self, files: Mapping[str, bytes]) -> None:
        """Write shipped files into the store, each atomically, the records last, so a unit
        reads as done only once everything it wrote is in place."""
        last = (ADAPTER_RECORD, RESULT)
        for name, data in sorted(files.items(), key=lambda item: Path(item[0]).name in last):
            target = self.root / name
            if self.root.resolve() not in target.resolve().parents:
                raise ValueError(f"refusing to write {name!r} outside the store")
            write_bytes(target, data)
        for name in files:  # a finished adapter needs its checkpoint no more
            if Path(name).name == ADAPTER_RECORD:
                (self.root / name).with_name(CHECKPOINT).unlink(missing_ok=True)


_UNIT_ADVICE = "that unit is not done: rerun the sweep to compute it again"
_ADAPTER_ADVICE = "delete that adapter folder and rerun the sweep to retrain it"
_PLAN_ADVICE = "rerun `lorasweep run` with the sweep's config to write it again"


def _read_json(path: Path, advice: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise StoreError(f"{path}: damaged (not valid JSON, perhaps cut short); {advice}") from None
    except OSError as err:
        raise StoreError(f"{path}: cannot be read ({err.strerror})") from None


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (see ``write_bytes``)."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write a file atomically: a temporary file in the same folder, fsync, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def write_yaml(path: Path, value: Any) -> None:
    write_text(path, yaml.safe_dump(value, sort_keys=False, allow_unicode=True))


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def replace_dir(staging: Path, target: Path) -> None:
    """Move a fully written folder into place, replacing any older one."""
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
