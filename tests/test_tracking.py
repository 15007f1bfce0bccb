"""Trackers: one real sweep mirrored into W&B (offline) and a local MLflow store, read back with
the trackers' own tools; plus the cheap rules (mode, missing extras, failures only warn).

Nothing here touches the network: W&B runs offline without an API key, MLflow's store is a file.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from lorasweep.cli.main import main
from lorasweep.config.schema import MlflowConfig, TrackingConfig, WandbConfig
from lorasweep.errors import UserError
from lorasweep.store.records import PlanRecord, RunResult
from lorasweep.store.store import RunStore, read_jsonl, write_jsonl
from lorasweep.tracking.base import TrackerGroup
from lorasweep.tracking.factory import build_trackers
from tests.conftest import sweep_dict, write_yaml

wandb = pytest.importorskip("wandb", reason="the wandb extra is not installed")
mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy via MLflow

OFFLINE = {
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}


def offline_env(monkeypatch, home: Path) -> None:
    """No key, no network, and a fresh HOME to catch files written outside the sweep."""
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    for name in ("WANDB_API_KEY", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / ".netrc"))


@pytest.fixture(scope="module")
def tracked_sweep(micro_model, dialogue_dir, tmp_path_factory):
    """The conftest sweep (4 training runs + zero-shot) with both trackers on, W&B in auto mode."""
    root = tmp_path_factory.mktemp("tracked")
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["tracking"] = {"wandb": {"project": "lorasweep-test", "mode": "auto"}, "mlflow": {}}
    config = write_yaml(root / "micro.yaml", raw)
    out = root / "sweep"
    with pytest.MonkeyPatch.context() as monkeypatch:
        offline_env(monkeypatch, root / "home")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            assert main(["run", str(config), "--out", str(out)]) == 0
        tracker_warnings = [str(w.message) for w in caught if "tracker failed" in str(w.message)]
        assert tracker_warnings == [], "both trackers must run the whole sweep"
    plan = json.loads((out / "plan.json").read_text())
    results = {
        run_id: json.loads((out / "runs" / run_id / "result.json").read_text())
        for run_id in [plan["base_eval"]] + [r["run_id"] for r in plan["runs"]]
    }
    return out, plan, results, root / "home"


# --- W&B: offline run files, read with W&B's own record format -----------------------------


def wandb_records(path: Path):
    """The records of a ``run-<id>.wandb`` file (a LevelDB-style log of W&B protobuf records)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            pos += block - pos % block
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def read_wandb_run(folder: Path) -> dict:
    """run, config, per-step history and final summary of one offline run folder."""
    out = {"run": None, "config": {}, "history": [], "summary": {}, "artifacts": {}}
    for record in wandb_records(next(folder.glob("run-*.wandb"))):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = record.run
            items(out["config"], record.run.config.update)
        elif kind == "config":
            items(out["config"], record.config.update)
        elif kind == "history":
            out["history"].append(items({}, record.history.item))
        elif kind == "summary":
            items(out["summary"], record.summary.update)
        elif kind == "artifact":
            files = {entry.path for entry in record.artifact.manifest.contents}
            out["artifacts"][record.artifact.type] = files
    return out


def wandb_run_id(folder: Path) -> str:
    """The W&B run id in an offline run folder's name, ``offline-run-<time>-<id>``. Two
    attempts of one run within the same second get ``-1``, ``-2``, ... appended (W&B's
    ``x_sync_dir_suffix``): the id is the name without it."""
    name = folder.name.split("-", 3)[3]
    stem, _, index = name.rpartition("-")
    if index.isdigit() and (folder.parent / folder.name.rpartition("-")[0]).is_dir():
        return stem
    return name


def wandb_folders(wandb_dir: Path, run_id: str) -> list[Path]:
    """The offline folders of W&B run ``run_id``, one per attempt, oldest first (a same-second
    attempt's ``-1`` suffix sorts after the folder it follows)."""
    return sorted(
        f for f in wandb_dir.glob(f"offline-run-*-{run_id}*") if wandb_run_id(f) == run_id
    )


def items(target: dict, updates) -> dict:
    """Apply W&B key/value items to ``target``; a nested key (a media file's fields) nests."""
    for item in updates:
        *parents, last = [item.key] if item.key else list(item.nested_key)
        node = target
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = json.loads(item.value_json)
    return target


