"""Run units in this process, one after another, the base model loaded once, with progress bars.

Everything a user can get wrong (config, data, model, target modules) is checked in ``prepare``,
before the first file is written. After that a failing unit is recorded as failed and the sweep
goes on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lorasweep.config.plan import Plan, Unit, target_fields
from lorasweep.config.schema import ExecutionConfig
from lorasweep.data.sources import describe_references
from lorasweep.evaluation.backends import build_engine
from lorasweep.executors.base import Events, Executor
from lorasweep.store.records import UnitKind
from lorasweep.store.store import RunStore
from lorasweep.training.loop import StepLog, total_steps
from lorasweep.training.model import check_targets, linear_module_names
from lorasweep.training.resources import SweepResources, load_resources
from lorasweep.training.run import Hooks, execute


class LocalExecutor(Executor):
    """In-process execution: today's behaviour, and the reference the others must match."""

    name = "local"

    def __init__(self, execution: ExecutionConfig | None = None) -> None:
        self.execution = execution or ExecutionConfig()
        self.resources: SweepResources | None = None
        self.console = Console()

    def prepare(self, plan: Plan, console: Console) -> None:
        self.console = console
        self.resources = prepare(plan, console)
        self.resources.engine = build_engine(plan, self.resources)  # None: hf, in this process

    def run(self, units: Sequence[Unit], store: RunStore, events: Events) -> None:
        assert self.resources is not None, "prepare() first"
        for unit in units:
            events.started(unit)
            with progress_bars(self.console) as progress:
                hooks = self._hooks(unit, store, progress, events)
                result = execute(unit, self.resources, store, hooks)
            events.finished(unit, result, None)

    def close(self) -> None:
        if self.resources is not None and self.resources.engine is not None:
            self.resources.engine.close()
        self.resources = None

    def _hooks(self, unit: Unit, store: RunStore, progress: Progress, events: Events) -> Hooks:
        resources = self.resources
        train_task = None
        if unit.kind is UnitKind.TRAIN and store.adapter(unit.adapter_id) is None:
            encoded = resources.train_encoded(unit.spec.settings.training.max_length)
            steps = total_steps(unit.spec.settings.training, len(encoded))
            train_task = progress.add_task("train", total=steps, info="")
        test = unit.kind is UnitKind.TEST
        examples = resources.test_examples if test else resources.eval_examples
        eval_task = progress.add_task("evaluate", total=len(examples), info="")

        def on_step(log: StepLog) -> None:
            if train_task is not None:
                progress.update(train_task, advance=1, info=f"loss {log.loss:.3f}")
            events.step(unit, log)

        return Hooks(on_step=on_step, on_eval_batch=lambda n: progress.update(eval_task, advance=n))


def prepare(plan: Plan, console: Console) -> SweepResources:
    """Load data and model and check the plan against them; raises ``UserError`` on bad input."""
    sweep = plan.sweep
    resources = load_resources(sweep, log=console.print, status=console.status)
    check_targets(target_fields(plan), linear_module_names(resources.model))
    splits = {"train": sweep.data.train_split, "evaluation": sweep.evaluation.split}
    if sweep.test is not None:
        splits["test"] = sweep.test.split
    references = describe_references(sweep.data, splits)
    console.print(
        f"Data: {len(resources.train_examples)} training examples, "
        f"{len(resources.eval_examples)} evaluation examples "
        f"({sweep.evaluation.split}, seed {sweep.evaluation.seed})"
        + (f"; {references}." if references else ".")
    )
    return resources


@contextmanager
def progress_bars(console: Console) -> Iterator[Progress]:
    """Transient progress bars: a name, a bar, done/total, elapsed time, a note."""
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
