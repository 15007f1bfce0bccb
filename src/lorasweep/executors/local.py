"""Run a sweep's plan in this process, one run after another, with a progress display.

Everything a user can get wrong (config, data, model, target modules) is checked before the
first file is written. After that a failing run is recorded as failed and the sweep goes on.
"""

from __future__ import annotations

import fcntl
import shutil
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lorasweep.cache import cache_dir
from lorasweep.config.plan import Plan, combine
from lorasweep.data.prompts import PromptFormatter
from lorasweep.data.sources import load_eval, load_train
from lorasweep.data.token_cache import TokenCache
from lorasweep.errors import UserError
from lorasweep.store.environment import environment
from lorasweep.store.store import DONE, FAILED, RunStore, write_json, write_yaml
from lorasweep.tracking.base import Tracker
from lorasweep.training.loop import StepLog, total_steps
from lorasweep.training.model import check_targets, linear_module_names, load_model
from lorasweep.training.run import (
    Hooks,
    SweepResources,
    evaluate_base,
    evaluate_test,
    train_and_evaluate,
)


@dataclass
class SweepOutcome:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # run id -> one-line error
    seconds: float = 0.0


def prepare(plan: Plan, console: Console) -> SweepResources:
    """Load data and model and check the plan against them; raises ``UserError`` on bad input."""
    sweep = plan.sweep
    with console.status("Loading data ..."):
        train = load_train(sweep.data)
        examples = load_eval(sweep.data, sweep.evaluation)
        test = load_eval(sweep.data, sweep.test, field="test") if sweep.test else []
    with console.status(f"Loading model {sweep.model.name} ..."):
        model, tokenizer = load_model(sweep.model, log=console.print)
    check_targets(target_fields(plan), linear_module_names(model))
    try:
        formatter = PromptFormatter(tokenizer, sweep.prompt, sweep.data.input_column)
        tokens = TokenCache(formatter, cache_dir())
        prompts = tokens.prompts(examples)
        test_prompts = tokens.prompts(test) if test else []
    except ValueError as err:
        raise UserError(str(err)) from None
    console.print(
        f"Data: {len(train)} training examples, {len(examples)} evaluation examples "
        f"({sweep.evaluation.split}, seed {sweep.evaluation.seed})."
    )
    return SweepResources(
        sweep, model, tokenizer, formatter, train, examples, prompts, environment(),
        test, test_prompts, tokens,
    )  # fmt: skip


def target_fields(plan: Plan) -> list[tuple[str, list[str] | str]]:
    """(config field, target modules) for the baseline and every experiment value."""
    fields = [("baseline.lora.target_modules", plan.run(plan.baseline_id).settings.lora.modules)]
    for i, experiment in enumerate(plan.experiments):
        for j, row in enumerate(experiment.rows):
            modules = plan.run(row.run_id).settings.lora.modules
            fields.append((f"experiments[{i}].values[{j}]", modules))
    return fields


def run_sweep(
    plan: Plan,
    store: RunStore,
    console: Console,
    retry_failed: bool = False,
    tracker: Tracker | None = None,
    wait: bool = False,
) -> SweepOutcome:
    """Train and evaluate every run of ``plan`` not already done in ``store``.

    Args:
        plan: The sweep's plan.
        store: Where results go; runs already done there are skipped.
        console: Where progress goes.
        retry_failed: Run again the runs recorded as failed (skipped otherwise).
        tracker: Mirrors the runs executed here (W&B, MLflow); its failures only warn.
        wait: If another process holds the sweep folder, wait for it instead of refusing.
    """
    started = time.perf_counter()
    resources = prepare(plan, console)
    tracker = tracker or Tracker()
    outcome = SweepOutcome()
    with lock(store.root, wait, console):
        write_yaml(store.root / "sweep.yaml", plan.sweep.model_dump(mode="json"))
        write_json(store.root / "plan.json", plan_record(plan))
        tracker.start_sweep(plan.sweep.model_dump(mode="json"), plan_record(plan), store.root)
        units = [plan.base_eval.run_id] + [r.run_id for r in plan.runs]
        runner = _Runner(plan, resources, store, console, tracker, outcome, retry_failed)
        runner.run(units)
        # Follow-ups chosen from the results: they join the plan once the experiments are done.
        if plan.sweep.confirmation and plan.experiments and add_confirmation(plan, store):
            write_json(store.root / "plan.json", plan_record(plan))
            console.print(f"Confirmation run: {plan.confirmation['label']}")
            runner.run(list(plan.confirmation["run_ids"]))
        if plan.sweep.test is not None and add_tests(plan, store):
            write_json(store.root / "plan.json", plan_record(plan))
            runner.run([t.run_id for t in plan.tests])
    outcome.seconds = time.perf_counter() - started
    return outcome


