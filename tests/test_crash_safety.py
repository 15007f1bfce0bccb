"""Sweeps that survive: SIGKILL at several moments, resume, failure isolation, locking."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lorasweep.cli.main import main
from lorasweep.executors.driver import lock
from tests.conftest import sweep_dict, write_yaml


def crash_config(micro_model, dialogue_dir, root: Path) -> Path:
    raw = sweep_dict(micro_model, dialogue_dir)
    # Equal costs (parameters, tokens) for both values, and the micro model scores 0 everywhere:
    # the recommendation is a tie that measured time used to break, and must not any more.
    raw["experiments"] = [{"name": "dropout", "factor": "lora.dropout", "values": [0.0, 0.1]}]
    raw["baseline"]["lora"]["dropout"] = 0.1  # resume must restore the dropout RNG too
    raw["execution"] = {"checkpoint_every": 2}
    return write_yaml(root / "crash.yaml", raw)


def run_cli(config: Path, out: Path, kill_at: str | None = None) -> int:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LORASWEEP_KILL_AT", None)
    env.pop("WANDB_SERVICE", None)  # W&B's service of this process would outlive the kill
    if kill_at:
        env["LORASWEEP_KILL_AT"] = kill_at
    command = [sys.executable, "-m", "lorasweep.cli.main", "run", str(config), "--out", str(out)]
    return subprocess.run(command, env=env, capture_output=True, timeout=300).returncode


def snapshot(out: Path) -> dict:
    """Everything that must not depend on how often the sweep was interrupted."""
    state = {}
    for result_path in sorted(out.glob("runs/*/result.json")):
        folder = result_path.parent
        result = json.loads(result_path.read_text())
        log = out / "adapters" / str(result["adapter_id"]) / "train_log.jsonl"
        state[folder.name] = {
            "status": result["status"],
            "metrics": result["metrics"],
            "predictions": (folder / "predictions.jsonl").read_text(),
            "losses": [json.loads(x)["loss"] for x in log.read_text().splitlines()]
            if log.exists()
            else None,
        }
    return state


@pytest.fixture(scope="module")
def reference(micro_model, dialogue_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    config = crash_config(micro_model, dialogue_dir, root)
    assert main(["run", str(config), "--out", str(root / "out")]) == 0
    return config, snapshot(root / "out"), recommendation(root / "out")


def recommendation(out: Path) -> str:
    """The report's recommendation sections, which timing must not change."""
    report = (out / "report" / "report.md").read_text()
    return "\n".join(part.split("\n## ")[0] for part in report.split("### Recommendation")[1:])


@pytest.mark.parametrize("point", ["checkpoint-saved", "evaluation", "writing-result"])
def test_sigkill_then_resume_gives_the_uninterrupted_numbers(
    reference, tmp_path, point, monkeypatch
):
    config, expected, recommended = reference
    out = tmp_path / "out"
    # Killed mid-training, with both trackers on: the rerun resumes their runs (tracking is
    # not part of a run's hash, so the numbers must not change either).
    tracked = point == "checkpoint-saved"
    if tracked:
        from tests.test_tracking import offline_env

        offline_env(monkeypatch, tmp_path / "home")
        raw = yaml.safe_load(config.read_text())
        raw["tracking"] = {"wandb": {"mode": "offline"}, "mlflow": {}}
        config = write_yaml(tmp_path / "tracked.yaml", raw)
    assert run_cli(config, out, kill_at=point) == -signal.SIGKILL
    if point == "checkpoint-saved":
        assert list(out.glob("adapters/*/checkpoint.pt")), "killed right after a checkpoint"
    done_before = {p.parent.name for p in out.glob("runs/*/result.json")}
    assert run_cli(config, out) == 0
    assert snapshot(out) == expected  # bit-identical on the CPU, losses included
    assert recommendation(out) == recommended  # the same choice, the same words
    assert "Recommended: **0.1**, the baseline's value" in recommended
    assert not list(out.glob("*/*/.*")), "no temporary file survives the resume"
    assert not list(out.glob("adapters/*/checkpoint.pt")), "finished runs drop their checkpoint"
    for path in out.glob("runs/run-*/result.json"):  # every training segment is counted
        assert json.loads(path.read_text())["timings"]["train_s"] > 0
    for run_id in done_before:  # finished work is never redone
        assert json.loads((out / "runs" / run_id / "result.json").read_text())["status"] == "done"
    if tracked:
        from tests.test_tracking import assert_one_tracker_run_per_unit

        assert_one_tracker_run_per_unit(out)


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(
    micro_model, dialogue_dir, tmp_path, capsys
):
    raw = sweep_dict(micro_model, dialogue_dir)
    # max_length 8 leaves no target token after the prompt: that run fails, the others go on.
    raw["experiments"] = [{"name": "length", "factor": "training.max_length", "values": [192, 8]}]
    config = write_yaml(tmp_path / "fail.yaml", raw)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 1
    results = [json.loads(p.read_text()) for p in out.glob("runs/*/result.json")]
    failed = [r for r in results if r["status"] == "failed"]
    assert len(results) == 3 and len(failed) == 1
    assert "no training example keeps a target token" in failed[0]["error"]
    assert "Traceback" in failed[0]["traceback"]
    assert "failed" in capsys.readouterr().out
    report = (out / "report" / "report.md").read_text()
    assert failed[0]["run_id"] in report and "failed" in report

    # Without --retry-failed the failed run is left alone; with it, it runs again.
    path = out / "runs" / failed[0]["run_id"] / "result.json"
    stamp = path.stat().st_mtime_ns
    assert main(["run", str(config), "--out", str(out)]) == 1
    assert path.stat().st_mtime_ns == stamp
    assert main(["run", str(config), "--out", str(out), "--retry-failed"]) == 1
    assert path.stat().st_mtime_ns != stamp


def test_a_second_process_on_the_same_folder_is_refused(tmp_path):
    """Two processes, as two `lorasweep run` commands would be; the lock dies with its holder."""
    code = "import sys, pathlib; from lorasweep.executors.driver import lock; lock(pathlib.Path(sys.argv[1])).__enter__()"
    with lock(tmp_path):
        child = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
        )
        assert child.returncode != 0 and "in use by another lorasweep run" in child.stderr
    child = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
    )
    assert child.returncode == 0, child.stderr  # free again once the holder let go


def test_editing_the_config_keeps_unchanged_runs(micro_model, dialogue_dir, tmp_path):
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["experiments"] = [{"name": "rank", "factor": "lora.r", "values": [2, 4]}]
    config = write_yaml(tmp_path / "a.yaml", raw)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 0
    first = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    raw["experiments"] = [{"name": "rank", "factor": "lora.r", "values": [4, 8]}]
    write_yaml(config, raw)
    assert main(["run", str(config), "--out", str(out)]) == 0
    second = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    plan = json.loads((out / "plan.json").read_text())
    planned = {r["run_id"] for r in plan["runs"]} | {plan["base_eval"]}
    kept = {k for k in planned if k in first and second[k] == first[k]}
    assert len(kept) == 2  # zero-shot and the shared baseline (r=4) were not redone
    assert len(second) == 4  # the r=2 run stays in the store ...
    (dropped,) = set(second) - planned
    assert dropped not in (out / "report" / "report.md").read_text()  # ... outside the report


def test_wait_queues_behind_the_holder(tmp_path):
    code = (
        "import sys, time, pathlib; from lorasweep.executors.driver import lock\n"
        "with lock(pathlib.Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(2)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    with lock(tmp_path, wait=True):
        waited = time.monotonic() - started
    holder.wait(timeout=30)
    assert waited > 0.5  # it queued instead of refusing
