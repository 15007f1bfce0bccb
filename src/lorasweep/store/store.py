"""The run store: one folder per sweep, one per run, every file written atomically.

Layout::

    SWEEP_DIR/
      sweep.yaml            the validated sweep config, every default filled in
      plan.json             the unique runs, the experiments' rows, the zero-shot evaluation
      runs/<run_id>/        run-<hash> (LoRA runs) and base-<hash> (the zero-shot evaluation)
        config.yaml         the run's resolved config (its hash is the folder name)
        train_log.jsonl     loss and learning rate per optimizer step
        adapter/            the PEFT adapter (PeftModel.from_pretrained loads it)
        predictions.jsonl   id, input, reference, prediction and per-example ROUGE
        result.json         written last: status, metrics, timings, environment, error
      report/               report.md and its plots

A run is done only once its ``result.json`` says so; that file is never edited afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

RESULT = "result.json"
DONE, FAILED = "done", "failed"


class RunStore:
    """Read and write one sweep's folder.

    Args:
        root: The sweep folder; created on the first write.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    def result(self, run_id: str) -> dict[str, Any] | None:
        """The run's result record, or None while it has none."""
        path = self.run_dir(run_id) / RESULT
        return json.loads(path.read_text()) if path.is_file() else None

    def status(self, run_id: str) -> str:
        result = self.result(run_id)
        return result["status"] if result else "planned"

    def predictions(self, run_id: str) -> list[dict[str, Any]]:
        return read_jsonl(self.run_dir(run_id) / "predictions.jsonl")

    def train_log(self, run_id: str) -> list[dict[str, Any]]:
        return read_jsonl(self.run_dir(run_id) / "train_log.jsonl")

    def plan(self) -> dict[str, Any]:
        path = self.root / "plan.json"
        if not path.is_file():
            raise FileNotFoundError(f"{self.root} is not a sweep folder (no plan.json)")
        return json.loads(path.read_text())


def write_text(path: Path, text: str) -> None:
    """Write a file atomically: a temporary file in the same folder, fsync, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
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