def add_confirmation(plan: Plan, store: RunStore) -> bool:
    """Plan the combination of every experiment's recommended value; False if none can be."""
    from lorasweep.report.tables import build_tables

    choices = {t.name: t.recommendation.choice for t in build_tables(store).experiments}
    if any(choice is None for choice in choices.values()):
        return False
    label = " + ".join(f"{name}={choice}" for name, choice in choices.items())
    run_ids = plan.add_runs(combine(plan, choices), f"confirmation: {label}")
    plan.confirmation = {"run_ids": list(run_ids), "label": label}
    return True


def add_tests(plan: Plan, store: RunStore) -> bool:
    """Plan the test-split evaluations of the baseline, confirmation and best runs."""
    from lorasweep.report.tables import build_tables

    best = build_tables(store).best
    candidates = {
        "baseline": plan.baseline_id,
        "confirmation": (plan.confirmation or {}).get("run_ids", [None])[0],
        "best": best.run_ids[0] if best is not None else None,
    }
    plan.tests = []
    for role, run_id in candidates.items():
        if run_id and store.status(run_id) == DONE:
            plan.add_test(run_id, role)
    return bool(plan.tests)


@dataclass
class _Runner:
    """Executes units (runs, evaluations) in order, skipping finished ones, isolating failures."""

    plan: Plan
    resources: SweepResources
    store: RunStore
    console: Console
    tracker: Tracker
    outcome: SweepOutcome
    retry_failed: bool

    def run(self, units: list[str]) -> None:
        store, console, outcome = self.store, self.console, self.outcome
        for index, run_id in enumerate(units, start=1):
            label = _label(self.plan, run_id)
            status = store.status(run_id)
            if status == DONE or (status == FAILED and not self.retry_failed):
                outcome.skipped.append(run_id)
                console.print(f"[{index}/{len(units)}] {label} ({run_id}): {status}, skipped")
                if status == FAILED:  # still a hole in the sweep: the exit status says so
                    outcome.failed[run_id] = store.result(run_id).get("error", "failed earlier")
                continue
            console.print(f"[{index}/{len(units)}] {label} ({run_id})")
            self.tracker.start_run(run_id, run_info(self.plan, run_id))
            error = _execute(self.plan, run_id, self.resources, store, console, self.tracker)
            self.tracker.end_run(store.result(run_id), store.run_dir(run_id))
            if error:
                outcome.failed[run_id] = error
                console.print(f"  [red]failed[/red]: {error}")
            else:
                result = store.result(run_id)
                metrics = "  ".join(f"{k} {v:.2f}" for k, v in result["metrics"].items())
                console.print(f"  done in {result['timings']['total_s']:.1f}s: {metrics}")
                outcome.done.append(run_id)


def _label(plan: Plan, run_id: str) -> str:
    if run_id == plan.base_eval.run_id:
        return "zero-shot"
    test = next((t for t in plan.tests if t.run_id == run_id), None)
    if test is not None:
        return f"test split: {test.role} ({test.adapter_of})"
    return plan.run(run_id).labels[0]