@pytest.fixture(scope="module")
def wandb_runs(tracked_sweep):
    """Offline runs by lorasweep run id; the summary run as "summary"."""
    out, *_ = tracked_sweep
    runs = {}
    for folder in (out / "wandb").glob("offline-run-*"):
        run = read_wandb_run(folder) | {"folder": folder}
        runs[run["config"]["lorasweep"].get("run_id", "summary")] = run
    return runs


def test_wandb_offline_run_per_run_plus_summary(tracked_sweep, wandb_runs):
    out, plan, results, _ = tracked_sweep
    assert set(wandb_runs) == set(results) | {"summary"}
    for run_id in results:
        run = wandb_runs[run_id]["run"]
        assert run.project == "lorasweep-test" and run.run_group == "micro"
        if run_id == plan["base_eval"]:
            assert (run.job_type, list(run.tags)) == ("zero-shot", ["zero-shot"])
        elif run_id == plan["baseline"]:
            assert run.job_type == "baseline"
            assert set(run.tags) >= {"baseline", "lora.r", "training.learning_rate"}
        else:
            experiment = next(
                e for e in plan["experiments"] for r in e["rows"] if run_id in r["run_ids"]
            )
            assert (run.job_type, list(run.tags)) == (experiment["name"], [experiment["factor"]])
    assert wandb_runs["summary"]["run"].job_type == "summary"


def test_wandb_logs_config_steps_metrics_and_efficiency(tracked_sweep, wandb_runs):
    out, plan, results, _ = tracked_sweep
    for run in plan["runs"]:
        result, logged = results[run["run_id"]], wandb_runs[run["run_id"]]
        assert logged["config"]["lora"] == result["config"]["lora"]
        assert logged["config"]["training"] == result["config"]["training"]
        steps = read_jsonl(out / "adapters" / run["adapter_id"] / "train_log.jsonl")
        history = [h for h in logged["history"] if "train/loss" in h]
        assert [h["_step"] for h in history] == [s["step"] for s in steps] == list(range(1, 7))
        assert [h["train/loss"] for h in history] == pytest.approx([s["loss"] for s in steps])
        assert [h["train/learning_rate"] for h in history] == pytest.approx(
            [s["learning_rate"] for s in steps]
        )
        summary = logged["summary"]
        for key, value in result["metrics"].items():
            assert summary[f"eval/{key}"] == pytest.approx(value)
        assert summary["efficiency/trainable_params"] == result["efficiency"]["trainable_params"]
        assert summary["timings/train_s"] == pytest.approx(result["timings"]["train_s"])
        assert summary["status"] == "done"


def test_wandb_predictions_table_holds_every_example(tracked_sweep, wandb_runs):
    out, plan, _, _ = tracked_sweep
    logged = wandb_runs[plan["baseline"]]
    table_ref = logged["summary"]["eval/predictions"]
    assert table_ref["_type"] == "table-file" and table_ref["nrows"] == 8
    table = json.loads((logged["folder"] / "files" / table_ref["path"]).read_text())
    stored = read_jsonl(out / "runs" / plan["baseline"] / "predictions.jsonl")
    assert {"input", "reference", "prediction", "rougeL"} <= set(table["columns"])
    column = table["columns"].index("prediction")
    assert [row[column] for row in table["data"]] == [p["prediction"] for p in stored]


def test_wandb_summary_run_holds_run_table_and_report_charts(wandb_runs, tracked_sweep):
    out, *_ = tracked_sweep
    summary = wandb_runs["summary"]["summary"]
    assert summary["runs"]["nrows"] == 5
    charts = {p.stem for p in (out / "report").glob("*.png")}
    assert charts and {f"report/{c}" for c in charts} <= set(summary)
    assert wandb_runs["summary"]["artifacts"]["report"] >= {
        "report.md",
        *(f"{c}.png" for c in charts),
    }


