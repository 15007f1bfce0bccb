"""Mirror a sweep into Weights & Biases: one W&B run per lorasweep run, one group per sweep.

A lorasweep run keeps one W&B run id for good (made from the sweep folder's ``sweep_id`` and the
run id), and W&B resumes it when the run is computed again, after a kill or a retry, instead of
adding a run. Offline first: without an API key (or with ``mode: offline``) W&B writes run files
under ``<sweep>/wandb`` that ``wandb sync`` uploads later, and nothing waits on the network;
the folders of one resumed run are synced into that one run, in order.
"""

from __future__ import annotations

import netrc
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lorasweep.config.schema import WandbConfig
from lorasweep.export import columns, flat, run_table
from lorasweep.store.records import PlanRecord, RunResult
from lorasweep.store.store import RunStore
from lorasweep.tracking.base import Tracker

# Where W&B stages files it has not uploaded yet (tables, artifacts) and keeps its cache:
# ~/.local/share/wandb and ~/.cache/wandb unless these are set. Offline runs need the staged
# files until `wandb sync`, so they belong with the sweep.
_DIR_VARIABLES = {"WANDB_DATA_DIR": "data", "WANDB_CACHE_DIR": "cache"}


def resolve_mode(mode: str) -> str:
    """``auto`` is ``online`` when an API key is configured, else ``offline``."""
    if mode != "auto":
        return mode
    return "online" if api_key_configured() else "offline"


def api_key_configured() -> bool:
    """Whether W&B has a key: ``WANDB_API_KEY`` or a netrc entry for the W&B host.

    The key itself is never read out, only whether there is one.
    """
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(host or "")
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


