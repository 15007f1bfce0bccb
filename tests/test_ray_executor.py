"""The Ray executor on a real local Ray cluster with 2 declared GPUs (one cluster per module).

Declaring ``num_gpus`` on a CPU machine lets Ray schedule GPU tasks here: each task is given one
of the 2 "GPUs", so 2 runs execute at a time. Every sweep's numbers are compared with the local
executor's on the same config, and each fault Ray promises to survive is caused for real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip(
    "ray", reason="the ray extra is not installed: pip install 'lorasweep[ray]'"
)

from lorasweep.cli.main import main  # noqa: E402
from lorasweep.config.load import validate_sweep  # noqa: E402
from lorasweep.config.plan import build_plan  # noqa: E402
from lorasweep.executors.base import build_executor  # noqa: E402
from lorasweep.executors.driver import run_sweep  # noqa: E402
from lorasweep.executors.ray_executor import capacity_of  # noqa: E402
from lorasweep.store.store import RunStore  # noqa: E402
from lorasweep.tracking.base import Tracker  # noqa: E402
from tests.conftest import sweep_dict, write_yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Local runs use torch's default thread count; Ray tasks use cpus_per_run threads. Equal counts
# give bit-equal arithmetic, so the test cluster declares 2 CPUs per run and 4 CPUs in all.
THREADS = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray cluster: 4 CPUs and 2 GPUs declared, token authentication off (tests only)."""
    import torch

    assert torch.get_num_threads() == THREADS or pytest.skip("needs a 2-thread torch default")
    saved = dict(os.environ)
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["LORASWEEP_CACHE"] = str(tmp_path_factory.mktemp("ray-cache"))
    # Workers import this checkout, like pytest does.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        os.environ.clear()
        os.environ.update(saved)


def config(micro_model, dialogue_dir, root: Path, name: str, small: bool = False, **execution):
    raw = sweep_dict(micro_model, dialogue_dir)
    if small:  # 2 training runs + zero-shot: enough for the fault tests
        raw["experiments"] = [{"name": "rank", "factor": "lora.r", "values": [2, 4]}]
    raw["execution"] = {"executor": "ray", "gpus_per_run": 1, "cpus_per_run": THREADS,
                        "checkpoint_every": 2, **execution}  # fmt: skip
    return write_yaml(root / f"{name}.yaml", raw)


def metrics(out: Path) -> dict[str, tuple]:
    """Every unit's status, metrics and predictions, by run id."""
    state = {}
    for path in sorted(out.glob("runs/*/result.json")):
        result = json.loads(path.read_text())
        predictions = (
            (path.parent / "predictions.jsonl").read_text() if result["status"] == "done" else ""
        )
        state[path.parent.name] = (result["status"], result.get("metrics"), predictions)
    return state


@pytest.fixture(scope="module")
def local_reference(micro_model, dialogue_dir, tmp_path_factory):
    """The local executor's numbers for the 4-run sweep and the small one."""
    root = tmp_path_factory.mktemp("local")
    outs = {}
    for name, small in (("full", False), ("small", True)):
        path = config(micro_model, dialogue_dir, root, name, small)
        assert main(["run", str(path), "--out", str(root / name), "--executor", "local"]) == 0
        outs[name] = metrics(root / name)
    return outs


class Overlap(Tracker):
    """Records how many runs were open at once: every call names its run."""

    def __init__(self) -> None:
        self.open: set[str] = set()
        self.most = 0
        self.ended: list[str] = []

    def start_run(self, run_id, info):
        self.open.add(run_id)
        self.most = max(self.most, len(self.open))

    def end_run(self, run_id, result, store):
        self.open.remove(run_id)
        self.ended.append(run_id)


