"""The store's typed records: ``plan.json``, ``result.json`` and ``adapter.json``.

Each record has exactly one writer (``to_json``) and one reader (``from_json``) here; nothing
else walks these files as dicts. A reader that meets a damaged file raises ``StoreError``, which
names the file and what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from lorasweep.errors import UserError

# Version of the store layout. 2: adapters keyed apart from their evaluations (adapters/).
STORE_FORMAT = 2

# What to do about a damaged record, by file: each is computed or written again by a run.
RESULT_ADVICE = "that run is not done: rerun `lorasweep run` to compute it again"
ADAPTER_ADVICE = "that adapter is not done: rerun `lorasweep run` to train it again"
PLAN_ADVICE = "rerun `lorasweep run` with the sweep's config to write it again"


class StoreError(UserError):
    """A file of the run store is damaged or from another version; the message says what to do.

    Args:
        problem: The file and what is wrong with it.
        advice: What to do about it.
    """

    def __init__(self, problem: str, advice: str = "") -> None:
        super().__init__(f"{problem}; {advice}" if advice else problem)
        self.problem = problem


class StoreFormatError(StoreError):
    """The store was written by another lorasweep version: a run must not write into it."""


class Status(str, Enum):
    """Where a unit of work stands. Only ``done`` is final; the others are run again."""

    PLANNED = "planned"
    DONE = "done"
    FAILED = "failed"  # an exception inside the unit: rerun only with --retry-failed
    CANCELLED = "cancelled"  # interrupted (Ctrl-C): the next run does it again

    def __str__(self) -> str:
        return self.value


class UnitKind(str, Enum):
    """What a unit of work computes."""

    TRAIN = "lora"  # train an adapter (unless the store has it) and evaluate it
    ZERO_SHOT = "base"  # the base model, no adapter
    TEST = "test"  # a finished adapter on the held-out test split

    def __str__(self) -> str:
        return self.value


class _Reader:
    """Field access on a JSON object that turns a missing or mistyped field into StoreError."""

    def __init__(self, data: Any, path: Path | str, advice: str) -> None:
        if not isinstance(data, dict):
            raise StoreError(f"{path}: damaged (not a JSON object)", advice)
        self.data, self.path, self.advice = data, path, advice

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.data or self.data[key] is None:
            if default is ...:
                raise StoreError(f"{self.path}: damaged (no {key!r})", self.advice)
            return default
        value = self.data[key]
        if not isinstance(value, kind):
            raise StoreError(f"{self.path}: damaged ({key!r} is not {_names(kind)})", self.advice)
        return value

    def enum(self, key: str, kind: type[Enum]) -> Any:
        value = self.get(key, str)
        try:
            return kind(value)
        except ValueError:
            raise StoreError(f"{self.path}: damaged ({key}={value!r})", self.advice) from None


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


@dataclass(frozen=True)
class RunResult:
    """One unit's outcome, ``result.json``: written last, never edited afterwards.

    Attributes:
        run_id: The unit's id (its folder under ``runs/``).
        kind: What the unit computed.
        status: done, failed or cancelled (a planned unit has no result).
        labels: The experiment rows it serves (``baseline``, ``rank=16``), or what it is.
        config: The resolved configuration whose hash is ``run_id``.
        adapter_id: The adapter it evaluated (None for the zero-shot evaluation).
        metrics: Mean scores over the evaluation examples (done only).
        generation: Generation settings as used (``max_new_tokens`` resolved).
        timings: Seconds: setup, train (the adapter's, every segment), eval, total.
        efficiency: Parameters, bytes, tokens per second, peak memory.
        environment: Package versions and device.
        error: The one-line error of a failed unit.
        traceback: Its traceback.
    """

    run_id: str
    kind: UnitKind
    status: Status
    labels: tuple[str, ...]
    config: dict[str, Any]
    adapter_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    efficiency: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None

    @property
    def done(self) -> bool:
        return self.status is Status.DONE

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "run_id": self.run_id,
            "kind": self.kind.value,
            "status": self.status.value,
            "labels": list(self.labels),
            "adapter_id": self.adapter_id,
            "metrics": self.metrics,
            "generation": self.generation,
            "timings": self.timings,
            "efficiency": self.efficiency,
            "environment": self.environment,
            "config": self.config,
        }
        if self.error is not None:
            record["error"] = self.error
            record["traceback"] = self.traceback
        return record

    @classmethod
    def from_json(cls, data: Any, path: Path | str = "result.json") -> RunResult:
        read = _Reader(data, path, RESULT_ADVICE)
        status = read.enum("status", Status)
        result = cls(
            run_id=read.get("run_id", str),
            kind=read.enum("kind", UnitKind),
            status=status,
            labels=tuple(read.get("labels", list, [])),
            config=read.get("config", dict, {}),
            adapter_id=read.get("adapter_id", str, None),
            metrics=read.get("metrics", dict, {}),
            generation=read.get("generation", dict, {}),
            timings=read.get("timings", dict, {}),
            efficiency=read.get("efficiency", dict, {}),
            environment=read.get("environment", dict, {}),
            error=read.get("error", str, None),
            traceback=read.get("traceback", str, None),
        )
        if status is Status.DONE and not result.metrics:
            raise StoreError(f"{path}: damaged (done without metrics)", read.advice)
        return result


@dataclass(frozen=True)
class AdapterRecord:
    """A trained adapter, ``adapters/<id>/adapter.json``: written once its files are in place.

    Attributes:
        adapter_id: Hash of everything that shapes training (model, data, prompt, LoRA,
            training settings, seed); generation and evaluation settings are not part of it.
        config: That resolved training configuration.
        timings: ``setup_s`` and ``train_s`` (every training segment, resumes included).
        efficiency: Trainable and total parameters, adapter bytes, training tokens and their
            rate, peak memory.
        train_steps: Optimizer steps trained.
        resumed_at_step: The step the last segment resumed from (0: trained in one go).
        final_loss: The last step's loss.
    """

    adapter_id: str
    config: dict[str, Any]
    timings: dict[str, float]
    efficiency: dict[str, Any]
    train_steps: int
    resumed_at_step: int = 0
    final_loss: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "adapter_id": self.adapter_id,
            "status": Status.DONE.value,
            "config": self.config,
            "timings": self.timings,
            "efficiency": self.efficiency,
            "train_steps": self.train_steps,
            "resumed_at_step": self.resumed_at_step,
            "final_loss": self.final_loss,
        }

    @classmethod
    def from_json(cls, data: Any, path: Path | str = "adapter.json") -> AdapterRecord:
        read = _Reader(data, path, ADAPTER_ADVICE)
        return cls(
            adapter_id=read.get("adapter_id", str),
            config=read.get("config", dict),
            timings=read.get("timings", dict),
            efficiency=read.get("efficiency", dict),
            train_steps=read.get("train_steps", int),
            resumed_at_step=read.get("resumed_at_step", int, 0),
            final_loss=read.get("final_loss", (int, float), None),
        )


@dataclass(frozen=True)
class PlannedUnit:
    """A unit in the plan: enough to list it, count it and find its result."""

    run_id: str
    kind: UnitKind
    labels: tuple[str, ...]
    adapter_id: str | None = None
    roles: tuple[str, ...] = ()  # test units: baseline, confirmation and/or best (TEST_ROLES)
    adapter_of: str | None = None  # test units: the run whose adapter they evaluate

    @property
    def label(self) -> str:
        if self.kind is UnitKind.ZERO_SHOT:
            return "zero-shot"
        if self.kind is UnitKind.TEST:
            return f"test split: {', '.join(self.roles)} ({self.adapter_of})"
        return ", ".join(self.labels)


# The configurations evaluated on the test split, in the order the report lists them.
TEST_ROLES = ("baseline", "confirmation", "best", "best trial")


@dataclass(frozen=True)
class PlannedTests:
    """One configuration's evaluations on the test split: one test unit per seed.

    Attributes:
        roles: What the configuration is (``baseline``, ``best``, ...); one configuration may
            be several.
        run_ids: Its test unit per seed, in seed order; None where that seed's run has none
            (it did not finish), so that seed i still pairs with the baseline's seed i.
    """

    roles: tuple[str, ...]
    run_ids: tuple[str | None, ...]


@dataclass(frozen=True)
class PlannedRow:
    label: str
    run_ids: tuple[str, ...]  # one per seed
    is_baseline: bool

    @property
    def run_id(self) -> str:
        return self.run_ids[0]


@dataclass(frozen=True)
class PlannedExperiment:
    name: str
    factor: str
    rows: tuple[PlannedRow, ...]


@dataclass(frozen=True)
class PlannedConfirmation:
    run_ids: tuple[str, ...]
    label: str


@dataclass(frozen=True)
class PlannedTrial:
    """One trial of a search: its number, the values it set, its run per seed.

    Attributes:
        number: Its place in the search (0-based), the order the sampler asked it in.
        params: Baseline field (``lora.r``) -> the value the trial set.
        run_ids: Its run per seed; a trial that repeats a configuration shares its runs.
    """

    number: int
    params: dict[str, Any]
    run_ids: tuple[str, ...]


@dataclass(frozen=True)
class PlannedSearch:
    """A search's trials and what the report needs to analyse them.

    Attributes:
        sampler: ``grid``, ``random`` or ``tpe``.
        seed: The sampler's seed.
        target: The trials it runs in all.
        distributions: Field -> Optuna's JSON of its distribution (parameter importance).
        trials: The trials asked so far, in order.
    """

    sampler: str
    seed: int
    target: int
    distributions: dict[str, str]
    trials: tuple[PlannedTrial, ...] = ()


@dataclass(frozen=True)
class PlanRecord:
    """``plan.json``: the units of a sweep and how the report groups them.

    Attributes:
        name: The sweep's name.
        baseline_run_ids: The baseline's run per seed.
        base_eval: The zero-shot evaluation's run id.
        seeds: The training seeds.
        runs: The unique training units, baseline first.
        experiments: Each experiment's rows.
        confirmation: The combination of the recommended values, once chosen.
        tests: The test-split evaluations, once chosen.
        search: The search's trials, as they are asked.
    """

    name: str
    baseline_run_ids: tuple[str, ...]
    base_eval: str
    seeds: tuple[int, ...]
    runs: tuple[PlannedUnit, ...]
    experiments: tuple[PlannedExperiment, ...] = ()
    confirmation: PlannedConfirmation | None = None
    tests: tuple[PlannedUnit, ...] = ()
    search: PlannedSearch | None = None

    @property
    def baseline(self) -> str:
        return self.baseline_run_ids[0]

    def units(self) -> list[PlannedUnit]:
        """Every unit once: the zero-shot evaluation, the training runs, the test evaluations."""
        zero_shot = PlannedUnit(self.base_eval, UnitKind.ZERO_SHOT, ("zero-shot",))
        return [zero_shot, *self.runs, *self.tests]

    def test_evaluations(self) -> list[PlannedTests]:
        """Each configuration evaluated on the test split once, with all its roles."""
        configurations = [self.baseline_run_ids]
        configurations += [row.run_ids for e in self.experiments for row in e.rows]
        configurations += [self.confirmation.run_ids] if self.confirmation else []
        configurations += [t.run_ids for t in self.search.trials] if self.search else []
        seeded = {run_id: ids for ids in configurations for run_id in ids}
        tests = {unit.adapter_of: unit for unit in self.tests}
        grouped: dict[tuple[str, ...], list[PlannedUnit]] = {}
        for unit in self.tests:
            runs = seeded.get(unit.adapter_of or "", (unit.adapter_of or "",))
            grouped.setdefault(runs, []).append(unit)
        return [
            PlannedTests(
                tuple(dict.fromkeys(role for unit in units for role in unit.roles)),
                tuple(tests[r].run_id if r in tests else None for r in runs),
            )
            for runs, units in grouped.items()
        ]

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "format": STORE_FORMAT,
            "name": self.name,
            "baseline": self.baseline,
            "baseline_run_ids": list(self.baseline_run_ids),
            "base_eval": self.base_eval,
            "seeds": list(self.seeds),
            "runs": [
                {"run_id": u.run_id, "labels": list(u.labels), "adapter_id": u.adapter_id}
                for u in self.runs
            ],
            "experiments": [
                {
                    "name": e.name,
                    "factor": e.factor,
                    "rows": [
                        {"label": r.label, "run_ids": list(r.run_ids), "is_baseline": r.is_baseline}
                        for r in e.rows
                    ],
                }
                for e in self.experiments
            ],
        }
        if self.confirmation:
            record["confirmation"] = {
                "run_ids": list(self.confirmation.run_ids),
                "label": self.confirmation.label,
            }
        if self.tests:
            record["tests"] = [
                {"run_id": u.run_id, "roles": list(u.roles), "adapter_of": u.adapter_of,
                 "adapter_id": u.adapter_id}
                for u in self.tests
            ]  # fmt: skip
        if self.search:
            record["search"] = {
                "sampler": self.search.sampler, "seed": self.search.seed,
                "target": self.search.target, "distributions": self.search.distributions,
                "trials": [{"number": t.number, "params": t.params, "run_ids": list(t.run_ids)}
                           for t in self.search.trials],
            }  # fmt: skip
        return record

    @classmethod
    def from_json(cls, data: Any, path: Path | str = "plan.json") -> PlanRecord:
        read = _Reader(data, path, PLAN_ADVICE)
        # Format 1 had no "format" field; a plan with neither that nor runs is no plan at all.
        version = read.get("format", int, 1 if "runs" in read.data else ...)
        if version != STORE_FORMAT:
            raise StoreFormatError(
                f"{path}: written by an {'earlier' if version < STORE_FORMAT else 'newer'} "
                f"lorasweep (store format {version}, this version reads {STORE_FORMAT}); "
                "run the sweep into a new --out folder"
            )

        def reader(item: Any) -> _Reader:
            return _Reader(item, path, PLAN_ADVICE)

        runs = tuple(
            PlannedUnit(
                r.get("run_id", str), UnitKind.TRAIN, tuple(r.get("labels", list)),
                adapter_id=r.get("adapter_id", str, None),
            )
            for r in map(reader, read.get("runs", list))
        )  # fmt: skip
        experiments = []
        for e in map(reader, read.get("experiments", list, [])):
            rows = tuple(
                PlannedRow(r.get("label", str), tuple(r.get("run_ids", list)),
                           r.get("is_baseline", bool))
                for r in map(reader, e.get("rows", list))
            )  # fmt: skip
            experiments.append(PlannedExperiment(e.get("name", str), e.get("factor", str), rows))
        confirmation = read.get("confirmation", dict, None)
        if confirmation is not None:
            c = reader(confirmation)
            confirmation = PlannedConfirmation(tuple(c.get("run_ids", list)), c.get("label", str))
        tests: dict[str, PlannedUnit] = {}
        for t in map(reader, read.get("tests", list, [])):
            # Before roles were merged a test unit was listed once per role, as "role".
            roles = t.get("roles", list, None) or [t.get("role", str)]
            run_id = t.get("run_id", str)
            known = tests.get(run_id)
            tests[run_id] = PlannedUnit(
                run_id, UnitKind.TEST, (), adapter_id=t.get("adapter_id", str, None),
                roles=tuple(dict.fromkeys((*(known.roles if known else ()), *roles))),
                adapter_of=t.get("adapter_of", str),
            )  # fmt: skip
        search = read.get("search", dict, None)
        if search is not None:
            found = reader(search)
            trials = tuple(
                PlannedTrial(t.get("number", int), t.get("params", dict),
                             tuple(t.get("run_ids", list)))
                for t in map(reader, found.get("trials", list, []))
            )  # fmt: skip
            search = PlannedSearch(
                found.get("sampler", str), found.get("seed", int), found.get("target", int),
                found.get("distributions", dict), trials,
            )  # fmt: skip
        return cls(
            name=read.get("name", str),
            baseline_run_ids=tuple(read.get("baseline_run_ids", list)),
            base_eval=read.get("base_eval", str),
            seeds=tuple(read.get("seeds", list, [])),
            runs=runs,
            experiments=tuple(experiments),
            confirmation=confirmation,
            tests=tuple(tests.values()),
            search=search,
        )


BASELINE_ADVICE = "rerun `lorasweep baselines` with the sweep's config (cached replies are reused)"


@dataclass(frozen=True)
class BaselineResult:
    """An API baseline's outcome, ``baselines/<name>/result.json``, written after its
    predictions; a rerun writes it again from the response cache.

    Attributes:
        name: The row's name (``baselines[].name``).
        status: done, or failed with ``error`` (then there are no predictions).
        model: The model asked; ``base_url`` the API it was asked at.
        examples: Evaluation examples asked about.
        metrics: Mean scores when done.
        usage: ``prompt_tokens`` and ``completion_tokens`` summed over every answer of the
            row, cached ones included: what the row's answers cost to produce.
        cost_usd: From ``usage`` and ``price_per_million``, when the config gives prices.
        requests: ``sent`` this time and ``cached`` (answered from the cache).
        max_tokens: The reply cap, for generation health.
        error: Why a failed baseline failed, one line.
    """

    name: str
    status: Status
    model: str
    base_url: str
    examples: int
    metrics: dict[str, float] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None
    requests: dict[str, int] = field(default_factory=dict)
    max_tokens: int | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.status is Status.DONE

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "api", "status": self.status.value,
                "model": self.model, "base_url": self.base_url, "examples": self.examples,
                "metrics": self.metrics, "usage": self.usage, "cost_usd": self.cost_usd,
                "requests": self.requests, "max_tokens": self.max_tokens,
                "error": self.error}  # fmt: skip

    @classmethod
    def from_json(cls, data: Any, path: Path | str = "result.json") -> BaselineResult:
        read = _Reader(data, path, BASELINE_ADVICE)
        return cls(
            name=read.get("name", str),
            status=read.enum("status", Status),
            model=read.get("model", str),
            base_url=read.get("base_url", str),
            examples=read.get("examples", int),
            metrics=read.get("metrics", dict, {}),
            usage=read.get("usage", dict, {}),
            cost_usd=read.get("cost_usd", (int, float), None),
            requests=read.get("requests", dict, {}),
            max_tokens=read.get("max_tokens", int, None),
            error=read.get("error", str, None),
        )
