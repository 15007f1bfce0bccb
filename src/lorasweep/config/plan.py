"""Expand a sweep into its units of work: a configuration shared by experiments runs once.

A run's identity is split in two. Its adapter is keyed by a hash of what shapes training
(model, data, prompt, LoRA and training settings, seed); the run by a hash of all that plus
the evaluation and generation settings. The same settings always map to the same folders in the
run store, whichever experiment asked for them, and a change of generation settings only
re-evaluates the stored adapters.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from lorasweep.config.load import apply_factor
from lorasweep.config.schema import BaselineConfig, SweepConfig, TrainingConfig
from lorasweep.store.records import (
    PlannedConfirmation,
    PlannedExperiment,
    PlannedRow,
    PlannedSearch,
    PlannedUnit,
    PlanRecord,
    UnitKind,
)

# The resolved config's sections that shape an adapter; the rest only shape its evaluation.
ADAPTER_SECTIONS = ("format", "model", "data", "prompt", "lora", "training")

FORMAT_VERSION = 2  # bump when the meaning of a resolved config changes; 2: adapter ids


@dataclass(frozen=True)
class RunSpec:
    """One training run plus its evaluation."""

    run_id: str
    settings: BaselineConfig
    resolved: dict[str, Any]
    labels: tuple[str, ...]  # "baseline", "rank=16", ...: every experiment row it serves

    @property
    def adapter_id(self) -> str:
        return adapter_id(self.resolved)

    @property
    def adapter_resolved(self) -> dict[str, Any]:
        """What shapes the adapter: the resolved config without evaluation and generation."""
        return {k: v for k, v in self.resolved.items() if k in ADAPTER_SECTIONS}


@dataclass(frozen=True)
class EvalSpec:
    """The base model evaluated zero-shot with the sweep's prompt and examples."""

    run_id: str
    resolved: dict[str, Any]


@dataclass(frozen=True)
class ExperimentRow:
    value: Any
    label: str  # the value as written in the config, for tables
    run_ids: tuple[str, ...]  # one per seed
    is_baseline: bool

    @property
    def run_id(self) -> str:
        return self.run_ids[0]


@dataclass(frozen=True)
class ExperimentPlan:
    name: str
    factor: str
    rows: tuple[ExperimentRow, ...]


@dataclass(frozen=True)
class TestSpec:
    """A finished run's adapter evaluated on the held-out test split."""

    run_id: str
    adapter_of: str
    roles: tuple[str, ...]  # baseline, confirmation and/or best: one run may be all three
    resolved: dict[str, Any]

    @property
    def adapter_id(self) -> str:
        return adapter_id(self.resolved)

    @property
    def labels(self) -> tuple[str, ...]:
        """Its labels in its result record: its roles, and the run it re-evaluates."""
        return (f"test split: {', '.join(self.roles)}", self.adapter_of)


@dataclass(frozen=True)
class Unit:
    """One unit of work for an executor: what to compute and the spec that says how."""

    kind: UnitKind
    spec: RunSpec | EvalSpec | TestSpec

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def adapter_id(self) -> str | None:
        return None if self.kind is UnitKind.ZERO_SHOT else self.spec.adapter_id

    @property
    def label(self) -> str:
        return self.planned().label

    def planned(self) -> PlannedUnit:
        """The unit as the plan record lists it."""
        spec = self.spec
        if self.kind is UnitKind.TEST:
            return PlannedUnit(spec.run_id, self.kind, (), adapter_id=spec.adapter_id,
                               roles=spec.roles, adapter_of=spec.adapter_of)  # fmt: skip
        labels = spec.labels if self.kind is UnitKind.TRAIN else ("zero-shot",)
        return PlannedUnit(spec.run_id, self.kind, labels, adapter_id=self.adapter_id)

    @property
    def labels(self) -> tuple[str, ...]:
        if self.kind is UnitKind.ZERO_SHOT:
            return ("zero-shot",)
        return self.spec.labels