def test_wandb_sync_sees_every_offline_run(tracked_sweep):
    out, _, _, home = tracked_sweep
    folders = sorted(str(p) for p in (out / "wandb").glob("offline-run-*"))
    env = {**OFFLINE, "HOME": str(home), "PATH": str(Path(sys.executable).parent)}
    listed = subprocess.run(
        [sys.executable, "-m", "wandb", "sync", "--dry-run", *folders],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    assert f"Would sync {len(folders)} run(s)" in listed.stdout + listed.stderr


def test_trackers_write_nothing_outside_the_sweep_folder(tracked_sweep):
    _, _, _, home = tracked_sweep
    names = {p.name.lower() for p in home.rglob("*")}
    assert not [n for n in names if "wandb" in n or "mlflow" in n or "mlruns" in n]


# --- MLflow: a real local store, read back with MlflowClient --------------------------------


@pytest.fixture(scope="module")
def mlflow_runs(tracked_sweep):
    from mlflow import MlflowClient

    out, *_ = tracked_sweep
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("micro")
    runs = client.search_runs([experiment.experiment_id])
    return client, runs


def test_mlflow_run_per_run_under_one_parent(tracked_sweep, mlflow_runs):
    _, _, results, _ = tracked_sweep
    _, runs = mlflow_runs
    parents = [r for r in runs if r.data.tags.get("lorasweep.kind") == "sweep"]
    children = {r.data.tags["lorasweep.run_id"]: r for r in runs if r not in parents}
    assert len(parents) == 1 and set(children) == set(results)
    for run in children.values():
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.info.status == "FINISHED"
    assert parents[0].info.status == "FINISHED"


def test_mlflow_params_metrics_and_step_history(tracked_sweep, mlflow_runs):
    _, plan, results, _ = tracked_sweep
    client, runs = mlflow_runs
    by_id = {r.data.tags.get("lorasweep.run_id"): r for r in runs}
    for spec in plan["runs"]:
        run, result = by_id[spec["run_id"]], results[spec["run_id"]]
        assert run.data.params["lora.r"] == str(result["config"]["lora"]["r"])
        assert float(run.data.params["training.learning_rate"]) == pytest.approx(
            result["config"]["training"]["learning_rate"]
        )
        for key, value in result["metrics"].items():
            assert run.data.metrics[f"eval/{key}"] == pytest.approx(value)
        assert run.data.metrics["efficiency/adapter_bytes"] == result["efficiency"]["adapter_bytes"]
        losses = client.get_metric_history(run.info.run_id, "train/loss")
        assert sorted(m.step for m in losses) == list(range(1, 7))


def test_mlflow_artifacts_hold_adapter_predictions_and_report(tracked_sweep, mlflow_runs):
    out, plan, _, _ = tracked_sweep
    client, runs = mlflow_runs
    baseline = next(r for r in runs if r.data.tags.get("lorasweep.run_id") == plan["baseline"])
    names = {a.path for a in client.list_artifacts(baseline.info.run_id)}
    assert {"adapter", "predictions.jsonl", "predictions.json", "result.json"} <= names
    adapter = {a.path for a in client.list_artifacts(baseline.info.run_id, "adapter")}
    assert "adapter/adapter_config.json" in adapter
    local = client.download_artifacts(baseline.info.run_id, "predictions.json", str(out.parent))
    table = json.loads(Path(local).read_text())
    assert len(table["data"]) == 8 and "rougeL" in table["columns"]
    parent = next(r for r in runs if r.data.tags.get("lorasweep.kind") == "sweep")
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/report.md" in report
    assert (out / "mlartifacts").is_dir(), "artifacts stay inside the sweep folder"


def test_export_of_the_tracked_sweep_matches_the_store(tracked_sweep, capsys):
    out, plan, results, _ = tracked_sweep
    assert main(["export", str(out), "--format", "json"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == out / "runs.json"
    rows = {row["run_id"]: row for row in json.loads(path.read_text())}
    assert set(rows) == set(results)
    for run_id, result in results.items():
        assert rows[run_id]["rougeL"] == result["metrics"]["rougeL"]
        assert rows[run_id]["status"] == "done"


def test_rerun_of_a_finished_sweep_adds_no_tracker_runs(tracked_sweep, mlflow_runs, monkeypatch):
    out, *_ = tracked_sweep
    config = out.parent / "micro.yaml"
    offline_env(monkeypatch, out.parent / "home")
    before = len(list((out / "wandb").glob("offline-run-*")))
    assert main(["run", str(config), "--out", str(out)]) == 0
    assert len(list((out / "wandb").glob("offline-run-*"))) == before
    client, runs = mlflow_runs
    assert len(client.search_runs([runs[0].info.experiment_id])) == len(runs)


# --- Hooks driven directly: live steps, a failed run ------------------------------------------


@pytest.fixture
def failed_run(tmp_path):
    """A sweep folder whose only run failed after 3 steps; the hooks' arguments for it."""
    root = tmp_path / "sweep"
    plan = PlanRecord.from_json({
        "format": 2, "name": "hooks", "baseline_run_ids": ["run-f"], "base_eval": "base-b",
        "experiments": [], "runs": [{"run_id": "run-f", "labels": ["baseline"],
                                     "adapter_id": "adapter-f"}]})  # fmt: skip
    info = {"kind": "lora", "labels": ["baseline"], "experiments": {}, "factors": [],
            "config": {"lora": {"r": 4}, "training": {"learning_rate": 0.01}}}  # fmt: skip
    steps = [{"step": n, "loss": 3.0 - n, "learning_rate": 0.01, "tokens": 10} for n in (1, 2, 3)]
    result = RunResult.from_json(
        {"run_id": "run-f", "kind": "lora", "status": "failed", "labels": ["baseline"],
         "adapter_id": "adapter-f", "error": "RuntimeError: boom", "config": info["config"]}
    )  # fmt: skip
    store = RunStore(root)
    write_jsonl(store.adapter_dir("adapter-f") / "train_log.jsonl", steps)
    store.write_result(result)
    store.write_plan(plan)
    return root, plan, info, steps, result


def drive(tracker, failed_run) -> None:
    """Two steps arrive live through log_step; the third only in the store's train log."""
    root, plan, info, steps, result = failed_run
    tracker.start_sweep({"name": "hooks"}, plan, root)
    tracker.start_run("run-f", info)
    for step in steps[:2]:
        tracker.log_step("run-f", step)
    tracker.end_run("run-f", result, RunStore(root))
    tracker.end_sweep(None)


def test_wandb_failed_run_with_live_and_stored_steps(failed_run, monkeypatch, capsys):
    from lorasweep.tracking.wandb_tracker import WandbTracker

    root = failed_run[0]
    offline_env(monkeypatch, root.parent / "home")
    drive(WandbTracker(WandbConfig(mode="offline"), root), failed_run)
    assert "wandb sync" in capsys.readouterr().out
    runs = {
        (r := read_wandb_run(f))["run"].job_type: r | {"folder": f}
        for f in (root / "wandb").glob("offline-run-*")
    }
    assert set(runs) == {"baseline", "summary"}
    logged, run_folder = runs["baseline"], runs["baseline"]["folder"]
    assert [h["_step"] for h in logged["history"] if "train/loss" in h] == [1, 2, 3]
    assert logged["summary"]["status"] == "failed"
    assert logged["summary"]["error"] == "RuntimeError: boom"
    exits = [
        r.exit.exit_code
        for r in wandb_records(next(run_folder.glob("*.wandb")))
        if r.HasField("exit")
    ]
    assert exits == [1]


def test_mlflow_failed_run_with_live_and_stored_steps(failed_run, monkeypatch):
    from mlflow import MlflowClient

    from lorasweep.tracking.mlflow_tracker import MlflowTracker

    root = failed_run[0]
    offline_env(monkeypatch, root.parent / "home")
    drive(MlflowTracker(MlflowConfig(experiment="hooks-test"), root), failed_run)
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("hooks-test")
    (run,) = client.search_runs([experiment.experiment_id], "tags.`lorasweep.run_id` = 'run-f'")
    assert run.info.status == "FAILED"
    assert run.data.tags["lorasweep.error"] == "RuntimeError: boom"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 2.0), (2, 1.0), (3, 0.0)]


# --- Cheap rules -----------------------------------------------------------------------------


def test_auto_mode_is_online_only_with_an_api_key(tmp_path, monkeypatch):
    from lorasweep.tracking.wandb_tracker import resolve_mode

    offline_env(monkeypatch, tmp_path)
    assert resolve_mode("auto") == "offline"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert resolve_mode("auto") == "online"
    (tmp_path / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"
    assert resolve_mode("offline") == "offline"


def test_constructors_write_nothing(tmp_path):
    root = tmp_path / "not-yet"
    tracking = TrackingConfig(wandb=WandbConfig(), mlflow=MlflowConfig())
    group = build_trackers(tracking, root)
    assert [t.name for t in group.trackers] == ["wandb", "mlflow"]
    assert not root.exists()


@pytest.mark.parametrize("package", ["wandb", "mlflow"])
def test_missing_extra_is_a_clear_user_error(
    package, micro_model, dialogue_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed
    with pytest.raises(UserError, match=rf"pip install 'lorasweep\[{package}\]'"):
        build_trackers(TrackingConfig.model_validate({package: {}}), tmp_path)
    raw = sweep_dict(micro_model, dialogue_dir) | {"tracking": {package: {}}}
    out = tmp_path / "out"
    assert main(["run", str(write_yaml(tmp_path / "s.yaml", raw)), "--out", str(out)]) == 2
    assert f"tracking.{package}: the {package} package is not installed" in capsys.readouterr().err
    assert not out.exists()


def test_a_failing_tracker_only_warns(tmp_path, monkeypatch):
    from lorasweep.tracking.mlflow_tracker import MlflowTracker

    offline_env(monkeypatch, tmp_path)
    broken = MlflowTracker(MlflowConfig(tracking_uri="nosuchscheme://nowhere"), tmp_path)
    group = TrackerGroup([broken])
    with pytest.warns(RuntimeWarning, match="mlflow tracker failed in start_sweep"):
        group.start_sweep({"name": "s"}, {"name": "s", "runs": []}, tmp_path)
    assert group.trackers == []
    group.start_run("run-x", {"kind": "lora", "labels": ["baseline"]})  # no-op, no error
    group.end_sweep(None)


def test_overlapping_runs_that_end_out_of_order_keep_one_tracker_run_each(tmp_path, monkeypatch):
    """As on the Ray executor: B starts after A, steps interleave, B ends first."""
    from mlflow import MlflowClient

    from lorasweep.tracking.mlflow_tracker import MlflowTracker
    from lorasweep.tracking.wandb_tracker import WandbTracker

    root = tmp_path / "sweep"
    offline_env(monkeypatch, tmp_path / "home")
    store = RunStore(root)
    plan = PlanRecord.from_json({
        "format": 2, "name": "overlap", "baseline_run_ids": ["run-a"], "base_eval": "base-z",
        "runs": [{"run_id": r, "labels": [r], "adapter_id": f"adapter-{r}"} for r in ("run-a", "run-b")],
    })  # fmt: skip
    store.write_plan(plan)
    results = {}
    for run_id, loss in (("run-a", 1.0), ("run-b", 5.0)):
        results[run_id] = RunResult.from_json(
            {"run_id": run_id, "kind": "lora", "status": "done", "labels": [run_id],
             "adapter_id": f"adapter-{run_id}", "metrics": {"rougeL": loss * 10},
             "config": {"lora": {"r": 4}}}
        )  # fmt: skip
        store.write_result(results[run_id])
    info = {"kind": "lora", "experiments": {}, "factors": [], "config": {"lora": {"r": 4}}}
    group = TrackerGroup(
        [WandbTracker(WandbConfig(mode="offline"), root), MlflowTracker(MlflowConfig(), root)]
    )
    group.start_sweep({"name": "overlap"}, plan, root)
    group.start_run("run-a", {**info, "labels": ["run-a"]})
    group.start_run("run-b", {**info, "labels": ["run-b"]})
    for step in (1, 2, 3):
        group.log_step("run-b", {"step": step, "loss": 5.0 + step})
        group.log_step("run-a", {"step": step, "loss": 1.0 + step})
    group.end_run("run-b", results["run-b"], store)
    group.log_step("run-a", {"step": 4, "loss": 5.0})
    group.end_run("run-a", results["run-a"], store)
    group.end_sweep(None)
    assert len(group.trackers) == 2  # neither tracker failed

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("overlap")
    for run_id, first, steps in (("run-a", 2.0, 4), ("run-b", 6.0, 3)):
        (run,) = client.search_runs(
            [experiment.experiment_id], f"tags.`lorasweep.run_id` = '{run_id}'"
        )
        history = sorted(
            (m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/loss")
        )
        assert history[0] == (1, first) and len(history) == steps
        assert run.data.metrics["eval/rougeL"] == results[run_id].metrics["rougeL"]
        assert run.info.status == "FINISHED"
    wandb_runs = {}
    for folder in (root / "wandb").glob("offline-run-*"):
        logged = read_wandb_run(folder)
        wandb_runs[logged["run"].display_name] = logged
    assert set(wandb_runs) == {"run-a", "run-b", "overlap summary"}
    for run_id, first, steps in (("run-a", 2.0, 4), ("run-b", 6.0, 3)):
        losses = [h["train/loss"] for h in wandb_runs[run_id]["history"] if "train/loss" in h]
        assert losses[0] == first and len(losses) == steps
        assert wandb_runs[run_id]["summary"]["eval/rougeL"] == results[run_id].metrics["rougeL"]


# --- A sweep killed with its tracker runs open, then run again (issue #12, item 9) -------------


def killed_sweep_store(root: Path) -> tuple[PlanRecord, dict[str, RunResult]]:
    """Three finished runs, four training steps each, in a store with its plan."""
    store = RunStore(root)
    plan = PlanRecord.from_json({
        "format": 2, "name": "killed", "baseline_run_ids": ["run-a"], "base_eval": "base-z",
        "runs": [{"run_id": r, "labels": [r], "adapter_id": f"adapter-{r}"}
                 for r in ("run-a", "run-b", "run-c")],
    })  # fmt: skip
    store.write_plan(plan)
    results = {}
    for n, run_id in enumerate(("run-a", "run-b", "run-c")):
        results[run_id] = RunResult.from_json(
            {"run_id": run_id, "kind": "lora", "status": "done", "labels": [run_id],
             "adapter_id": f"adapter-{run_id}", "metrics": {"rougeL": 10.0 + n},
             "config": {"lora": {"r": 4}}}
        )  # fmt: skip
        store.write_result(results[run_id])
        steps = [{"step": s, "loss": 5.0 - s + n} for s in (1, 2, 3, 4)]
        write_jsonl(store.adapter_dir(f"adapter-{run_id}") / "train_log.jsonl", steps)
    return plan, results


def killed_sweep_trackers(root: Path) -> TrackerGroup:
    from lorasweep.tracking.mlflow_tracker import MlflowTracker
    from lorasweep.tracking.wandb_tracker import WandbTracker

    return TrackerGroup(
        [WandbTracker(WandbConfig(mode="offline"), root), MlflowTracker(MlflowConfig(), root)]
    )


INFO = {"kind": "lora", "experiments": {}, "factors": [], "config": {"lora": {"r": 4}}}


def die_with_runs_open(root: str) -> None:
    """The first process: run-a ends; run-b (two steps in) and run-c (one) are open when a
    SIGKILL comes, as on the Ray executor, where runs overlap."""
    import os
    import signal

    plan, results = killed_sweep_store(Path(root))
    group = killed_sweep_trackers(Path(root))
    group.start_sweep({"name": "killed"}, plan, Path(root))
    group.start_run("run-a", {**INFO, "labels": ["run-a"]})
    group.end_run("run-a", results["run-a"], RunStore(root))
    group.start_run("run-b", {**INFO, "labels": ["run-b"]})
    group.start_run("run-c", {**INFO, "labels": ["run-c"]})
    for step in (1, 2):
        group.log_step("run-b", {"step": step, "loss": 5.0 - step + 1})
    group.log_step("run-c", {"step": 1, "loss": 6.0})
    assert len(group.trackers) == 2
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_rerun_resumes_the_tracker_runs_a_kill_left_open(tmp_path, monkeypatch):
    """run-b is computed again (resumed from its step-1 checkpoint); run-c is not (the store
    has it done): MLflow marks it KILLED. No tracker run is added for either."""
    from mlflow import MlflowClient

    root = tmp_path / "sweep"
    offline_env(monkeypatch, tmp_path / "home")
    code = "import sys; from tests.test_tracking import die_with_runs_open as d; d(sys.argv[1])"
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}  # a process of its own
    child = subprocess.run(
        [sys.executable, "-c", code, str(root)], capture_output=True, timeout=120, env=env
    )
    assert child.returncode == -9, child.stderr.decode()[-2000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("killed")
    running = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
    assert len(running) == 3  # the parent, run-b and run-c: what the kill left behind

    plan, results = killed_sweep_store(root)
    group = killed_sweep_trackers(root)
    group.start_sweep({"name": "killed"}, plan, root)
    group.start_run("run-b", {**INFO, "labels": ["run-b"]})
    # Training resumes from its step-1 checkpoint: step 1 is replayed, step 2 trained again.
    for step in (1, 2, 3, 4):
        group.log_step("run-b", {"step": step, "loss": 5.0 - step + 1})
    group.end_run("run-b", results["run-b"], RunStore(root))
    group.end_sweep(None)
    assert len(group.trackers) == 2  # neither tracker failed

    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("lorasweep.kind") == "sweep"]
    assert parent.info.status == "FINISHED"
    children = {}
    for run in runs:
        if run is not parent:
            children.setdefault(run.data.tags["lorasweep.run_id"], []).append(run)
    assert {k: len(v) for k, v in children.items()} == {"run-a": 1, "run-b": 1, "run-c": 1}
    status = {k: v[0].info.status for k, v in children.items()}
    assert status == {"run-a": "FINISHED", "run-b": "FINISHED", "run-c": "KILLED"}
    assert all(
        v[0].data.tags["mlflow.parentRunId"] == parent.info.run_id for v in children.values()
    )
    history = client.get_metric_history(children["run-b"][0].info.run_id, "train/loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 5.0), (2, 4.0), (3, 3.0), (4, 2.0)]
    assert children["run-b"][0].data.metrics["eval/rougeL"] == 11.0

    # W&B: a folder per attempt (offline-run-<time>-<W&B run id>); the killed attempts' folders
    # hold next to nothing (the records died with the process). run-b's resumed attempt has the
    # same W&B run id, so `wandb sync` makes both folders one run, and its whole loss curve.
    sweep_id = (root / "sweep-id").read_text().strip()
    ids = sorted(wandb_run_id(f) for f in (root / "wandb").glob("offline-run-*"))
    lorasweep_runs = [f"{sweep_id}-{r}" for r in ("run-a", "run-b", "run-b", "run-c")]
    assert [i for i in ids if i.startswith(sweep_id)] == lorasweep_runs
    assert len(ids) == 5  # and one summary run
    (resumed,) = [
        run
        for f in wandb_folders(root / "wandb", f"{sweep_id}-run-b")
        if (run := read_wandb_run(f))["run"] is not None
    ]
    losses = [(h["_step"], h["train/loss"]) for h in resumed["history"] if "train/loss" in h]
    assert losses == [(1, 5.0), (2, 4.0), (3, 3.0), (4, 2.0)]


def assert_one_tracker_run_per_unit(out: Path) -> None:
    """After a sweep that was killed and run again: one finished MLflow run per unit under one
    finished parent, every training step logged once, and one W&B run id per unit."""
    from mlflow import MlflowClient

    plan = json.loads((out / "plan.json").read_text())
    units = [plan["base_eval"]] + [r["run_id"] for r in plan["runs"]]
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(plan["name"]).experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("lorasweep.kind") == "sweep"]
    children = [r for r in runs if r is not parent]
    assert sorted(r.data.tags["lorasweep.run_id"] for r in children) == sorted(units)
    assert {r.info.status for r in runs} == {"FINISHED"}
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        if run.data.tags["lorasweep.kind"] == "lora":  # the killed one too: every step once
            history = client.get_metric_history(run.info.run_id, "train/loss")
            assert sorted(m.step for m in history) == list(range(1, 7))
    sweep_id = (out / "sweep-id").read_text().strip()
    ids = {wandb_run_id(f) for f in (out / "wandb").glob("offline-run-*")}
    assert {i for i in ids if i.startswith(sweep_id)} == {f"{sweep_id}-{u}" for u in units}
    assert len(ids) == len(units) + 1  # and the summary run
    for run in plan["runs"]:  # the last attempt holds the whole loss curve, a resumed one too
        last = wandb_folders(out / "wandb", f"{sweep_id}-{run['run_id']}")[-1]
        history = read_wandb_run(last)["history"]
        assert [h["_step"] for h in history if "train/loss" in h] == list(range(1, 7))