def test_four_runs_two_at_a_time_give_the_local_numbers(
    cluster, micro_model, dialogue_dir, tmp_path, local_reference
):
    sweep = validate_sweep(
        __import__("yaml").safe_load(config(micro_model, dialogue_dir, tmp_path, "ray").read_text())
    )
    plan = build_plan(sweep)
    assert len(plan.runs) == 4
    assert capacity_of(sweep.execution, [n["Resources"] for n in ray.nodes() if n["Alive"]]) == 2
    tracker = Overlap()
    from rich.console import Console

    outcome = run_sweep(plan, RunStore(tmp_path / "out"), Console(quiet=True),
                        build_executor("ray", sweep.execution), tracker=tracker)  # fmt: skip
    assert not outcome.failed and len(outcome.done) == 5
    assert tracker.most == 2 and not tracker.open and len(tracker.ended) == 5
    assert metrics(tmp_path / "out") == local_reference["full"]
    # The adapters came back through the object store, whole: PEFT loads them.
    for run in plan.runs:
        assert (tmp_path / "out" / "adapters" / run.adapter_id / "adapter.json").is_file()
        assert (
            tmp_path / "out" / "adapters" / run.adapter_id / "adapter" / "adapter_config.json"
        ).is_file()
    assert main(["report", str(tmp_path / "out")]) == 0


def test_a_killed_worker_is_retried_and_resumes(
    cluster, micro_model, dialogue_dir, tmp_path, local_reference, monkeypatch
):
    mark = tmp_path / "killed-once"
    monkeypatch.setenv("LORASWEEP_KILL_AT", "checkpoint-saved")  # SIGKILL of the worker
    monkeypatch.setenv("LORASWEEP_KILL_MARK", str(mark))  # only the first attempt dies
    path = config(micro_model, dialogue_dir, tmp_path, "kill", small=True)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 0
    assert mark.is_file()  # a worker did die
    assert metrics(tmp_path / "out") == local_reference["small"]


def test_a_run_that_raises_is_failed_not_retried_and_the_others_finish(
    cluster, micro_model, dialogue_dir, tmp_path, capsys
):
    raw = sweep_dict(micro_model, dialogue_dir)
    # max_length 8 leaves no target token: the run raises inside its unit.
    raw["experiments"] = [{"name": "len", "factor": "training.max_length", "values": [8, 192]}]
    raw["execution"] = {"executor": "ray", "gpus_per_run": 1, "cpus_per_run": THREADS}
    out = tmp_path / "out"
    assert main(["run", str(write_yaml(tmp_path / "f.yaml", raw)), "--out", str(out)]) == 1
    results = [json.loads(p.read_text()) for p in out.glob("runs/*/result.json")]
    failed = [r for r in results if r["status"] == "failed"]
    assert len(failed) == 1 and "no training example keeps a target token" in failed[0]["error"]
    assert "ValueError" in failed[0]["traceback"]
    assert sum(r["status"] == "done" for r in results) == 2  # baseline and zero-shot
    assert (out / "report" / "report.md").is_file()


def test_a_request_no_node_can_satisfy_is_refused_before_anything_runs(
    cluster, micro_model, dialogue_dir, tmp_path, capsys
):
    path = config(micro_model, dialogue_dir, tmp_path, "big", small=True, gpus_per_run=4)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lorasweep: error: execution.gpus_per_run: 4")
    assert "no node of the Ray cluster has more than 2" in err[0]
    assert not (tmp_path / "out").exists()


def test_sigkilled_driver_then_rerun_with_the_local_executor(
    cluster, micro_model, dialogue_dir, tmp_path, local_reference
):
    """A driver killed mid-sweep loses only its running units; the local executor resumes the
    folder the Ray executor started, and nothing finished is computed again."""
    path = config(micro_model, dialogue_dir, tmp_path, "driver", small=True)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "lorasweep.cli.main", "run", str(path), "--out", str(out),
               "--ray-address", cluster]  # fmt: skip
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list(out.glob("runs/*/result.json")) and time.monotonic() < deadline:
        assert driver.poll() is None, "the driver ended before it could be killed"
        time.sleep(0.2)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    finished = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    assert finished and len(finished) < 3
    assert main(["run", str(path), "--out", str(out), "--executor", "local"]) == 0
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # not computed twice
    assert metrics(out) == local_reference["small"]


