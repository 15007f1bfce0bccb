"""Bad input: one clear line per problem naming the field, exit status 2, nothing written."""

from __future__ import annotations

import copy

import pytest

from lorasweep.cli.main import main
from tests.conftest import sweep_dict, write_yaml


def edit(raw: dict, path: str, value) -> dict:
    raw = copy.deepcopy(raw)
    *parents, key = path.split(".")
    node = raw
    for part in parents:
        node = node[part]
    node[key] = value
    return raw


@pytest.fixture
def good(micro_model, dialogue_dir):
    return sweep_dict(micro_model, dialogue_dir)


def run_bad(raw: dict, tmp_path, capsys) -> list[str]:
    config = write_yaml(tmp_path / "bad.yaml", raw)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 2
    assert not out.exists(), "a rejected sweep must leave nothing behind"
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert all(line.startswith("lorasweep: error: ") for line in lines)
    return lines


def test_unknown_target_module_lists_the_model_modules(good, tmp_path, capsys):
    raw = edit(
        good,
        "experiments",
        [{"name": "t", "factor": "lora.target_modules", "values": [["q_proj", "qkv"]]}],
    )
    (line,) = run_bad(raw, tmp_path, capsys)
    assert "experiments[0].values[0]: no module qkv in the model" in line
    assert "q_proj" in line and "down_proj" in line


def test_missing_column_lists_the_columns(good, tmp_path, capsys):
    (line,) = run_bad(edit(good, "data.input_column", "dialog"), tmp_path, capsys)
    assert "data.input_column: no column 'dialog'" in line and "dialogue, summary" in line


def test_empty_data(good, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("")
    (data / "validation.jsonl").write_text('{"dialogue": "A: hi", "summary": "A says hi."}\n')
    (line,) = run_bad(edit(good, "data.source", str(data)), tmp_path, capsys)
    assert line.startswith("lorasweep: error: data.source:")


def test_eval_size_larger_than_split(good, tmp_path, capsys):
    (line,) = run_bad(edit(good, "evaluation.size", 500), tmp_path, capsys)
    assert "evaluation.size: 500 is larger than the 'validation' split (12 rows)" in line


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("baseline.lora.r", 0, "baseline.lora.r: must be greater than 0 (got 0)"),
        ("baseline.lora.r", -4, "baseline.lora.r: must be greater than 0 (got -4)"),
        (
            "baseline.training.learning_rate",
            0,
            "baseline.training.learning_rate: must be greater than 0",
        ),
        (
            "baseline.training.learning_rate",
            -1e-4,
            "baseline.training.learning_rate: must be greater than 0",
        ),
        ("baseline.lora.dropout", 1.5, "baseline.lora.dropout: must be less than 1"),
        (
            "baseline.training.batch_size",
            "four",
            "baseline.training.batch_size: must be a valid integer",
        ),
        ("model.name", "/nonexistent/model", "model.name: no such directory: /nonexistent/model"),
        ("data.source", "/nonexistent/data", "data.source: no such file or directory"),
        ("evaluation.split", "dev", "evaluation.split: no split 'dev'"),
        ("evaluation.seed", -1, "evaluation.seed: must be greater than or equal to 0"),
        ("baseline.lora.r", 10**9, "baseline.lora.r: must be less than or equal to 65536"),
        ("baseline.training.max_length", 10**12, "baseline.training.max_length: must be less than"),
        (
            "baseline.training.warmup_steps",
            -5,
            "baseline.training.warmup_steps: must be greater than or equal to 0",
        ),
        (
            "baseline.training.max_steps",
            2.5,
            "baseline.training.max_steps: must be a valid integer",
        ),
        (
            "baseline.lora.alpha",
            "two r",
            "baseline.lora.alpha: must be a number or a multiple of r",
        ),
        (
            "baseline.lora.target_modules",
            [],
            "baseline.lora.target_modules: must name at least one module",
        ),
        (
            "prompt.chat_template",
            "sometimes",
            "prompt.chat_template: must be auto, true or false (got 'sometimes')",
        ),
        (
            "baseline.training",
            {"learning_rate": 1e-3},
            "baseline.training: set max_steps or epochs",
        ),
        ("model", {}, "model.name: is required"),
        ("experiments", [{"name": "x", "values": [1]}], "experiments[0].factor: is required"),
        ("experiments", "rank", "experiments: must be a valid list"),
        # issue #12: booleans are not numbers, numbers have bounds, templates must be fillable
        ("baseline.lora.r", True, "baseline.lora.r: must be a number, not true or false"),
        ("generation.max_new_tokens", 10**12, "generation.max_new_tokens: must be less than"),
        ("prompt.template", "{} {input}", "prompt.template: positional placeholder {}"),
        ("baseline.training.max_length", 4096, "baseline.training.max_length: 4096 is more than"),
        # issue #14: metrics are named, their keys known, their files there, before training
        ("evaluation.metrics", ["rouge", "chrF"], "evaluation.metrics[1]: unknown metric 'chrF'"),
        ("evaluation.primary", "chrf", "evaluation.primary: not a key of the metrics; choose"),
        (
            "evaluation.metrics",
            ["rouge", {"chrf": {"order": 2}}],
            "evaluation.metrics[1]: chrf.order: unknown option",
        ),
        ("evaluation.metrics", [], "evaluation.metrics: List should have at least 1 item"),
        ("evaluation.metrics", ["rouge", "rouge"], "evaluation.metrics: 'rouge' is listed twice"),
        (
            "evaluation.metrics",
            ["rouge", "/nonexistent/m.py:score"],
            "evaluation.metrics[1]: /nonexistent/m.py:score: no such file /nonexistent/m.py",
        ),
    ],
)
def test_bad_values(good, tmp_path, capsys, path, value, expected):
    lines = run_bad(edit(good, path, value), tmp_path, capsys)
    assert any(expected in line for line in lines), lines


