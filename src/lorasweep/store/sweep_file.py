"""The ``sweep.yaml`` a sweep folder keeps, read back as typed sections.

The driver writes the validated config there when a sweep starts. The report needs only some of
it (the evaluation section with its metrics, the published numbers, the model and data names),
and reads those sections alone, so a folder whose other sections an older version wrote still
reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from lorasweep.config.schema import EvaluationConfig, ReportedRow, SweepConfig
from lorasweep.store.records import StoreError
from lorasweep.store.store import write_yaml

SWEEP = "sweep.yaml"


@dataclass(frozen=True)
class StoredSweep:
    """What the report reads of ``sweep.yaml``."""

    model: str = ""
    data: str = ""
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    reported: list[ReportedRow] = field(default_factory=list)
    # Set for a store ``lorasweep analyze`` built: the study file, the baseline's label, the
    # examples and how the files were paired.
    analysis: dict = field(default_factory=dict)


def read_sweep(root: str | Path) -> StoredSweep:
    """The typed sections of ``root/sweep.yaml``; defaults for a folder without one.

    Raises:
        StoreError: The file is damaged, or a section no longer validates.
    """
    path = Path(root) / SWEEP
    if not path.is_file():
        return StoredSweep()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise StoreError(f"{path}: damaged (not a mapping of sections)")
        return StoredSweep(
            model=str((raw.get("model") or {}).get("name", "")),
            data=str((raw.get("data") or {}).get("source", "")),
            evaluation=EvaluationConfig.model_validate(raw.get("evaluation") or {}),
            reported=[ReportedRow.model_validate(r) for r in raw.get("reported") or []],
            analysis=dict(raw.get("analysis") or {}),
        )
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError) as err:
        raise StoreError(f"{path}: damaged ({type(err).__name__}); rerun `lorasweep run`") from None
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise StoreError(
            f"{path}: {where}: {first['msg']}; fix it, or pass the sweep's config with --config"
        ) from None


def write_sweep(root: str | Path, sweep: SweepConfig) -> None:
    """Keep the validated config in ``root/sweep.yaml`` (every default filled in)."""
    write_yaml(Path(root) / SWEEP, sweep.model_dump(mode="json"))
