"""The tracker extension point: mirror a sweep into an experiment tracker (W&B, MLflow, ...).

lorasweep's run store stays the source of truth; a tracker only mirrors it. Trackers are called
through ``TrackerGroup``, which turns any tracker exception into a warning: a tracker failure
never fails a run.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lorasweep.store.records import PlanRecord, RunResult
    from lorasweep.store.store import RunStore


class Tracker:
    """Override the hooks you need; each receives plain data from the run store.

    Order of calls: ``start_sweep``, then for each run executed ``start_run``, ``log_step``
    (training runs, once per optimizer step, where the executor streams them), ``end_run``;
    finally ``end_sweep``. Runs may overlap and end in any order (the Ray executor runs several
    at once), so every per-run call names its run.
    """

    name = "tracker"

    def start_sweep(self, sweep: dict[str, Any], plan: PlanRecord, root: Path) -> None:
        """``sweep``: the validated config as JSON data; ``plan``: the store's plan record."""

    def start_run(self, run_id: str, info: dict[str, Any]) -> None:
        """``info``: kind ("lora" or "base"), labels, experiments (name -> value label), the
        varied factors, and the resolved config."""

    def log_step(self, run_id: str, step: dict[str, Any]) -> None:
        """One optimizer step: step, loss, learning_rate, target_tokens, tokens."""

    def end_run(self, run_id: str, result: RunResult, store: RunStore) -> None:
        """``result``: the run's record (done, failed or cancelled); its files are in ``store``
        (``store.run_dir(run_id)``, and ``store.adapter_dir(result.adapter_id)``). Steps that
        were not streamed through ``log_step`` are in ``store.train_log(run_id)``."""

    def end_sweep(self, report_dir: Path | None) -> None:
        """The sweep is over; the report (Markdown and charts) is in report_dir if written."""


class TrackerGroup(Tracker):
    """Calls every tracker; a tracker that raises is warned about and skipped from then on."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = list(trackers)

    def _call(self, hook: str, *args: Any) -> None:
        for tracker in list(self.trackers):
            try:
                getattr(tracker, hook)(*args)
            except Exception as err:  # a tracker never fails a run
                warnings.warn(
                    f"{tracker.name} tracker failed in {hook} and is turned off: {err}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self.trackers.remove(tracker)

    def start_sweep(self, sweep, plan, root):
        self._call("start_sweep", sweep, plan, root)

    def start_run(self, run_id, info):
        self._call("start_run", run_id, info)

    def log_step(self, run_id, step):
        self._call("log_step", run_id, step)

    def end_run(self, run_id, result, store):
        self._call("end_run", run_id, result, store)

    def end_sweep(self, report_dir):
        self._call("end_sweep", report_dir)