def _execute(
    plan: Plan,
    run_id: str,
    resources: SweepResources,
    store: RunStore,
    console: Console,
    tracker: Tracker,
) -> str | None:
    """Run one unit; on failure record it in the run folder and return the error line."""
    run_dir = store.run_dir(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    for leftover in run_dir.glob(".*"):  # temporaries of a process killed mid-write
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    kind, spec = _unit(plan, run_id)
    with _progress(console) as progress:
        train_task = None
        if kind == "lora":
            encoded = resources.train_encoded(spec.settings.training.max_length)
            steps = total_steps(spec.settings.training, len(encoded))
            train_task = progress.add_task("train", total=steps, info="")
        examples = resources.test_examples if kind == "test" else resources.eval_examples
        eval_task = progress.add_task("evaluate", total=len(examples), info="")

        def on_step(log: StepLog) -> None:
            progress.update(train_task, advance=1, info=f"loss {log.loss:.3f}")
            tracker.log_step(log.as_dict())

        hooks = Hooks(
            on_step=on_step, on_eval_batch=lambda n: progress.update(eval_task, advance=n)
        )
        try:
            if kind == "base":
                evaluate_base(spec, resources, run_dir, hooks)
            elif kind == "test":
                evaluate_test(spec, resources, store.run_dir(spec.adapter_of), run_dir, hooks)
            else:
                train_and_evaluate(spec, resources, run_dir, hooks)
            return None
        except Exception as err:  # a failed run is a state; the sweep goes on
            error = f"{type(err).__name__}: {err}".splitlines()[0]
            write_json(
                run_dir / "result.json",
                {
                    "run_id": run_id,
                    "kind": kind,
                    "status": FAILED,
                    "labels": [_label(plan, run_id)],
                    "error": error,
                    "traceback": traceback.format_exc(),
                    "config": spec.resolved,
                },
            )
            return error


def _unit(plan: Plan, run_id: str):
    if run_id == plan.base_eval.run_id:
        return "base", plan.base_eval
    test = next((t for t in plan.tests if t.run_id == run_id), None)
    if test is not None:
        return "test", test
    return "lora", plan.run(run_id)


def run_info(plan: Plan, run_id: str) -> dict:
    """What a tracker needs to group and tag a run: its experiments and their varied factors."""
    kind, spec = _unit(plan, run_id)
    if kind != "lora":
        return {"kind": kind, "labels": [_label(plan, run_id)], "experiments": {}, "factors": [],
                "config": spec.resolved}  # fmt: skip
    experiments = {
        e.name: row.label for e in plan.experiments for row in e.rows if run_id in row.run_ids
    }
    factors = [e.factor for e in plan.experiments if e.name in experiments]
    spec = plan.run(run_id)
    return {"kind": "lora", "labels": list(spec.labels), "experiments": experiments,
            "factors": factors, "config": spec.resolved}  # fmt: skip


def plan_record(plan: Plan) -> dict:
    """The plan as JSON: what the report and ``status`` read, without re-reading the YAML."""
    record = {
        "name": plan.sweep.name,
        "baseline": plan.baseline_id,
        "baseline_run_ids": list(plan.baseline_ids),
        "base_eval": plan.base_eval.run_id,
        "seeds": plan.seeds,
        "runs": [{"run_id": r.run_id, "labels": list(r.labels)} for r in plan.runs],
        "experiments": [
            {
                "name": e.name,
                "factor": e.factor,
                "rows": [
                    {
                        "label": row.label,
                        "run_id": row.run_id,
                        "run_ids": list(row.run_ids),
                        "is_baseline": row.is_baseline,
                    }
                    for row in e.rows
                ],
            }
            for e in plan.experiments
        ],
    }
    if plan.confirmation:
        record["confirmation"] = plan.confirmation
    if plan.tests:
        record["test"] = {t.role: t.run_id for t in plan.tests}
        record["test_runs"] = [{"run_id": t.run_id, "adapter_of": t.adapter_of} for t in plan.tests]
    return record


@contextmanager
def lock(root: Path, wait: bool = False, console: Console | None = None) -> Iterator[None]:
    """Hold the sweep folder's lock: two ``lorasweep run`` processes never share a sweep.

    The lock is an OS file lock, so it dies with its process: a killed run never leaves the
    folder locked.
    """
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise UserError(
                    f"--out: {root} is in use by another lorasweep run; "
                    "wait for it, or pass --wait to queue behind it"
                ) from None
            if console:
                console.print(f"Waiting for the other lorasweep run on {root} to finish ...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _progress(console: Console) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("  {task.description:>9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=True,
    )
    with progress:
        yield progress
