"""Expand a sweep into its unique runs: a configuration shared by experiments is trained once.

Every run is keyed by a hash of its fully resolved configuration, so the same settings always map
to the same folder in the run store, whichever experiment asked for them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from lorasweep.config.load import apply_factor
from lorasweep.config.schema import BaselineConfig, SweepConfig

FORMAT_VERSION = 1  # bump when the meaning of a resolved config changes


@dataclass(frozen=True)
class RunSpec:
    """One training run plus its evaluation."""

    run_id: str
    settings: BaselineConfig
    resolved: dict[str, Any]
    labels: tuple[str, ...]  # "baseline", "rank=16", ...: every experiment row it serves


@dataclass(frozen=True)
class EvalSpec:
    """The base model evaluated zero-shot with the sweep's prompt and examples."""

    run_id: str
    resolved: dict[str, Any]


@dataclass(frozen=True)
class ExperimentRow:
    value: Any
    label: str  # the value as written in the config, for tables
    run_id: str
    is_baseline: bool


@dataclass(frozen=True)
class ExperimentPlan:
    name: str
    factor: str
    rows: tuple[ExperimentRow, ...]


@dataclass
class Plan:
    """Everything a sweep will compute, derived from the config alone."""

    sweep: SweepConfig
    baseline_id: str
    runs: list[RunSpec]
    base_eval: EvalSpec
    experiments: list[ExperimentPlan] = field(default_factory=list)

    def run(self, run_id: str) -> RunSpec:
        return next(r for r in self.runs if r.run_id == run_id)


def build_plan(sweep: SweepConfig) -> Plan:
    """The unique runs of ``sweep``, baseline first, then in the order experiments name them."""
    baseline_raw = sweep.baseline.model_dump()
    runs: dict[str, RunSpec] = {}

    def add(settings: BaselineConfig, label: str) -> str:
        resolved = resolve_run(sweep, settings)
        run_id = "run-" + config_hash(resolved)
        previous = runs.get(run_id)
        labels = (previous.labels if previous else ()) + (label,)
        runs[run_id] = RunSpec(run_id, settings, resolved, tuple(dict.fromkeys(labels)))
        return run_id

    baseline_id = add(sweep.baseline, "baseline")
    experiments = []
    for experiment in sweep.experiments:
        rows = []
        for value in experiment.values:
            raw = apply_factor(baseline_raw, experiment.factor, value)
            settings = BaselineConfig.model_validate(raw)
            label = _label(value)
            run_id = add(settings, f"{experiment.name}={label}")
            rows.append(ExperimentRow(value, label, run_id, run_id == baseline_id))
        experiments.append(ExperimentPlan(experiment.name, experiment.factor, tuple(rows)))

    eval_resolved = resolve_eval(sweep)
    base_eval = EvalSpec("base-" + config_hash(eval_resolved), eval_resolved)
    return Plan(sweep, baseline_id, list(runs.values()), base_eval, experiments)


def resolve_run(sweep: SweepConfig, settings: BaselineConfig) -> dict[str, Any]:
    """Everything that determines a run's numbers, with presets and ``alpha: 2r`` made explicit."""
    lora = settings.lora
    return {
        "format": FORMAT_VERSION,
        "model": sweep.model.model_dump(),
        "data": sweep.data.model_dump(),
        "prompt": sweep.prompt.model_dump(),
        "lora": {
            "r": lora.r,
            "alpha": lora.lora_alpha,
            "dropout": lora.dropout,
            "target_modules": lora.modules,
        },
        "training": settings.training.model_dump(),
        "evaluation": sweep.evaluation.model_dump(),
        "generation": sweep.generation.model_dump(),
    }


def resolve_eval(sweep: SweepConfig) -> dict[str, Any]:
    """What determines the zero-shot numbers: no training settings, no training rows."""
    data = sweep.data.model_dump(exclude={"train_split", "train_size"})
    return {
        "format": FORMAT_VERSION,
        "model": sweep.model.model_dump(),
        "data": data,
        "prompt": sweep.prompt.model_dump(),
        "evaluation": sweep.evaluation.model_dump(),
        "generation": sweep.generation.model_dump(),
    }


def config_hash(resolved: dict[str, Any]) -> str:
    """A short, stable hash of a resolved config (key order and float spelling do not matter)."""
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _label(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(str(v) for v in value)
    if isinstance(value, float):
        return format_number(value)
    return str(value)


def format_number(value: float) -> str:
    """Short, unambiguous spelling of a hyperparameter: 0.0002 -> 2e-4, 0.1 -> 0.1, 16.0 -> 16."""
    if value != 0 and abs(value) < 1e-2:
        mantissa, exponent = f"{value:.3e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:g}"
