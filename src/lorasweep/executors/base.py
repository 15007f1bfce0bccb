"""The executor extension point: where and how a sweep's units of work are computed.

The sweep driver (``executors/driver.py``) owns everything about the sweep: the plan, the folder
lock, which units are done, the follow-ups chosen from results, the records and the report. An
executor only takes units and hands back each one's outcome as it finishes, in any order.
Adding one (Slurm, Kubernetes jobs, ...) means writing one module with one ``Executor`` subclass
and naming it in ``EXECUTORS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from lorasweep.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from lorasweep.config.plan import Plan, Unit
    from lorasweep.store.records import RunResult
    from lorasweep.store.store import RunStore
    from lorasweep.training.loop import StepLog


class Events(Protocol):
    """What an executor tells the driver. Every call names its unit: units may overlap."""

    def started(self, unit: Unit) -> None:
        """The unit began (or, on a cluster, was handed to the scheduler)."""

    def step(self, unit: Unit, log: StepLog) -> None:
        """One optimizer step of a training unit, where the executor can stream them."""

    def finished(self, unit: Unit, result: RunResult, files: Mapping[str, bytes] | None) -> None:
        """The unit ended (done, failed or cancelled). ``files``: what it wrote, as paths
        relative to the store, when it ran elsewhere; None when it wrote into the store."""


class Executor:
    """Computes units of work. Override ``run``; ``prepare`` and ``close`` are optional."""

    name = "executor"

    def prepare(self, plan: Plan, console: Console) -> None:
        """Check, before anything is written, that the plan can run here.

        Raises:
            UserError: For anything the user can fix (data, model, resources).
        """

    def run(self, units: Sequence[Unit], store: RunStore, events: Events) -> None:
        """Compute every unit, calling ``events`` as each starts and finishes."""
        raise NotImplementedError

    def parallelism(self) -> int:
        """How many units ``run`` computes at once (after ``prepare``): a search's batch."""
        return 1

    def close(self) -> None:
        """Release what ``prepare`` acquired (a cluster connection, a loaded model)."""


# Executor name (``execution.executor``) -> "module:class"; imported only when chosen.
EXECUTORS = {
    "local": "lorasweep.executors.local:LocalExecutor",
    "ray": "lorasweep.executors.ray_executor:RayExecutor",
}


def build_executor(name: str, execution) -> Executor:
    """The executor the config names, built from its ``execution`` section."""
    if name not in EXECUTORS:
        raise UserError(
            f"execution.executor: unknown executor {name!r}; use {', '.join(EXECUTORS)}"
        )
    module, _, cls = EXECUTORS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(execution)
