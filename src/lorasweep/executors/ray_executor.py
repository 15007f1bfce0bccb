"""Run units as Ray core tasks, in parallel across the GPUs and machines of a Ray cluster.

Each unit is one task scheduled with ``execution.gpus_per_run`` GPUs and ``cpus_per_run`` CPUs.
Its worker loads the model and data itself (through the node's tokenization cache), computes the
unit into a scratch store on its node, and returns the files it wrote; the driver writes them
into the run store atomically, so no shared file system is needed. The run store stays the only
state: Ray Tune is not used.

What survives which fault:
- a worker that dies (node lost, OOM-killed) is retried up to ``max_retries`` times; a retry on
  the same node resumes from the unit's last checkpoint in that node's scratch folder;
- an exception inside a unit is a failed unit, recorded, not retried;
- Ctrl-C cancels the running tasks and records them as cancelled; the next run does them again;
- a killed driver loses only the units that were running: rerun the same command.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import socket
import tempfile
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from lorasweep import faults
from lorasweep.config.plan import Plan, Unit, target_fields
from lorasweep.config.schema import ExecutionConfig, SweepConfig
from lorasweep.errors import UserError
from lorasweep.executors.base import Events, Executor
from lorasweep.executors.local import progress_bars
from lorasweep.store.records import RunResult, Status, UnitKind
from lorasweep.store.store import CHECKPOINT, RunStore
from lorasweep.training.model import check_targets, read_architecture, skeleton_module_names

_POLL_S = 0.5  # how often the driver looks for finished tasks and new capacity


def import_ray() -> Any:
    """The ray module, or a one-line user error naming the extra that provides it."""
    try:
        import ray
    except ImportError:
        raise UserError(
            "execution.executor: ray needs the ray package; pip install 'lorasweep[ray]'"
        ) from None
    return ray


class RayExecutor(Executor):
    """Units as Ray tasks, as many at once as the cluster's resources hold."""

    name = "ray"

    def __init__(self, execution: ExecutionConfig) -> None:
        self.execution = execution
        self.sweep: SweepConfig | None = None
        self.console = Console()
        self._connected = False  # True when this executor opened the connection to Ray

    def prepare(self, plan: Plan, console: Console) -> None:
        ray = import_ray()
        self.console, self.sweep = console, plan.sweep
        # The data were checked before (preflight); the target modules are checked here against
        # the model's architecture (its config alone: no weights), as no model loads on the driver.
        architecture = read_architecture(plan.sweep.model)
        if architecture is not None:
            modules = skeleton_module_names(architecture, plan.sweep.model.trust_remote_code)
            check_targets(target_fields(plan), modules)
        if not ray.is_initialized():
            self._connect(ray)
        check_feasible(self.execution, _nodes(ray))

    def _connect(self, ray: Any) -> None:
        address = self.execution.ray_address
        options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
        if address is None:  # a Ray instance of our own on this machine
            options.update(address="local", include_dashboard=False)
        else:
            options["address"] = address
        try:
            with self.console.status(f"Connecting to Ray ({address or 'local'}) ..."):
                ray.init(**options)
        except (ConnectionError, ValueError, RuntimeError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(
                f"execution.ray_address: cannot connect to {address!r}: {reason}"
            ) from None
        self._connected = True

    def parallelism(self) -> int:
        return max(1, capacity_of(self.execution, _nodes(import_ray())))

    def close(self) -> None:
        if self._connected:
            import ray

            ray.shutdown()
            self._connected = False

    def run(self, units: Sequence[Unit], store: RunStore, events: Events) -> None:
        ray = import_ray()
        execution = self.execution
        task = ray.remote(run_unit_task).options(
            num_gpus=execution.gpus_per_run,
            num_cpus=execution.cpus_per_run,
            max_retries=execution.max_retries,
            retry_exceptions=False,  # an exception is the unit's failure, not the worker's
        )
        scratch = scratch_key(store)
        queue, running = deque(units), {}
        with progress_bars(self.console) as progress:
            bar = progress.add_task("runs", total=len(units), info="")
            try:
                while queue or running:
                    capacity = capacity_of(execution, _nodes(ray))
                    while queue and len(running) < max(1, capacity):
                        unit = queue.popleft()
                        inputs = unit_inputs(unit, store)
                        ref = task.remote(self.sweep, unit, inputs, scratch, faults.environment(),
                                          int(math.ceil(execution.cpus_per_run)))  # fmt: skip
                        running[ref] = (unit, inputs)
                        events.started(unit)
                    progress.update(bar, info=f"{len(running)} running, {len(queue)} queued")
                    ready, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
                    for ref in ready:
                        unit, inputs = running.pop(ref)
                        try:
                            result, files = self._collect(ray, ref, unit)
                        except ray.exceptions.TaskCancelledError:
                            # Only Ctrl-C cancels tasks: when Ray reports the cancellation
                            # before Python sees the interrupt, it is still an interruption
                            # (the unit is cancelled below), never a failed run.
                            running[ref] = (unit, inputs)
                            raise KeyboardInterrupt from None
                        events.finished(unit, result, files)
                        progress.advance(bar)
            except KeyboardInterrupt:
                for ref, (unit, _) in running.items():
                    ray.cancel(ref, force=True)
                    cancelled = _unfinished(unit, Status.CANCELLED, "interrupted (Ctrl-C)")
                    events.finished(unit, cancelled, {})
                raise

    def _collect(self, ray: Any, ref: Any, unit: Unit) -> tuple[RunResult, dict[str, bytes]]:
        """The unit's result and files, or a failed result when its worker could not finish."""
        try:
            record, files = ray.get(ref)
            return RunResult.from_json(record), files
        except ray.exceptions.TaskCancelledError:
            raise  # an interruption: the caller cancels the unit
        except ray.exceptions.RayTaskError as err:  # raised outside the unit (loading, ...)
            cause = err.cause if err.cause is not None else err
            error = f"{type(cause).__name__}: {cause}".splitlines()[0]
            return _unfinished(unit, Status.FAILED, error, str(err)), {}
        except ray.exceptions.RayError as err:  # the worker or its node died, every retry
            reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
            error = (
                f"{type(err).__name__}: the worker died {self.execution.max_retries + 1} "
                f"time(s) (execution.max_retries: {self.execution.max_retries}); {reason}"
            )
            return _unfinished(unit, Status.FAILED, error[:500]), {}


def _unfinished(unit: Unit, status: Status, error: str, trace: str | None = None) -> RunResult:
    from lorasweep.training.run import unfinished_result

    return unfinished_result(unit, status, error, trace)


def _nodes(ray: Any) -> list[dict[str, float]]:
    """The resources of each live node."""
    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


def check_feasible(execution: ExecutionConfig, nodes: list[dict[str, float]]) -> None:
    """Refuse a per-run request that no node can ever satisfy (Ray would wait forever)."""
    if capacity_of(execution, nodes) > 0:
        return
    gpus = max((n.get("GPU", 0) for n in nodes), default=0)
    cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    if execution.gpus_per_run > gpus:
        hint = "set execution.gpus_per_run: 0 to run on CPUs" if gpus == 0 else "lower it"
        raise UserError(
            f"execution.gpus_per_run: {execution.gpus_per_run:g} GPU(s) per run, but no node "
            f"of the Ray cluster has more than {gpus:g}; {hint}, or add a larger node"
        )
    raise UserError(
        f"execution.cpus_per_run: {execution.cpus_per_run:g} CPU(s) per run, but no node of the "
        f"Ray cluster has more than {cpus:g}; lower it, or add a larger node"
    )


def capacity_of(execution: ExecutionConfig, nodes: list[dict[str, float]]) -> int:
    """How many units the cluster can run at once."""
    total = 0
    for node in nodes:
        fits = [node.get("CPU", 0) / execution.cpus_per_run]
        if execution.gpus_per_run:
            fits.append(node.get("GPU", 0) / execution.gpus_per_run)
        total += math.floor(min(fits) + 1e-9)
    return total


def unit_inputs(unit: Unit, store: RunStore) -> dict[str, bytes]:
    """The stored files a unit needs on its worker: its adapter, or its checkpoint, if any."""
    if unit.adapter_id is None:
        return {}
    folder = store.adapter_dir(unit.adapter_id)
    if not folder.is_dir():
        return {}
    skip = (CHECKPOINT,) if unit.kind is UnitKind.TEST else ()
    return store.files(folder, skip=skip)


def scratch_key(store: RunStore) -> str:
    """Names the driver's store, so that scratch folders of two sweeps never meet."""
    identity = f"{socket.gethostname()}:{store.root.resolve()}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


# The worker side. Kept small: it builds the same resources the local executor builds and calls
# the same ``execute``, so a unit's numbers do not depend on where it ran.

_RESOURCES: dict[str, Any] = {}  # one sweep's loaded model and data per worker process


def run_unit_task(
    sweep: SweepConfig,
    unit: Unit,
    inputs: dict[str, bytes],
    scratch: str,
    environment: dict[str, str],
    threads: int,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Compute one unit on this node; returns its result record and the files it wrote."""
    import torch

    from lorasweep.training.resources import load_resources
    from lorasweep.training.run import Hooks, execute

    os.environ.update(environment)
    torch.set_num_threads(max(1, threads))
    root = Path(tempfile.gettempdir()) / "lorasweep-ray" / scratch
    store = RunStore(root)
    for name, data in inputs.items():
        path = root / name
        # A retry on this node keeps its own newer checkpoint; everything else comes as sent.
        if not (path.name == CHECKPOINT and path.is_file()):
            store.write_files({name: data})
    key = sweep.model_dump_json()
    if key not in _RESOURCES:
        _RESOURCES.clear()
        _RESOURCES[key] = load_resources(sweep, log=lambda line: None)
    result = execute(unit, _RESOURCES[key], store, Hooks())
    folders = [store.run_dir(unit.run_id)]
    if unit.adapter_id is not None:
        folders.append(store.adapter_dir(unit.adapter_id))
    files: dict[str, bytes] = {}
    for folder in folders:
        if folder.is_dir():
            files.update(store.files(folder, skip=(CHECKPOINT, "result.json")))
    files = {name: data for name, data in files.items() if inputs.get(name) != data}
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return result.to_json(), files