def test_unknown_keys(good, tmp_path, capsys):
    raw = edit(good, "baseline.training.lerning_rate", 1e-3)
    raw["genration"] = {}
    lines = run_bad(raw, tmp_path, capsys)
    assert any(
        "baseline.training.lerning_rate: unknown key; did you mean 'learning_rate'?" in x
        for x in lines
    )
    assert any("genration: unknown key; did you mean 'generation'?" in x for x in lines)


def test_broken_json_line(good, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(
        '{"dialogue": "A: hi", "summary": "A says hi."}\n{"dialogue": \n'
    )
    (data / "validation.jsonl").write_text('{"dialogue": "A: hi", "summary": "A says hi."}\n')
    (line,) = run_bad(edit(good, "data.source", str(data)), tmp_path, capsys)
    assert f"data.source: cannot read {data / 'train.jsonl'}" in line


def test_missing_config_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: no such file" in capsys.readouterr().err


def test_dry_run_checks_targets_without_writing(good, tmp_path, capsys):
    config = write_yaml(tmp_path / "ok.yaml", good)
    assert main(["run", str(config), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "4 unique training runs + 1 zero-shot evaluation" in out
    assert "Target modules checked" in out
    assert not (tmp_path / "out").exists()


def test_status_of_a_folder_that_is_no_sweep(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "is not a sweep folder" in capsys.readouterr().err


def test_non_utf8_data(good, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_bytes(b'dialogue,summary\n"A: caf\xe9",A orders.\n')
    (data / "validation.csv").write_text("dialogue,summary\nA: hi,A says hi.\n")
    (line,) = run_bad(edit(good, "data.source", str(data)), tmp_path, capsys)
    assert "train.csv is not UTF-8 text (byte" in line


def test_a_rejected_config_leaves_an_existing_store_untouched(good, tmp_path, capsys):
    store = tmp_path / "store"
    (store / "runs" / "run-abc").mkdir(parents=True)
    (store / "plan.json").write_text("{}")
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*")}
    config = write_yaml(tmp_path / "bad.yaml", edit(good, "baseline.lora.r", 0))
    assert main(["run", str(config), "--out", str(store)]) == 2
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*")} == before


def test_a_custom_metric_without_its_function_or_key_stops_before_training(good, tmp_path, capsys):
    metrics = tmp_path / "my_metrics.py"
    metrics.write_text("def score(prediction, references):\n    return {'hit': 1.0}\n")
    raw = edit(good, "evaluation.metrics", ["rouge", f"{metrics}:scores"])
    (line,) = run_bad(raw, tmp_path, capsys)
    assert f"evaluation.metrics[1]: {metrics}:scores: 'scores' is not defined in {metrics}" in line
    raw = edit(edit(good, "evaluation.metrics", ["rouge", f"{metrics}:score"]),
               "evaluation.primary", "accuracy")  # fmt: skip
    (line,) = run_bad(raw, tmp_path, capsys)
    assert "evaluation.primary: 'accuracy' is not a key of the metrics; choose one of" in line
    assert "rougeL" in line and "hit" in line
