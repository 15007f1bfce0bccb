"""End to end: a real small sweep through the CLI, then the store, the report and a rerun."""

from __future__ import annotations

import json
import re
from statistics import fmean

import pytest
from peft import PeftModel
from transformers import AutoModelForCausalLM

from lorasweep.cli.main import main
from tests.conftest import sweep_dict, write_yaml


@pytest.fixture(scope="module")
def finished_sweep(micro_model, dialogue_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    config = write_yaml(root / "micro.yaml", sweep_dict(micro_model, dialogue_dir))
    out = root / "sweep"
    assert main(["run", str(config), "--out", str(out)]) == 0
    return config, out


def load(path):
    return json.loads(path.read_text())


def test_store_holds_every_artifact(finished_sweep):
    _, out = finished_sweep
    plan = load(out / "plan.json")
    assert len(plan["runs"]) == 4  # 2 ranks x 2 targets x 2 lrs around one shared baseline
    for run in plan["runs"]:
        folder = out / "runs" / run["run_id"]
        result = load(folder / "result.json")
        assert result["status"] == "done"
        assert result["environment"]["packages"]["peft"]
        assert result["config"]["lora"]["alpha"] == 2 * result["config"]["lora"]["r"]
        assert result["adapter_id"] == run["adapter_id"]
        adapter = out / "adapters" / run["adapter_id"]
        steps = [
            json.loads(line) for line in (adapter / "train_log.jsonl").read_text().splitlines()
        ]
        assert [s["step"] for s in steps] == list(range(1, 7))
        assert (adapter / "adapter" / "adapter_config.json").is_file()
        assert load(adapter / "adapter.json")["train_steps"] == 6
        assert result["timings"]["train_s"] == load(adapter / "adapter.json")["timings"]["train_s"]
        assert (folder / "config.yaml").is_file() and (adapter / "config.yaml").is_file()
        assert not (adapter / "checkpoint.pt").exists()
        predictions = [
            json.loads(x) for x in (folder / "predictions.jsonl").read_text().splitlines()
        ]
        assert len(predictions) == 8
        # The stored means are the means of the stored per-example scores.
        for key in ("rouge1", "rouge2", "rougeL"):
            assert result["metrics"][key] == pytest.approx(fmean(p[key] for p in predictions))
    base = load(out / "runs" / plan["base_eval"] / "result.json")
    assert base["kind"] == "base" and base["status"] == "done"


def test_all_runs_share_the_same_evaluation_examples(finished_sweep):
    _, out = finished_sweep
    ids = {
        tuple(json.loads(line)["id"] for line in path.read_text().splitlines())
        for path in out.glob("runs/*/predictions.jsonl")
    }
    assert len(ids) == 1


def test_adapter_loads_with_peft(finished_sweep, micro_model):
    _, out = finished_sweep
    plan = load(out / "plan.json")
    base = AutoModelForCausalLM.from_pretrained(micro_model)
    adapter = out / "adapters" / plan["runs"][0]["adapter_id"] / "adapter"
    model = PeftModel.from_pretrained(base, adapter)
    lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # trained: B starts at zero


def test_report_tables_match_the_store(finished_sweep):
    _, out = finished_sweep
    report = (out / "report" / "report.md").read_text()
    plan = load(out / "plan.json")
    baseline = load(out / "runs" / plan["baseline"] / "result.json")["metrics"]
    for experiment in plan["experiments"]:
        assert f"## Experiment: {experiment['name']}" in report
        assert (out / "report" / f"{experiment['name']}.png").is_file()
        for row in experiment["rows"]:
            metrics = load(out / "runs" / row["run_ids"][0] / "result.json")["metrics"]
            label = f"{row['label']} (baseline)" if row["is_baseline"] else row["label"]
            section = report.split(f"## Experiment: {experiment['name']} ")[1]
            line = next(x for x in section.splitlines() if x.startswith(f"| {label} |"))
            # value | R-1 | R-2 | R-Lsum? | R-L | delta R-L [Holm CI] | [95% CI] | P(delta<=0) |
            # verdict (Holm) | detectable delta | params
            cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
            assert float(cells[3]) == pytest.approx(metrics["rougeL"], abs=0.006)
            if not row["is_baseline"]:
                delta, low, high = (float(x) for x in re.findall(r"[+-]\d+\.\d+", cells[4]))
                assert delta == pytest.approx(metrics["rougeL"] - baseline["rougeL"], abs=0.011)
                assert low <= delta + 0.005 and delta - 0.005 <= high
                significant = {low > 0: "significant gain", high < 0: "significant loss"}
                assert cells[7] == significant.get(True, "within noise")
    zero_shot = load(out / "runs" / plan["base_eval"] / "result.json")["metrics"]
    line = next(x for x in report.splitlines() if x.startswith("| base model, zero-shot"))
    assert f"{zero_shot['rougeL']:.2f}" in line
    overall = report.split("\n## Recommendation\n")[1].split("\n## ")[0]
    runs = [load(out / "runs" / r["run_id"] / "result.json") for r in plan["runs"]]
    best = max(r["metrics"]["rougeL"] for r in runs)
    named = overall.split("Highest ROUGE-L of any configuration:")[1]
    assert any(r["run_id"] in named for r in runs if r["metrics"]["rougeL"] == best)
    assert f"{best:.2f}" in named


def test_report_command_rebuilds_the_same_report(finished_sweep):
    _, out = finished_sweep
    before = (out / "report" / "report.md").read_text()
    assert main(["report", str(out)]) == 0
    assert (out / "report" / "report.md").read_text() == before


def test_rerun_skips_finished_runs(finished_sweep, capsys):
    config, out = finished_sweep
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    assert main(["run", str(config), "--out", str(out)]) == 0
    assert "0 run(s) done, 5 skipped" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")} == stamps


def test_status_lists_every_run(finished_sweep, capsys):
    _, out = finished_sweep
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^5 done$", text, re.MULTILINE)
    assert "zero-shot" in text


def test_rerunning_a_run_gives_the_same_metrics(
    finished_sweep, micro_model, dialogue_dir, tmp_path
):
    config, out = finished_sweep
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["experiments"] = []
    again = tmp_path / "again"
    assert main(["run", str(write_yaml(tmp_path / "b.yaml", raw)), "--out", str(again)]) == 0
    plan = load(out / "plan.json")
    first = load(out / "runs" / plan["baseline"] / "result.json")["metrics"]
    second = load(again / "runs" / plan["baseline"] / "result.json")["metrics"]
    assert first == second


def test_new_generation_settings_reevaluate_without_retraining(finished_sweep, tmp_path, capsys):
    """Only the generation settings change: every stored adapter is evaluated again, none is
    trained again, and the old evaluations stay in the store untouched."""
    config, out = finished_sweep
    raw = __import__("yaml").safe_load(config.read_text())
    raw["generation"] = {"max_new_tokens": 6, "batch_size": 2}
    changed = write_yaml(tmp_path / "changed.yaml", raw)
    adapters = {p: p.stat().st_mtime_ns for p in out.glob("adapters/*/**/*") if p.is_file()}
    before = load(out / "plan.json")
    assert main(["run", str(changed), "--out", str(out)]) == 0
    after = load(out / "plan.json")
    assert {r["adapter_id"] for r in after["runs"]} == {r["adapter_id"] for r in before["runs"]}
    assert not {r["run_id"] for r in after["runs"]} & {r["run_id"] for r in before["runs"]}
    assert {p: p.stat().st_mtime_ns for p in out.glob("adapters/*/**/*") if p.is_file()} == adapters
    for run in after["runs"]:
        result = load(out / "runs" / run["run_id"] / "result.json")
        assert result["status"] == "done" and result["generation"]["max_new_tokens"] == 6
        rows = [
            json.loads(x)
            for x in (out / "runs" / run["run_id"] / "predictions.jsonl").read_text().splitlines()
        ]
        assert max(r["generated_tokens"] for r in rows) <= 6
    # The previous evaluations are still there, as they were.
    for run in before["runs"]:
        assert load(out / "runs" / run["run_id"] / "result.json")["status"] == "done"
    # Back to the original settings: everything is found done again.
    assert main(["run", str(config), "--out", str(out)]) == 0
    assert "0 run(s) done, 5 skipped" in capsys.readouterr().out


def test_a_store_of_the_previous_format_is_refused_in_one_line(finished_sweep, tmp_path, capsys):
    config, _ = finished_sweep
    old = tmp_path / "old"
    old.mkdir()
    (old / "plan.json").write_text(json.dumps({"name": "micro", "runs": [], "base_eval": "base-x"}))
    for command in (
        ["run", str(config), "--out", str(old)],
        ["report", str(old)],
        ["status", str(old)],
    ):
        assert main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "store format 1" in err[0] and "new --out folder" in err[0]
    assert sorted(p.name for p in old.iterdir()) == ["plan.json"]