@dataclass
class Plan:
    """Everything a sweep will compute. The confirmation run and the test evaluations depend on
    results, so they join the plan once the experiments are done."""

    sweep: SweepConfig
    baseline_ids: tuple[str, ...]
    runs: list[RunSpec]
    base_eval: EvalSpec
    experiments: list[ExperimentPlan] = field(default_factory=list)
    confirmation: dict[str, Any] | None = None  # {"run_ids": [...], "label": "..."}
    tests: list[TestSpec] = field(default_factory=list)
    search: PlannedSearch | None = None  # the search's trials so far (lorasweep.search)

    @property
    def baseline_id(self) -> str:
        return self.baseline_ids[0]

    @property
    def seeds(self) -> list[int]:
        return self.sweep.seeds or [self.sweep.baseline.training.seed]

    def run(self, run_id: str) -> RunSpec:
        return next(r for r in self.runs if r.run_id == run_id)

    def unit(self, run_id: str) -> Unit:
        """The unit of work with this id: the zero-shot evaluation, a run or a test evaluation."""
        if run_id == self.base_eval.run_id:
            return Unit(UnitKind.ZERO_SHOT, self.base_eval)
        test = next((t for t in self.tests if t.run_id == run_id), None)
        if test is not None:
            return Unit(UnitKind.TEST, test)
        return Unit(UnitKind.TRAIN, self.run(run_id))

    def units(self) -> list[Unit]:
        """Every unit once: the zero-shot evaluation, the training runs, the test evaluations."""
        return [self.unit(self.base_eval.run_id), *(Unit(UnitKind.TRAIN, r) for r in self.runs),
                *(Unit(UnitKind.TEST, t) for t in self.tests)]  # fmt: skip

    def record(self) -> PlanRecord:
        """The plan as the store keeps it (``plan.json``)."""
        return PlanRecord(
            name=self.sweep.name,
            baseline_run_ids=self.baseline_ids,
            base_eval=self.base_eval.run_id,
            seeds=tuple(self.seeds),
            runs=tuple(Unit(UnitKind.TRAIN, r).planned() for r in self.runs),
            experiments=tuple(
                PlannedExperiment(
                    e.name,
                    e.factor,
                    tuple(PlannedRow(r.label, r.run_ids, r.is_baseline) for r in e.rows),
                )
                for e in self.experiments
            ),
            confirmation=(
                PlannedConfirmation(tuple(self.confirmation["run_ids"]), self.confirmation["label"])
                if self.confirmation
                else None
            ),
            tests=tuple(Unit(UnitKind.TEST, t).planned() for t in self.tests),
            search=self.search,
        )

    def add_runs(self, settings: BaselineConfig, label: str) -> tuple[str, ...]:
        """Runs of ``settings``, one per seed; returns their ids. Known runs gain the label."""
        ids = []
        for seed in self.seeds:
            seeded = settings.model_copy(
                update={"training": settings.training.model_copy(update={"seed": seed})}
            )
            resolved = resolve_run(self.sweep, seeded)
            run_id = "run-" + config_hash(resolved)
            index = next((i for i, r in enumerate(self.runs) if r.run_id == run_id), None)
            if index is None:
                self.runs.append(RunSpec(run_id, seeded, resolved, (label,)))
            else:
                known = self.runs[index]
                labels = tuple(dict.fromkeys((*known.labels, label)))
                self.runs[index] = RunSpec(run_id, known.settings, known.resolved, labels)
            ids.append(run_id)
        return tuple(ids)

    def add_test(self, adapter_of: str, role: str) -> TestSpec:
        """The test-split evaluation of a run's adapter; a run already planned gains the role."""
        test = self.sweep.test
        assert test is not None
        resolved = {**self.run(adapter_of).resolved, "test": test.model_dump()}
        run_id = "test-" + config_hash(resolved)
        for i, known in enumerate(self.tests):
            if known.run_id == run_id:
                roles = tuple(dict.fromkeys((*known.roles, role)))
                self.tests[i] = TestSpec(run_id, adapter_of, roles, resolved)
                return self.tests[i]
        spec = TestSpec(run_id, adapter_of, (role,), resolved)
        self.tests.append(spec)
        return spec