def test_ray_resumes_a_folder_the_local_executor_started(
    cluster, micro_model, dialogue_dir, tmp_path, local_reference
):
    """The local executor is SIGKILLed at its first checkpoint; Ray ships the checkpoint to a
    worker, which resumes it: the numbers are those of an uninterrupted run."""
    path = config(micro_model, dialogue_dir, tmp_path, "resume", small=True)
    out = tmp_path / "out"
    env = {**os.environ, "LORASWEEP_KILL_AT": "checkpoint-saved"}
    env.pop("LORASWEEP_KILL_MARK", None)
    command = [sys.executable, "-m", "lorasweep.cli.main", "run", str(path), "--out", str(out),
               "--executor", "local"]  # fmt: skip
    assert subprocess.run(command, env=env, capture_output=True, timeout=300).returncode == -9
    assert list(out.glob("adapters/*/checkpoint.pt"))
    assert main(["run", str(path), "--out", str(out)]) == 0
    assert not list(out.glob("adapters/*/checkpoint.pt"))
    assert metrics(out) == local_reference["small"]


def test_ctrl_c_cancels_the_running_tasks_and_leaves_the_store_consistent(
    cluster, micro_model, dialogue_dir, tmp_path, local_reference
):
    path = config(micro_model, dialogue_dir, tmp_path, "interrupt", small=True)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "lorasweep.cli.main", "run", str(path), "--out", str(out),
               "--ray-address", cluster]  # fmt: skip
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list(out.glob("runs/*/result.json")) and time.monotonic() < deadline:
        assert driver.poll() is None, "the driver ended before it could be interrupted"
        time.sleep(0.2)
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    statuses = {
        p.parent.name: json.loads(p.read_text())["status"] for p in out.glob("runs/*/result.json")
    }
    assert "cancelled" in statuses.values() and set(statuses.values()) <= {"done", "cancelled"}
    assert main(["run", str(path), "--out", str(out)]) == 0  # cancelled units run again
    assert metrics(out) == local_reference["small"]


class TrialOverlap(Tracker):
    """Records how many search trials were running at once."""

    def __init__(self) -> None:
        self.open: set[str] = set()
        self.most = 0

    def start_run(self, run_id, info):
        if any(label.startswith("trial ") for label in info["labels"]):
            self.open.add(run_id)
            self.most = max(self.most, len(self.open))

    def end_run(self, run_id, result, store):
        self.open.discard(run_id)


def test_a_search_runs_a_batch_per_cluster_capacity_and_asks_the_local_trials(
    cluster, micro_model, dialogue_dir, tmp_path
):
    from rich.console import Console

    from tests.test_search import search_config, trials  # skips without the search extra

    local = search_config(micro_model, dialogue_dir, tmp_path, "local-search")  # batch: 2
    assert main(["run", str(local), "--out", str(tmp_path / "local"), "--executor", "local"]) == 0
    raw = __import__("yaml").safe_load(
        search_config(micro_model, dialogue_dir, tmp_path, "ray-search", batch=None).read_text()
    )
    raw["execution"] = {"executor": "ray", "gpus_per_run": 1, "cpus_per_run": THREADS}
    sweep = validate_sweep(raw)  # no batch: the cluster's capacity, 2 runs at a time
    tracker = TrialOverlap()
    outcome = run_sweep(build_plan(sweep), RunStore(tmp_path / "ray"), Console(quiet=True),
                        build_executor("ray", sweep.execution), tracker=tracker)  # fmt: skip
    assert not outcome.failed
    assert tracker.most == 2  # each batch of 2 trials ran at once
    assert trials(tmp_path / "ray") == trials(tmp_path / "local")
    assert metrics(tmp_path / "ray") == metrics(tmp_path / "local")
