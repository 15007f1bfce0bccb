"""The sweep driver: everything about a sweep that is not computing one unit.

It holds the folder lock, writes the plan, decides which units are done, hands the rest to an
executor, writes what the executor sends back, mirrors each unit into the trackers, and plans
the follow-ups that depend on results (the confirmation run, the test-split evaluations).
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from lorasweep.config.plan import Plan, Unit, combine
from lorasweep.errors import UserError
from lorasweep.executors.base import Executor
from lorasweep.store.records import TEST_ROLES, RunResult, Status, StoreError, UnitKind
from lorasweep.store.store import RunStore
from lorasweep.tracking.base import Tracker
from lorasweep.training.loop import StepLog


@dataclass
class SweepOutcome:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # run id -> one-line error
    cancelled: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_sweep(
    plan: Plan,
    store: RunStore,
    console: Console,
    executor: Executor | None = None,
    retry_failed: bool = False,
    tracker: Tracker | None = None,
    wait: bool = False,
) -> SweepOutcome:
    """Compute every unit of ``plan`` not already done in ``store``.

    Args:
        plan: The sweep's plan.
        store: Where results go; units already done there are skipped.
        console: Where progress goes.
        executor: Computes the units (default: in this process, one after another).
        retry_failed: Run again the units recorded as failed (skipped otherwise).
        tracker: Mirrors the units executed here (W&B, MLflow); its failures only warn.
        wait: If another process holds the sweep folder, wait for it instead of refusing.
    """
    from lorasweep.executors.local import LocalExecutor

    started = time.perf_counter()
    executor = executor or LocalExecutor(plan.sweep.execution)
    tracker = tracker or Tracker()
    outcome = SweepOutcome()
    if plan.sweep.search is not None:
        from lorasweep.search.study import import_optuna, run_search

        import_optuna()  # a missing extra is refused before anything runs
    executor.prepare(plan, console)
    try:
        with lock(store.root, wait, console):
            damaged = store.check_format()  # refuses another version's store, in one line
            if damaged:
                console.print(f"{damaged.problem}: written again from the config")
            store.write_sweep_config(plan.sweep.model_dump(mode="json"))
            store.write_plan(plan.record())
            tracker.start_sweep(plan.sweep.model_dump(mode="json"), plan.record(), store.root)
            driver = _Driver(plan, store, console, executor, tracker, outcome, retry_failed)
            driver.run(plan.units())
            if plan.sweep.search is not None:  # trials join the plan batch by batch
                run_search(plan, store, driver.run, lambda: store.write_plan(plan.record()),
                           executor.parallelism(), console.print)  # fmt: skip
            # Follow-ups chosen from the results: they join the plan once the experiments end.
            if plan.sweep.confirmation and plan.experiments and add_confirmation(plan, store):
                store.write_plan(plan.record())
                console.print(f"Confirmation run: {plan.confirmation['label']}")
                driver.run([plan.unit(r) for r in plan.confirmation["run_ids"]])
            if plan.sweep.test is not None and add_tests(plan, store):
                store.write_plan(plan.record())
                driver.run([plan.unit(t.run_id) for t in plan.tests])
    finally:
        executor.close()
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
    """Plan the test-split evaluations of the baseline, confirmation and best configurations:
    every seed's finished run, each once whatever roles it has."""
    from lorasweep.report.tables import build_tables
    from lorasweep.search.study import best_trial

    best = build_tables(store).best
    trial = best_trial(plan.record(), store)
    configurations = {
        "baseline": plan.baseline_ids,
        "confirmation": (plan.confirmation or {}).get("run_ids", ()),
        # Without experiments the best single-factor configuration is the baseline itself.
        "best": best.run_ids if best is not None and plan.experiments else (),
        "best trial": trial.run_ids if trial is not None else (),
    }
    plan.tests = []
    for role in TEST_ROLES:
        for run_id in configurations[role]:
            if store.status(run_id) is Status.DONE:
                plan.add_test(run_id, role)
    return bool(plan.tests)


@dataclass
class _Driver:
    """Hands the units not yet done to the executor and takes in what comes back."""

    plan: Plan
    store: RunStore
    console: Console
    executor: Executor
    tracker: Tracker
    outcome: SweepOutcome
    retry_failed: bool
    _started: int = 0
    _total: int = 0

    def run(self, units: Sequence[Unit]) -> None:
        pending = []
        for unit in units:
            result = self.store.result(unit.run_id)
            status = result.status if result else Status.PLANNED
            damage = self.store.damage(unit.run_id) or self._adapter_damage(unit, status)
            if damage:  # a damaged record is work not done: computed again
                self.console.print(f"{damage.problem}: computing {unit.run_id} again")
                status = Status.PLANNED
            if status is Status.DONE or (status is Status.FAILED and not self.retry_failed):
                self.outcome.skipped.append(unit.run_id)
                self.console.print(f"{unit.label} ({unit.run_id}): {status}, skipped")
                if status is Status.FAILED:  # still a hole in the sweep: the exit status says so
                    self.outcome.failed[unit.run_id] = result.error or "failed earlier"
                continue
            pending.append(unit)
        self._started = 0
        self._total = len(pending)
        if pending:
            self.executor.run(pending, self.store, self)

    def _adapter_damage(self, unit: Unit, status: Status) -> StoreError | None:
        """A finished run whose adapter record is damaged is trained again, so that the
        store holds no damaged record once the run is over."""
        if status is not Status.DONE or unit.kind is not UnitKind.TRAIN:
            return None
        self.store.adapter(unit.adapter_id)
        return self.store.adapter_damage(unit.adapter_id)

    # Events: called by the executor, in any order across units.

    def started(self, unit: Unit) -> None:
        self._started += 1
        self.console.print(f"[{self._started}/{self._total}] {unit.label} ({unit.run_id})")
        self.tracker.start_run(unit.run_id, run_info(self.plan, unit))

    def step(self, unit: Unit, log: StepLog) -> None:
        self.tracker.log_step(unit.run_id, log.as_dict())

    def finished(self, unit: Unit, result: RunResult, files: Mapping[str, bytes] | None) -> None:
        if files is not None:  # computed elsewhere: its files, then its record, last
            self.store.write_files(files)
            self.store.write_result(result)
        self.tracker.end_run(unit.run_id, result, self.store)
        if result.status is Status.DONE:
            self.outcome.done.append(unit.run_id)
            metrics = "  ".join(f"{k} {v:.2f}" for k, v in result.metrics.items())
            seconds = result.timings.get("total_s", 0.0)
            self.console.print(f"  {unit.label}: done in {seconds:.1f}s: {metrics}")
        elif result.status is Status.CANCELLED:
            self.outcome.cancelled.append(unit.run_id)
        else:
            self.outcome.failed[unit.run_id] = result.error or "failed"
            self.console.print(f"  {unit.label}: [red]failed[/red]: {result.error}")


def run_info(plan: Plan, unit: Unit) -> dict:
    """What a tracker needs to group and tag a unit: its experiments and their varied factors."""
    if unit.kind is not UnitKind.TRAIN:
        return {"kind": unit.kind.value, "labels": [unit.label], "experiments": {}, "factors": [],
                "config": unit.spec.resolved}  # fmt: skip
    run_id = unit.run_id
    experiments = {
        e.name: row.label for e in plan.experiments for row in e.rows if run_id in row.run_ids
    }
    factors = [e.factor for e in plan.experiments if e.name in experiments]
    return {"kind": unit.kind.value, "labels": list(unit.spec.labels), "experiments": experiments,
            "factors": factors, "config": unit.spec.resolved}  # fmt: skip


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