def build_plan(sweep: SweepConfig) -> Plan:
    """The unique runs of ``sweep``, baseline first, then in the order experiments name them."""
    eval_resolved = resolve_eval(sweep)
    plan = Plan(sweep, (), [], EvalSpec("base-" + config_hash(eval_resolved), eval_resolved))
    plan.baseline_ids = plan.add_runs(sweep.baseline, "baseline")
    baseline_raw = sweep.baseline.model_dump()
    for experiment in sweep.experiments:
        rows = []
        for value in experiment.values:
            settings = BaselineConfig.model_validate(
                apply_factor(baseline_raw, experiment.factor, value)
            )
            label = value_label(value)
            run_ids = plan.add_runs(settings, f"{experiment.name}={label}")
            rows.append(ExperimentRow(value, label, run_ids, run_ids == plan.baseline_ids))
        plan.experiments.append(ExperimentPlan(experiment.name, experiment.factor, tuple(rows)))
    return plan


def target_fields(plan: Plan) -> list[tuple[str, list[str] | str]]:
    """(config field, target modules) for the baseline and every experiment value."""
    fields = [("baseline.lora.target_modules", plan.run(plan.baseline_id).settings.lora.modules)]
    for i, experiment in enumerate(plan.experiments):
        for j, row in enumerate(experiment.rows):
            modules = plan.run(row.run_id).settings.lora.modules
            fields.append((f"experiments[{i}].values[{j}]", modules))
    search = plan.sweep.search
    choices = search.space.get("lora.target_modules") if search else None
    for j, value in enumerate(choices if isinstance(choices, list) else []):
        raw = apply_factor(plan.sweep.baseline.model_dump(), "lora.target_modules", value)
        modules = BaselineConfig.model_validate(raw).lora.modules
        fields.append((f"search.space.lora.target_modules[{j}]", modules))
    return fields


def combine(plan: Plan, choices: dict[str, str]) -> BaselineConfig:
    """The baseline with each experiment's chosen value (by label) applied together."""
    raw = plan.sweep.baseline.model_dump()
    for experiment in plan.experiments:
        row = next(r for r in experiment.rows if r.label == choices[experiment.name])
        raw = apply_factor(raw, experiment.factor, row.value)
    return BaselineConfig.model_validate(raw)


def resolve_run(sweep: SweepConfig, settings: BaselineConfig) -> dict[str, Any]:
    """Everything that determines a run's numbers, with presets and ``alpha: 2r`` made explicit.

    Options added after stores existed enter only when they are on (rsLoRA, DoRA, a 4-bit base):
    a run that does not use them keeps its id. Gradient checkpointing changes no number, so it
    is left out (``RunSpec.settings`` still carries it); packing enters only when on.
    """
    lora = settings.lora
    switches = {"use_rslora": lora.use_rslora, "use_dora": lora.use_dora}
    return {
        "format": FORMAT_VERSION,
        "model": sweep.model.resolved(),
        "data": sweep.data.model_dump(),
        "prompt": sweep.prompt.model_dump(),
        "lora": {
            "r": lora.r,
            "alpha": lora.lora_alpha,
            "dropout": lora.dropout,
            "target_modules": lora.modules,
            **{name: True for name, on in switches.items() if on},
        },
        "training": settings.training.model_dump(exclude=_not_identity(settings.training)),
        "evaluation": sweep.evaluation.identity,
        "generation": sweep.generation.identity,
    }


def _not_identity(training: TrainingConfig) -> set[str]:
    """Training fields left out of a run's hash: checkpointing (it changes no number) and
    packing when off (a run from before packing existed keeps its id)."""
    return {"gradient_checkpointing"} | ({"packing"} if not training.packing else set())


def resolve_eval(sweep: SweepConfig) -> dict[str, Any]:
    """What determines the zero-shot numbers: no training settings, no training rows."""
    data = sweep.data.model_dump(exclude={"train_split", "train_size"})
    return {
        "format": FORMAT_VERSION,
        "model": sweep.model.resolved(),
        "data": data,
        "prompt": sweep.prompt.model_dump(),
        "evaluation": sweep.evaluation.identity,
        "generation": sweep.generation.identity,
    }


def adapter_id(resolved: dict[str, Any]) -> str:
    """The id of the adapter a resolved run config trains: a hash of its training sections."""
    return "adapter-" + config_hash({k: v for k, v in resolved.items() if k in ADAPTER_SECTIONS})


def config_hash(resolved: dict[str, Any]) -> str:
    """A short, stable hash of a resolved config (key order and float spelling do not matter)."""
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def value_label(value: Any) -> str:
    """A value as tables write it: ``16``, ``2e-4``, ``q_proj+v_proj``."""
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
