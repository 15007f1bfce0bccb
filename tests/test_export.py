"""`lorasweep export`: the run table of a hand-written store (done, failed, planned runs)."""

from __future__ import annotations

import csv
import json

import pytest

from lorasweep.cli.main import main
from lorasweep.errors import UserError
from lorasweep.export import export_runs, run_table
from lorasweep.store.store import RunStore, write_json

PLAN = {
    "format": 2,
    "name": "tiny",
    "baseline": "run-aaa",
    "baseline_run_ids": ["run-aaa"],
    "base_eval": "base-zzz",
    "runs": [
        {"run_id": "run-aaa", "labels": ["baseline", "rank=8", "lr=2e-4"]},
        {"run_id": "run-bbb", "labels": ["rank=16"]},
        {"run_id": "run-ccc", "labels": ["lr=2e-5"]},
    ],
    "experiments": [
        {
            "name": "rank",
            "factor": "lora.r",
            "rows": [
                {"label": "8", "run_ids": ["run-aaa"], "is_baseline": True},
                {"label": "16", "run_ids": ["run-bbb"], "is_baseline": False},
            ],
        },
        {
            "name": "lr",
            "factor": "training.learning_rate",
            "rows": [
                {"label": "2e-4", "run_ids": ["run-aaa"], "is_baseline": True},
                {"label": "2e-5", "run_ids": ["run-ccc"], "is_baseline": False},
            ],
        },
    ],
}


def config(r: int, lr: float) -> dict:
    return {
        "lora": {"r": r, "alpha": 2.0 * r, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
        "training": {"learning_rate": lr, "max_steps": 100, "epochs": None},
    }


@pytest.fixture
def sweep(tmp_path):
    """Baseline and zero-shot done, rank=16 failed, lr=2e-5 still planned."""
    store = RunStore(tmp_path / "sweep")
    write_json(store.root / "plan.json", PLAN)
    write_json(
        store.run_dir("base-zzz") / "result.json",
        {"run_id": "base-zzz", "kind": "base", "status": "done",
         "metrics": {"rouge1": 10.0, "rouge2": 2.0, "rougeL": 8.0},
         "timings": {"eval_s": 1.5, "total_s": 1.6}, "efficiency": {"eval_tokens_per_s": 90.0},
         "config": {"evaluation": {"size": 8}}},
    )  # fmt: skip
    write_json(
        store.run_dir("run-aaa") / "result.json",
        {"run_id": "run-aaa", "kind": "lora", "status": "done",
         "metrics": {"rouge1": 40.0, "rouge2": 15.5, "rougeL": 33.25},
         "timings": {"train_s": 12.0, "eval_s": 2.0, "total_s": 14.5},
         "efficiency": {"trainable_params": 4096, "adapter_bytes": 20000,
                        "train_tokens_per_s": 300.0, "peak_memory_bytes": 123456},
         "config": config(8, 2e-4)},
    )  # fmt: skip
    write_json(
        store.run_dir("run-bbb") / "result.json",
        {"run_id": "run-bbb", "kind": "lora", "status": "failed",
         "error": "RuntimeError: out of memory", "traceback": "...", "config": config(16, 2e-4)},
    )  # fmt: skip
    return store.root


def test_one_row_per_run_with_settings_metrics_and_efficiency(sweep):
    rows = {row["run_id"]: row for row in run_table(RunStore(sweep))}
    assert list(rows) == ["base-zzz", "run-aaa", "run-bbb", "run-ccc"]
    base, baseline, failed, planned = rows.values()
    assert (base["kind"], base["labels"], base["rougeL"]) == ("base", ["zero-shot"], 8.0)
    assert base["r"] is None  # no LoRA settings
    assert baseline["is_baseline"] and baseline["experiments"] == ["rank", "lr"]
    assert (baseline["r"], baseline["alpha"], baseline["learning_rate"]) == (8, 16.0, 2e-4)
    assert baseline["target_modules"] == ["q_proj", "v_proj"]
    assert (baseline["rougeL"], baseline["train_s"]) == (33.25, 12.0)
    assert baseline["trainable_params"] == 4096
    assert (failed["status"], failed["r"]) == ("failed", 16)
    assert failed["error"] == "RuntimeError: out of memory"
    assert "rougeL" not in failed
    assert (planned["status"], planned["experiments"], planned["r"]) == ("planned", ["lr"], None)


def test_csv_export_through_the_cli(sweep, capsys):
    assert main(["export", str(sweep)]) == 0
    path = sweep / "runs.csv"
    assert capsys.readouterr().out.strip() == str(path)
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["run_id"] for row in rows] == ["base-zzz", "run-aaa", "run-bbb", "run-ccc"]
    baseline = rows[1]
    assert baseline["labels"] == "baseline;rank=8;lr=2e-4"
    assert baseline["target_modules"] == "q_proj;v_proj"
    assert float(baseline["rougeL"]) == 33.25 and baseline["is_baseline"] == "True"
    assert rows[2]["rougeL"] == "" and rows[2]["error"] == "RuntimeError: out of memory"
    assert rows[3]["status"] == "planned"


def test_json_export_keeps_types_and_honours_out(sweep, tmp_path, capsys):
    out = tmp_path / "elsewhere" / "table.json"
    assert main(["export", str(sweep), "--format", "json", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    rows = json.loads(out.read_text())
    assert rows == run_table(RunStore(sweep))
    assert rows[1]["labels"] == ["baseline", "rank=8", "lr=2e-4"]
    assert not (sweep / "runs.json").exists()


def test_a_folder_that_is_not_a_sweep_is_a_user_error(tmp_path, capsys):
    with pytest.raises(UserError, match="is not a sweep folder"):
        export_runs(tmp_path)
    assert main(["export", str(tmp_path), "--format", "json"]) == 2
    err = capsys.readouterr().err
    assert (
        err.strip()
        == f"lorasweep: error: sweep_dir: {tmp_path} is not a sweep folder (no plan.json)"
    )
    assert not list(tmp_path.iterdir())


def test_unknown_format_is_refused(sweep, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(sweep), "--format", "xlsx"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'xlsx'" in capsys.readouterr().err