class WandbTracker(Tracker):
    """Logs each run's resolved config, per-step loss and learning rate, evaluation metrics,
    efficiency figures and a predictions table; the report and plots go on a summary run.

    Args:
        config: The sweep's ``tracking.wandb`` section.
        root: The sweep folder; W&B's files go to ``root/wandb``.
    """

    name = "wandb"

    def __init__(self, config: WandbConfig, root: Path) -> None:
        self.config = config
        self.root = Path(root)
        self.mode: str | None = None  # resolved in start_sweep: it reads the environment
        self.sweep: dict[str, Any] = {}
        self.plan: PlanRecord | None = None
        self.sweep_id = ""  # the sweep folder's identity, read in start_sweep
        self._runs: dict[str, Any] = {}  # lorasweep run id -> its open W&B run
        self._last_step: dict[str, int] = {}
        self._executed = 0

    def start_sweep(self, sweep: dict[str, Any], plan: PlanRecord, root: Path) -> None:
        self.root, self.sweep, self.plan = Path(root), sweep, plan
        self.mode = resolve_mode(self.config.mode)
        self.sweep_id = RunStore(self.root).sweep_id()

    def start_run(self, run_id: str, info: dict[str, Any]) -> None:
        if self.mode in (None, "disabled"):
            return
        self._finish(run_id, exit_code=1)  # the same run left open by an earlier attempt
        config = {
            **info["config"],
            "lorasweep": {
                "sweep": self._name,
                "run_id": run_id,
                "kind": info["kind"],
                "labels": info["labels"],
                "experiments": info["experiments"],
            },
        }
        self._runs[run_id] = self._init(
            name=info["labels"][0],
            job_type=self._job_type(run_id, info),
            tags=self._tags(run_id, info),
            config=config,
            run_id=f"{self.sweep_id}-{run_id}",
        )
        self._last_step[run_id] = 0
        self._executed += 1

    def log_step(self, run_id: str, step: dict[str, Any]) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return
        values = {f"train/{k}": v for k, v in step.items() if k != "step"}
        with self._dirs():
            run.log(values, step=int(step["step"]))
        self._last_step[run_id] = int(step["step"])

    def end_run(self, run_id: str, result: RunResult, store: RunStore) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return
        # The store is the source of truth: steps not streamed through log_step come from it.
        for step in store.train_log(run_id):
            if step["step"] > self._last_step.get(run_id, 0):
                self.log_step(run_id, step)
        values: dict[str, Any] = {f"eval/{k}": v for k, v in result.metrics.items()}
        predictions = store.predictions(run_id) if result.done else []
        if predictions:
            import wandb

            names = columns(predictions)
            data = [[row.get(name) for name in names] for row in predictions]
            values["eval/predictions"] = wandb.Table(columns=names, data=data)
        with self._dirs():
            if values:
                run.log(values)
            summary: dict[str, Any] = {"status": result.status.value}
            summary.update({f"timings/{k}": v for k, v in result.timings.items()})
            summary.update({f"efficiency/{k}": v for k, v in result.efficiency.items()})
            if result.error:
                summary["error"] = result.error
            run.summary.update(summary)
        self._finish(run_id, exit_code=0 if result.done else 1)

    @property
    def _name(self) -> str | None:
        return self.plan.name if self.plan else None

    def end_sweep(self, report_dir: Path | None) -> None:
        for run_id in list(self._runs):  # runs that never ended (an interrupted sweep)
            self._finish(run_id, exit_code=1)
        if not self._executed:  # nothing new since the last summary (a rerun of a finished sweep)
            return
        import wandb

        rows = run_table(RunStore(self.root))
        names = columns(rows)
        values: dict[str, Any] = {
            "runs": wandb.Table(
                columns=names, data=[[flat(row.get(n)) for n in names] for row in rows]
            )
        }
        charts = sorted(Path(report_dir).glob("*.png")) if report_dir else []
        values.update({f"report/{png.stem}": wandb.Image(str(png)) for png in charts})
        run = self._init(
            name=f"{self._name} summary",
            job_type="summary",
            tags=["summary"],
            config={**self.sweep, "lorasweep": {"plan": self.plan.to_json() if self.plan else {}}},
        )
        with self._dirs():
            run.log(values)
            if report_dir and Path(report_dir).is_dir():
                name = re.sub(r"[^\w.-]", "-", f"{self._name}-report")
                artifact = wandb.Artifact(name, type="report")
                for path in sorted(Path(report_dir).iterdir()):  # add_dir prints a banner
                    if path.is_file():
                        artifact.add_file(str(path))
                run.log_artifact(artifact)
            run.finish()
        if self.mode == "offline":
            print(
                f"W&B: offline runs in {self.root / 'wandb'}; upload them with "
                f"`wandb sync {self.root / 'wandb'}/offline-run-*`"
            )

    def _init(
        self,
        name: str,
        job_type: str,
        tags: list[str],
        config: dict[str, Any],
        run_id: str | None = None,
    ) -> Any:
        """A new W&B run; with ``run_id``, that run, resumed if it exists."""
        import wandb

        with self._dirs():
            return wandb.init(
                project=self.config.project,
                entity=self.config.entity,
                group=self._name,
                job_type=job_type,
                name=name,
                tags=[t[:64] for t in tags],  # W&B's limit on a tag
                config=config,
                dir=str(self.root),  # W&B adds the wandb/ folder itself
                mode=self.mode,
                id=run_id,
                resume="allow" if run_id else None,
                reinit="create_new",  # never touches a run the user may have open
                # lorasweep draws its own progress; W&B must not wrap stdout or print banners.
                settings=wandb.Settings(console="off", silent=True),
            )

    def _finish(self, run_id: str, exit_code: int) -> None:
        run = self._runs.pop(run_id, None)
        if run is not None:
            with self._dirs():
                run.finish(exit_code=exit_code)

    def _job_type(self, run_id: str, info: dict[str, Any]) -> str:
        """The experiment a run belongs to; the baseline serves every experiment."""
        if info["kind"] == "base":
            return "zero-shot"
        if self.plan and run_id == self.plan.baseline:
            return "baseline"
        return "+".join(info["experiments"]) or "run"

    def _tags(self, run_id: str, info: dict[str, Any]) -> list[str]:
        """The varied factors (``lora.r``, ...), plus ``baseline`` / ``zero-shot``."""
        tags = ["zero-shot"] if info["kind"] == "base" else []
        if self.plan and run_id == self.plan.baseline:
            tags.append("baseline")
        return tags + list(info["factors"])

    @contextmanager
    def _dirs(self) -> Iterator[None]:
        """Point W&B's data and cache folders into the sweep folder while lorasweep calls W&B,
        unless the user chose their own."""
        chosen = {
            variable: str(self.root / "wandb" / sub)
            for variable, sub in _DIR_VARIABLES.items()
            if variable not in os.environ
        }
        os.environ.update(chosen)
        try:
            yield
        finally:
            for variable in chosen:
                os.environ.pop(variable, None)
