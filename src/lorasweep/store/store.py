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
      sweep-id              the folder's random identity, which trackers tag their runs with

An adapter is done once its ``adapter.json`` exists, a unit once its ``result.json`` says so;
neither file is edited afterwards. Changing only generation or evaluation settings gives new
run ids over the same adapters: they are evaluated again, not retrained.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from lorasweep.store.records import (
    ADAPTER_ADVICE,
    PLAN_ADVICE,
    RESULT_ADVICE,
    AdapterRecord,
    PlanRecord,
    RunResult,
    Status,
    StoreError,
    StoreFormatError,
)

RESULT, ADAPTER_RECORD, PLAN, SWEEP = "result.json", "adapter.json", "plan.json", "sweep.yaml"
CHECKPOINT, SWEEP_ID = "checkpoint.pt", "sweep-id"


class RunStore:
    """Read and write one sweep's folder; the only code that knows its file names.

    A damaged ``result.json`` or ``adapter.json`` (cut short, a field missing) reads as work not
    done: the next run computes it again, and ``damaged`` says what was wrong, for a warning.

    Args:
        root: The sweep folder; created on the first write.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.damaged: dict[Path, StoreError] = {}  # damaged record -> its error, as last read

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
        """The unit's result record, or None while it has none or it is damaged."""
        return self._record(self.run_dir(run_id) / RESULT, RunResult.from_json, RESULT_ADVICE)

    def damage(self, run_id: str) -> StoreError | None:
        """What is wrong with the unit's ``result.json``, if it was damaged when last read."""
        return self.damaged.get(self.run_dir(run_id) / RESULT)

    def status(self, run_id: str) -> Status:
        result = self.result(run_id)
        return result.status if result else Status.PLANNED

    def write_result(self, result: RunResult) -> None:
        path = self.run_dir(result.run_id) / RESULT
        write_json(path, result.to_json())
        self.damaged.pop(path, None)

    def adapter(self, adapter_id: str) -> AdapterRecord | None:
        """The adapter's record once it is trained and saved, else None (also when damaged:
        training it again rewrites the record)."""
        path = self.adapter_dir(adapter_id) / ADAPTER_RECORD
        return self._record(path, AdapterRecord.from_json, ADAPTER_ADVICE)

    def adapter_damage(self, adapter_id: str) -> StoreError | None:
        """What is wrong with the adapter's ``adapter.json``, if it was damaged when last read."""
        return self.damaged.get(self.adapter_dir(adapter_id) / ADAPTER_RECORD)

    def _record(self, path: Path, reader: Any, advice: str) -> Any:
        if not path.is_file():
            self.damaged.pop(path, None)
            return None
        try:
            record = reader(read_json(path, advice), path)
        except StoreError as err:
            self.damaged[path] = err
            return None
        self.damaged.pop(path, None)
        return record

    def write_adapter(self, record: AdapterRecord) -> None:
        path = self.adapter_dir(record.adapter_id) / ADAPTER_RECORD
        write_json(path, record.to_json())
        self.damaged.pop(path, None)

    def predictions(self, run_id: str) -> list[dict[str, Any]]:
        advice = f"delete runs/{run_id}/result.json and rerun `lorasweep run` to compute it again"
        return read_jsonl(self.run_dir(run_id) / "predictions.jsonl", advice)

    def train_log(self, run_id: str) -> list[dict[str, Any]]:
        """The loss curve of the adapter a run evaluated (empty for none)."""
        result = self.result(run_id)
        if result is None or result.adapter_id is None:
            return []
        advice = (
            f"delete adapters/{result.adapter_id}/adapter.json and rerun `lorasweep run` "
            "to train it again"
        )
        return read_jsonl(self.adapter_dir(result.adapter_id) / "train_log.jsonl", advice)

    def plan(self) -> PlanRecord:
        path = self.root / PLAN
        if not path.is_file():
            raise StoreError(f"{self.root} is not a sweep folder (no plan.json)")
        return PlanRecord.from_json(read_json(path, PLAN_ADVICE), path)

    def check_format(self) -> StoreError | None:
        """Before a run writes here: refuse a store of another lorasweep version.

        Returns:
            The error of a damaged ``plan.json``, which the run writes again; else None.

        Raises:
            StoreFormatError: The folder holds a sweep of another store format.
        """
        if not self.is_sweep:
            return None
        try:
            self.plan()
        except StoreFormatError:
            raise
        except StoreError as err:
            return err
        return None

    def write_plan(self, plan: PlanRecord) -> None:
        write_json(self.root / PLAN, plan.to_json())

    def sweep_config(self) -> dict[str, Any]:
        """The validated sweep config the last run saved, as data ({} before the first run)."""
        path = self.root / SWEEP
        if not path.is_file():
            return {}
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            config = None
        if not isinstance(config, dict):
            raise StoreError(f"{path}: damaged (not a YAML mapping)", PLAN_ADVICE)
        return config

    def write_sweep_config(self, config: dict[str, Any]) -> None:
        write_yaml(self.root / SWEEP, config)

    def sweep_id(self) -> str:
        """This sweep folder's identity: a random id made on first use and kept in the folder.

        Trackers tag their runs with it to find them again on a rerun (and resume them rather
        than add new ones); a new sweep in the same place, after the folder was deleted, gets
        a new id and never resumes the old sweep's tracker runs.
        """
        path = self.root / SWEEP_ID
        if path.is_file():
            known = path.read_text(encoding="utf-8", errors="replace").strip()
            if re.fullmatch(r"[0-9a-f]{12}", known):
                return known
        made = uuid.uuid4().hex[:12]  # a damaged file: the trackers' runs start afresh
        write_text(path, made + "\n")
        return made

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
            self.damaged.pop(target, None)
        for name in files:  # a finished adapter needs its checkpoint no more
            if Path(name).name == ADAPTER_RECORD:
                (self.root / name).with_name(CHECKPOINT).unlink(missing_ok=True)


def open_sweep(path: str | Path, field: str = "sweep_dir") -> RunStore:
    """The store of an existing sweep folder, its plan checked.

    Raises:
        StoreError: ``path`` holds no sweep, or its ``plan.json`` is damaged or of another
            version; one line that names ``field`` or the file.
    """
    store = RunStore(path)
    if not store.is_sweep:
        raise StoreError(f"{field}: {path} is not a sweep folder (no plan.json)")
    store.plan()
    return store


def result_files(folder: Path) -> list[Path]:
    """The ``result.json`` of each subfolder of ``folder`` that has one, by subfolder name
    (external rows, API baselines); none when ``folder`` does not exist."""
    if not folder.is_dir():
        return []
    return [p / "result.json" for p in sorted(folder.iterdir()) if (p / "result.json").is_file()]


def read_json(path: Path, advice: str) -> Any:
    """A JSON file's value; a file cut short or unreadable is a StoreError that ends in
    ``advice``."""
    try:
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise StoreError(f"{path}: damaged (empty)", advice)
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise StoreError(f"{path}: damaged (not valid JSON, perhaps cut short)", advice) from None
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


def read_jsonl(path: Path, advice: str = "write it again") -> list[dict[str, Any]]:
    """The rows of a JSON-lines file ([] when there is none); a damaged line is a StoreError."""
    if not path.is_file():
        return []
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise StoreError(f"{path}: damaged (not UTF-8 text)", advice) from None
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict):
            raise StoreError(f"{path}, line {number}: damaged (not a JSON object)", advice)
        rows.append(row)
    return rows


def replace_dir(staging: Path, target: Path) -> None:
    """Move a fully written folder into place, replacing any older one."""
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
