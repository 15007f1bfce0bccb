"""The executor seam and the store's typed records, without a cluster: fast rules."""

from __future__ import annotations

import json
import re
import sys

import pytest

from lorasweep.cli.main import main
from lorasweep.config.schema import ExecutionConfig
from lorasweep.errors import UserError
from lorasweep.executors.base import EXECUTORS, Executor, build_executor
from lorasweep.executors.ray_executor import capacity_of, check_feasible
from lorasweep.store.records import (
    PlannedTests,
    PlanRecord,
    RunResult,
    Status,
    StoreError,
    UnitKind,
)
from lorasweep.store.store import RunStore
from tests.conftest import sweep_dict, write_yaml


def test_every_registered_executor_is_an_executor():
    for name in EXECUTORS:
        executor = build_executor(name, ExecutionConfig())
        assert isinstance(executor, Executor) and executor.name == name
    with pytest.raises(UserError, match="execution.executor: unknown executor 'slurm'"):
        build_executor("slurm", ExecutionConfig())


def test_capacity_counts_whole_runs_per_node():
    two_gpus = ExecutionConfig(gpus_per_run=1, cpus_per_run=2)
    assert capacity_of(two_gpus, [{"CPU": 4, "GPU": 2}]) == 2
    assert capacity_of(two_gpus, [{"CPU": 3, "GPU": 2}]) == 1  # CPUs bind first
    assert capacity_of(two_gpus, [{"CPU": 8, "GPU": 2}, {"CPU": 8, "GPU": 4}]) == 6
    assert capacity_of(ExecutionConfig(gpus_per_run=0.5), [{"CPU": 16, "GPU": 1}]) == 2
    assert capacity_of(ExecutionConfig(gpus_per_run=0, cpus_per_run=1), [{"CPU": 3}]) == 3


def test_a_request_that_fits_no_node_names_its_field():
    nodes = [{"CPU": 8, "GPU": 2}, {"CPU": 4, "GPU": 1}]  # 3 GPUs in all, 2 at most on one
    with pytest.raises(UserError, match=r"gpus_per_run: 3 GPU\(s\) per run, but no node .* 2"):
        check_feasible(ExecutionConfig(gpus_per_run=3), nodes)
    with pytest.raises(UserError, match=r"cpus_per_run: 16 CPU\(s\).* more than 8"):
        check_feasible(ExecutionConfig(gpus_per_run=1, cpus_per_run=16), nodes)
    with pytest.raises(UserError, match="set execution.gpus_per_run: 0 to run on CPUs"):
        check_feasible(ExecutionConfig(), [{"CPU": 2}])
    check_feasible(ExecutionConfig(gpus_per_run=2, cpus_per_run=8), nodes)  # fits the first


def test_asking_for_ray_without_it_is_one_line(
    micro_model, dialogue_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    raw = sweep_dict(micro_model, dialogue_dir) | {"execution": {"executor": "ray"}}
    out = tmp_path / "out"
    assert main(["run", str(write_yaml(tmp_path / "s.yaml", raw)), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        "lorasweep: error: execution.executor: ray needs the ray package; "
        "pip install 'lorasweep[ray]'"
    )
    assert not out.exists()


def test_records_round_trip_and_statuses_are_an_enum():
    result = RunResult("run-1", UnitKind.TRAIN, Status.DONE, ("baseline",), {"lora": {"r": 8}},
                       adapter_id="adapter-1", metrics={"rougeL": 40.0})  # fmt: skip
    assert RunResult.from_json(json.loads(json.dumps(result.to_json()))) == result
    assert json.loads(json.dumps(result.to_json()))["status"] == "done"
    plan = {"format": 2, "name": "s", "baseline_run_ids": ["run-1", "run-2"],
            "base_eval": "base-1", "seeds": [1, 2],
            "runs": [{"run_id": "run-1", "labels": ["baseline"]},
                     {"run_id": "run-2", "labels": ["baseline"]}],
            "tests": [{"run_id": "test-1", "roles": ["baseline", "best"],
                       "adapter_of": "run-1"}]}  # fmt: skip
    record = PlanRecord.from_json(plan)
    assert [u.run_id for u in record.units()] == ["base-1", "run-1", "run-2", "test-1"]
    # Seed 2's run has no test evaluation (yet): its place is kept, so seeds still pair.
    assert record.test_evaluations() == [PlannedTests(("baseline", "best"), ("test-1", None))]
    assert PlanRecord.from_json(record.to_json()) == record


def test_a_plan_that_listed_a_test_unit_once_per_role_still_reads():
    """Before roles were merged, one run serving as baseline and best was listed twice."""
    plan = {"format": 2, "name": "s", "baseline_run_ids": ["run-1"], "base_eval": "base-1",
            "runs": [{"run_id": "run-1", "labels": ["baseline"]},
                     {"run_id": "run-2", "labels": ["combo"]}],
            "confirmation": {"run_ids": ["run-2"], "label": "r=16"},
            "tests": [{"run_id": "test-1", "role": "baseline", "adapter_of": "run-1"},
                      {"run_id": "test-2", "role": "confirmation", "adapter_of": "run-2"},
                      {"run_id": "test-1", "role": "best", "adapter_of": "run-1"}]}  # fmt: skip
    record = PlanRecord.from_json(plan)
    assert [u.run_id for u in record.units()] == ["base-1", "run-1", "run-2", "test-1", "test-2"]
    assert record.tests[0].roles == ("baseline", "best")
    assert record.test_evaluations() == [
        PlannedTests(("baseline", "best"), ("test-1",)),
        PlannedTests(("confirmation",), ("test-2",)),
    ]
    assert PlanRecord.from_json(record.to_json()) == record


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("plan.json", '{"format": 2, "name": "s", "ru', "not valid JSON, perhaps cut short"),
        ("plan.json", "", "damaged (empty)"),
        ("plan.json", '{"format": 2, "name": "s"}', "no 'runs'"),
        ("plan.json", "[1, 2]", "not a JSON object"),
        ("result.json", '{"run_id": "run-1", "kind": "lora", "sta', "that run is not done: rerun"),
        ("result.json", '{"run_id": "run-1", "kind": "lora", "status": "weird"}', "status='weird'"),
    ],
)
def test_a_damaged_store_names_the_file_and_what_to_do(tmp_path, capsys, name, content, message):
    """A damaged plan stops the readers; a damaged result is a run not done, with a warning."""
    store = RunStore(tmp_path)
    store.write_plan(
        PlanRecord.from_json({"format": 2, "name": "s", "baseline_run_ids": ["run-1"],
                              "base_eval": "base-1", "runs": [{"run_id": "run-1", "labels": ["b"]}]})
    )  # fmt: skip
    path = tmp_path / name if name == "plan.json" else store.run_dir("run-1") / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    if name == "plan.json":
        with pytest.raises(StoreError, match=re.escape(message)):
            store.plan()
    else:
        assert store.result("run-1") is None and store.status("run-1") is Status.PLANNED
        assert message in str(store.damage("run-1"))
    for command in (
        ["status", str(tmp_path)],
        ["report", str(tmp_path)],
        ["export", str(tmp_path)],
    ):
        assert main(command) == (2 if name == "plan.json" else 0)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(path) in err[0] and message.split("'")[0] in err[0]
        kind = "error" if name == "plan.json" else "warning"
        assert err[0].startswith(f"lorasweep: {kind}: ")
