"""Mirror a sweep into MLflow: one parent run per sweep invocation, one child run per lorasweep run.

By default the store is local, inside the sweep folder (``sqlite:///<sweep>/mlflow.db``, MLflow's
own default backend, with artifacts in ``<sweep>/mlartifacts``); ``mlflow ui
--backend-store-uri sqlite:///<sweep>/mlflow.db`` shows it.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

from lorasweep.config.schema import MlflowConfig
from lorasweep.export import run_table, to_csv
from lorasweep.store.store import FAILED, RunStore, read_jsonl
from lorasweep.tracking.base import Tracker

_RUN_FILES = ("config.yaml", "train_log.jsonl", "predictions.jsonl", "result.json")
_MAX_PARAMS, _MAX_METRICS = 100, 1000  # MLflow's limits on one log_batch call


def default_tracking_uri(root: Path) -> str:
    """The local store of a sweep: an SQLite database in the sweep folder."""
    return f"sqlite:///{(Path(root).absolute() / 'mlflow.db').as_posix()}"


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> MLflow params: ``{"lora": {"r": 8}}`` -> ``{"lora.r": "8"}``."""
    params: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            params.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            params[name] = ",".join(str(v) for v in value)
        else:
            params[name] = str(value)
    return params


class MlflowTracker(Tracker):
    """Logs params (the resolved config), per-step and final metrics, and the run's files as
    artifacts: the adapter, the predictions (also as an MLflow table), config and result.

    Args:
        config: The sweep's ``tracking.mlflow`` section.
        root: The sweep folder, home of the default local store.
    """

    name = "mlflow"

    def __init__(self, config: MlflowConfig, root: Path) -> None:
        self.config = config
        self.root = Path(root)
        self.client: Any = None  # created in start_sweep: creating a store writes files
        self.experiment_id: str | None = None
        self.sweep: dict[str, Any] = {}
        self.plan: dict[str, Any] = {}
        self._parent: str | None = None  # created with the first run executed
        self._run: str | None = None
        self._last_step = 0

    @property
    def tracking_uri(self) -> str:
        return self.config.tracking_uri or default_tracking_uri(self.root)

    def start_sweep(self, sweep: dict[str, Any], plan: dict[str, Any], root: Path) -> None:
        from mlflow import MlflowClient

        self.root, self.sweep, self.plan = Path(root), sweep, plan
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        name = self.config.experiment or sweep["name"]
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            # MLflow's default artifact root is ./mlruns of the working directory; the default
            # store keeps artifacts beside it instead. A user's own store decides for itself.
            location = (
                (self.root.absolute() / "mlartifacts").as_uri()
                if self.config.tracking_uri is None
                else None
            )
            self.experiment_id = self.client.create_experiment(name, artifact_location=location)
        elif experiment.lifecycle_stage == "deleted":
            raise RuntimeError(
                f"MLflow experiment {name!r} is deleted; "
                "restore it or name another in tracking.mlflow.experiment"
            )
        else:
            self.experiment_id = experiment.experiment_id

    def start_run(self, run_id: str, info: dict[str, Any]) -> None:
        if self.client is None:
            return
        self._close(FAILED)  # a run left open by an earlier failure
        if self._parent is None:
            self._parent = self._start_parent()
        tags = {
            "mlflow.parentRunId": self._parent,
            "lorasweep.sweep": self.plan.get("name", ""),
            "lorasweep.run_id": run_id,
            "lorasweep.kind": info["kind"],
            "lorasweep.labels": ", ".join(info["labels"]),
            "lorasweep.experiments": ", ".join(info["experiments"]),
            "lorasweep.factors": ", ".join(info["factors"]),
            "lorasweep.baseline": str(run_id == self.plan.get("baseline")).lower(),
        }
        run = self.client.create_run(self.experiment_id, run_name=info["labels"][0], tags=tags)
        self._run = run.info.run_id
        self._last_step = 0
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in flatten(info["config"]).items()]
        for start in range(0, len(params), _MAX_PARAMS):
            self.client.log_batch(self._run, params=params[start : start + _MAX_PARAMS])

    def log_step(self, step: dict[str, Any]) -> None:
        if self._run is not None:
            self._log_steps([step])

    def end_run(self, result: dict[str, Any], run_dir: Path) -> None:
        if self._run is None:
            return
        run_dir = Path(run_dir)
        # The store is the source of truth: steps not streamed through log_step come from it.
        self._log_steps(
            [s for s in read_jsonl(run_dir / "train_log.jsonl") if s["step"] > self._last_step]
        )
        result = result or {"status": FAILED, "error": "no result.json was written"}
        values = {f"eval/{k}": v for k, v in (result.get("metrics") or {}).items()}
        values.update({f"timings/{k}": v for k, v in (result.get("timings") or {}).items()})
        values.update({f"efficiency/{k}": v for k, v in (result.get("efficiency") or {}).items()})
        self._log_metrics([(self._last_step, values)])
        self.client.set_tag(self._run, "lorasweep.status", result["status"])
        if result.get("error"):
            self.client.set_tag(self._run, "lorasweep.error", str(result["error"])[:5000])
        for name in _RUN_FILES:
            if (run_dir / name).is_file():
                self.client.log_artifact(self._run, str(run_dir / name))
        if (run_dir / "adapter").is_dir():
            self.client.log_artifacts(self._run, str(run_dir / "adapter"), "adapter")
        predictions = read_jsonl(run_dir / "predictions.jsonl")
        if predictions:
            names = list(dict.fromkeys(k for row in predictions for k in row))
            table = {name: [row.get(name) for row in predictions] for name in names}
            with warnings.catch_warnings():
                # MLflow's table check trips pandas 3's dtype FutureWarning; nothing to act on.
                warnings.simplefilter("ignore", FutureWarning)
                self.client.log_table(self._run, data=table, artifact_file="predictions.json")
        self._close(result["status"])

    def end_sweep(self, report_dir: Path | None) -> None:
        if self.client is None:
            return
        self._close(FAILED)
        if self._parent is None:  # nothing new since the last sweep run (a finished sweep)
            return
        if report_dir and Path(report_dir).is_dir():
            self.client.log_artifacts(self._parent, str(report_dir), "report")
        self.client.log_text(self._parent, to_csv(run_table(RunStore(self.root))), "runs.csv")
        self.client.set_terminated(self._parent, "FINISHED")
        self._parent = None
        if self.config.tracking_uri is None:
            print(f"MLflow: mlflow ui --backend-store-uri {self.tracking_uri}")

    def _start_parent(self) -> str:
        """The sweep's parent run: its config and plan, later its report and run table."""
        tags = {"lorasweep.sweep": self.plan.get("name", ""), "lorasweep.kind": "sweep"}
        run = self.client.create_run(self.experiment_id, run_name=self.plan.get("name"), tags=tags)
        for name in ("sweep.yaml", "plan.json"):
            if (self.root / name).is_file():
                self.client.log_artifact(run.info.run_id, str(self.root / name))
        return run.info.run_id

    def _log_steps(self, steps: list[dict[str, Any]]) -> None:
        rows = [
            (int(s["step"]), {f"train/{k}": v for k, v in s.items() if k != "step"}) for s in steps
        ]
        self._log_metrics(rows)
        if rows:
            self._last_step = rows[-1][0]

    def _log_metrics(self, rows: list[tuple[int, dict[str, Any]]]) -> None:
        """(step, {name: value}) rows, in as few calls as MLflow's batch limit allows."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, step)
            for step, values in rows
            for key, value in values.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        ]
        for start in range(0, len(metrics), _MAX_METRICS):
            self.client.log_batch(self._run, metrics=metrics[start : start + _MAX_METRICS])

    def _close(self, status: str) -> None:
        run, self._run = self._run, None
        if run is not None:
            self.client.set_terminated(run, "FAILED" if status == FAILED else "FINISHED")
