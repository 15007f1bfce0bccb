"""Mirror a sweep into MLflow: one parent run per sweep folder, one child run per lorasweep run.

A rerun finds its runs again by their tags (the folder's ``sweep_id``, the lorasweep run id) and
resumes them instead of adding new ones. A process killed mid-sweep leaves its runs RUNNING; the
next run of the sweep (which holds the folder's lock, so no other process owns them) marks them
KILLED, then reopens those it computes again, and finishes the parent with the new report.

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
from lorasweep.store.records import PlanRecord, RunResult, Status
from lorasweep.store.store import RunStore
from lorasweep.tracking.base import Tracker

FAILED, KILLED = Status.FAILED.value, "KILLED"
_RUN_FILES = ("config.yaml", "predictions.jsonl", "result.json")
_ADAPTER_FILES = ("train_log.jsonl", "adapter.json")
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
        self.plan: PlanRecord | None = None
        self.sweep_id = ""  # the sweep folder's identity, read in start_sweep
        self._parent: str | None = None  # open once the first run is executed
        self._earlier_parent: Any = None  # the sweep's parent from an earlier run, if any
        self._runs: dict[str, str] = {}  # lorasweep run id -> its open MLflow run id
        self._last_step: dict[str, int] = {}  # the last training step logged, per run

    @property
    def tracking_uri(self) -> str:
        return self.config.tracking_uri or default_tracking_uri(self.root)

    def start_sweep(self, sweep: dict[str, Any], plan: PlanRecord, root: Path) -> None:
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
        self.sweep_id = RunStore(self.root).sweep_id()
        # Runs still RUNNING belong to a process that died (it would hold the folder's lock).
        for run in self._search("attributes.status = 'RUNNING'"):
            self.client.set_terminated(run.info.run_id, KILLED)
        parents = self._search("tags.`lorasweep.kind` = 'sweep'")
        self._earlier_parent = parents[0] if parents else None

    def start_run(self, run_id: str, info: dict[str, Any]) -> None:
        if self.client is None:
            return
        self._close(run_id, FAILED)  # the same run left open by an earlier attempt
        if self._parent is None:
            self._parent = self._open_parent()
        name = self.plan.name if self.plan else ""
        tags = {
            "mlflow.parentRunId": self._parent,
            "lorasweep.sweep": name,
            "lorasweep.sweep_id": self.sweep_id,
            "lorasweep.run_id": run_id,
            "lorasweep.kind": info["kind"],
            "lorasweep.labels": ", ".join(info["labels"]),
            "lorasweep.experiments": ", ".join(info["experiments"]),
            "lorasweep.factors": ", ".join(info["factors"]),
            "lorasweep.baseline": str(bool(self.plan) and run_id == self.plan.baseline).lower(),
        }
        earlier = self._search(f"tags.`lorasweep.run_id` = '{run_id}'")
        if earlier:  # computed again (killed, cancelled, retried): the same MLflow run goes on
            mlflow_run = earlier[0].info.run_id
            self.client.update_run(mlflow_run, status="RUNNING")
            for key, value in tags.items():
                self.client.set_tag(mlflow_run, key, value)
            history = self.client.get_metric_history(mlflow_run, "train/loss")
            self._last_step[run_id] = max((m.step for m in history), default=0)
        else:
            run = self.client.create_run(self.experiment_id, run_name=info["labels"][0], tags=tags)
            mlflow_run = run.info.run_id
            self._last_step[run_id] = 0
        self._runs[run_id] = mlflow_run
        from mlflow.entities import Param

        # Logged again on a resumed run: MLflow accepts a param logged twice with one value.
        params = [Param(k, v) for k, v in flatten(info["config"]).items()]
        for start in range(0, len(params), _MAX_PARAMS):
            self.client.log_batch(mlflow_run, params=params[start : start + _MAX_PARAMS])

    def log_step(self, run_id: str, step: dict[str, Any]) -> None:
        if run_id in self._runs:
            self._log_steps(run_id, [step])

    def end_run(self, run_id: str, result: RunResult, store: RunStore) -> None:
        mlflow_run = self._runs.get(run_id)
        if mlflow_run is None:
            return
        # The store is the source of truth: steps not streamed through log_step come from it.
        last = self._last_step.get(run_id, 0)
        self._log_steps(run_id, [s for s in store.train_log(run_id) if s["step"] > last])
        values = {f"eval/{k}": v for k, v in result.metrics.items()}
        values.update({f"timings/{k}": v for k, v in result.timings.items()})
        values.update({f"efficiency/{k}": v for k, v in result.efficiency.items()})
        self._log_metrics(mlflow_run, [(self._last_step.get(run_id, 0), values)])
        self.client.set_tag(mlflow_run, "lorasweep.status", result.status.value)
        if result.error:
            self.client.set_tag(mlflow_run, "lorasweep.error", str(result.error)[:5000])
        elif "lorasweep.error" in self.client.get_run(mlflow_run).data.tags:  # an earlier try's
            self.client.delete_tag(mlflow_run, "lorasweep.error")
        run_dir = store.run_dir(run_id)
        adapter_dir = store.adapter_dir(result.adapter_id) if result.adapter_id else None
        for folder, names in ((run_dir, _RUN_FILES), (adapter_dir, _ADAPTER_FILES)):
            for name in names:
                if folder is not None and (folder / name).is_file():
                    self.client.log_artifact(mlflow_run, str(folder / name))
        if adapter_dir is not None and (adapter_dir / "adapter").is_dir():
            self.client.log_artifacts(mlflow_run, str(adapter_dir / "adapter"), "adapter")
        predictions = store.predictions(run_id) if result.done else []
        if predictions:
            names = list(dict.fromkeys(k for row in predictions for k in row))
            table = {name: [row.get(name) for row in predictions] for name in names}
            with warnings.catch_warnings():
                # MLflow's table check trips pandas 3's dtype FutureWarning; nothing to act on.
                warnings.simplefilter("ignore", FutureWarning)
                self.client.log_table(mlflow_run, data=table, artifact_file="predictions.json")
        self._close(run_id, result.status.value)

    def end_sweep(self, report_dir: Path | None) -> None:
        if self.client is None:
            return
        for run_id in list(self._runs):  # runs that never ended (an interrupted sweep)
            self._close(run_id, FAILED)
        if self._parent is None:
            earlier = self._earlier_parent
            if earlier is None or earlier.info.status == "FINISHED":
                return  # nothing new since the last sweep run (a finished sweep)
            self._parent = self._open_parent()  # a killed sweep's parent gets its report
        if report_dir and Path(report_dir).is_dir():
            self.client.log_artifacts(self._parent, str(report_dir), "report")
        self.client.log_text(self._parent, to_csv(run_table(RunStore(self.root))), "runs.csv")
        self.client.set_terminated(self._parent, "FINISHED")
        self._parent = None
        if self.config.tracking_uri is None:
            print(f"MLflow: mlflow ui --backend-store-uri {self.tracking_uri}")

    def _open_parent(self) -> str:
        """The sweep's parent run, the earlier one reopened: its config and plan, later its
        report and run table."""
        name = self.plan.name if self.plan else ""
        if self._earlier_parent is not None:
            parent = self._earlier_parent.info.run_id
            self.client.update_run(parent, status="RUNNING")
        else:
            tags = {"lorasweep.sweep": name, "lorasweep.kind": "sweep",
                    "lorasweep.sweep_id": self.sweep_id,
                    "lorasweep.sweep_dir": str(self.root.absolute())}  # fmt: skip
            parent = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
            parent = parent.info.run_id
        for name in ("sweep.yaml", "plan.json"):
            if (self.root / name).is_file():
                self.client.log_artifact(parent, str(self.root / name))
        return parent

    def _search(self, condition: str) -> list[Any]:
        """This sweep's runs that meet ``condition``, the newest first."""
        return self.client.search_runs(
            [self.experiment_id],
            f"tags.`lorasweep.sweep_id` = '{self.sweep_id}' AND {condition}",
            order_by=["attributes.start_time DESC"],
        )

    def _log_steps(self, run_id: str, steps: list[dict[str, Any]]) -> None:
        """Training steps after the last one logged: a run resumed from a checkpoint trains
        again the steps since that checkpoint, which its MLflow run already holds."""
        last = self._last_step.get(run_id, 0)
        rows = [
            (int(s["step"]), {f"train/{k}": v for k, v in s.items() if k != "step"})
            for s in steps
            if int(s["step"]) > last
        ]
        self._log_metrics(self._runs[run_id], rows)
        if rows:
            self._last_step[run_id] = rows[-1][0]

    def _log_metrics(self, mlflow_run: str, rows: list[tuple[int, dict[str, Any]]]) -> None:
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
            self.client.log_batch(mlflow_run, metrics=metrics[start : start + _MAX_METRICS])

    def _close(self, run_id: str, status: str) -> None:
        run = self._runs.pop(run_id, None)
        if run is not None:
            self.client.set_terminated(run, "FAILED" if status == FAILED else "FINISHED")
