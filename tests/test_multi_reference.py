"""Several references per example, end to end: a sweep, its test split, the report and score.

The data is shaped like DialogSum: the training split has one reference column (``summary``),
the evaluation and test splits three (``summary1``-``summary3``), and ``data.target_column:
[summary, summary1, summary2, summary3]`` names them all; each split uses the columns it has.
Training learns the first; every metric takes each example's best over the references, the same
numbers ``lorasweep score`` computes.
"""

from __future__ import annotations

import dataclasses
import json
from statistics import fmean

import pytest
from rouge_score import rouge_scorer

from lorasweep.builtin.corpus import generate_dialogues
from lorasweep.builtin.tiny_model import TinyRecipe, build_tiny_model
from lorasweep.cli.main import main
from lorasweep.config.load import load_sweep
from lorasweep.data.sources import describe_references, load_eval, load_train
from tests.conftest import sweep_dict, write_yaml

# Generic chat words the small model below learns to produce: the third reference earns
# points where the real summary earns none, so best-of differs from first-only.
GENERIC = "I will be there, you can come and see me"


COLUMNS = ["summary", "summary1", "summary2", "summary3"]


def _rows(n: int, seed: int, references: int) -> list[dict]:
    rows = []
    for i, r in enumerate(generate_dialogues(n, seed)):
        if references == 1:
            rows.append({"id": r["id"], "dialogue": r["dialogue"], "summary": r["summary"]})
            continue
        second = r["summary"].split(" and ")[0] + "."  # a shorter paraphrase
        third = GENERIC if i % 3 else ""  # some examples have two references only
        rows.append(
            {"id": r["id"], "dialogue": r["dialogue"], "summary1": r["summary"],
             "summary2": second, "summary3": third}
        )  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("three-references")
    for name, n, seed, references in (
        ("train", 40, 21, 1), ("validation", 12, 22, 3), ("test", 12, 23, 3)
    ):  # fmt: skip
        text = "".join(json.dumps(r) + "\n" for r in _rows(n, seed, references))
        (out / f"{name}.jsonl").write_text(text)
    return out


@pytest.fixture(scope="module")
def chatty_model(tmp_path_factory):
    """The micro model pretrained long enough (a few seconds) to write words, not noise."""
    out = tmp_path_factory.mktemp("chatty-micro")
    recipe = dataclasses.replace(TinyRecipe.micro(), steps=300, learning_rate=1e-2)
    build_tiny_model(recipe, out, log=lambda line: None)
    return out


@pytest.fixture(scope="module")
def sweep(chatty_model, data, tmp_path_factory):
    root = tmp_path_factory.mktemp("multi-ref-sweep")
    raw = sweep_dict(chatty_model, data)
    raw["data"]["target_column"] = COLUMNS
    raw["generation"]["max_new_tokens"] = 24
    raw["experiments"] = [{"name": "rank", "factor": "lora.r", "values": [4, 8]}]
    raw["test"] = {"split": "test", "size": 8, "seed": 1}
    config = write_yaml(root / "s.yaml", raw)
    out = root / "out"
    assert main(["run", str(config), "--out", str(out)]) == 0
    return config, out


def _predictions(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _best_of(prediction: str, references: list[str]) -> float:
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    return max(100 * scorer.score(r, prediction)["rougeL"].fmeasure for r in references)


def test_training_learns_the_first_reference_and_evaluation_keeps_all(sweep, data):
    config, _ = sweep
    sweep_config = load_sweep(config)
    train = load_train(sweep_config.data)
    assert [e.target for e in train] == [r["summary"] for r in _rows(40, 21, 1)]
    evaluation = load_eval(sweep_config.data, sweep_config.evaluation)
    assert all(isinstance(e.target, list) and 2 <= len(e.target) <= 3 for e in evaluation)
    assert any(len(e.target) == 2 for e in evaluation)  # the empty third is dropped


def test_every_run_scores_each_example_best_of_its_references(sweep):
    _, out = sweep
    run_dirs = sorted(p for p in (out / "runs").iterdir() if (p / "predictions.jsonl").is_file())
    assert len(run_dirs) >= 3  # zero-shot, baseline, r=8 (+ test-split evaluations)
    differs = 0
    for run in run_dirs:
        for row in _predictions(run / "predictions.jsonl"):
            assert isinstance(row["reference"], list) and row["reference"][0]
            best = _best_of(row["prediction"], row["reference"])
            assert row["rougeL"] == pytest.approx(best)
            differs += best > _best_of(row["prediction"], row["reference"][:1])
    assert differs > 0  # a later reference decided some score: best-of, not first-only


def _runs(out, kind):
    results = [json.loads(p.read_text()) for p in (out / "runs").glob("*/result.json")]
    return [out / "runs" / r["run_id"] for r in results if r["kind"] == kind]


def test_the_test_split_is_scored_best_of_too(sweep):
    _, out = sweep
    tests = _runs(out, "test")
    assert tests, "the test split was evaluated"
    for run in tests:
        rows = _predictions(run / "predictions.jsonl")
        assert len(rows) == 8 and all(isinstance(r["reference"], list) for r in rows)
        assert all(
            r["rougeL"] == pytest.approx(_best_of(r["prediction"], r["reference"])) for r in rows
        )
    assert "## Experiment: rank" in (out / "report" / "report.md").read_text()


def test_score_on_a_runs_predictions_gives_the_sweeps_numbers(sweep, tmp_path, capsys):
    _, out = sweep
    run = next(r for r in _runs(out, "lora") if (r / "predictions.jsonl").is_file())
    rows = _predictions(run / "predictions.jsonl")
    bare = [{k: r[k] for k in ("id", "reference", "prediction")} for r in rows]  # no scores
    path = tmp_path / "bare.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in bare))
    capsys.readouterr()
    assert main(["score", str(path)]) == 0
    printed = capsys.readouterr().out
    mean = fmean(r["rougeL"] for r in rows)
    assert json.loads((run / "result.json").read_text())["metrics"]["rougeL"] == pytest.approx(mean)
    assert f"{mean:.2f} [" in printed


def test_the_run_says_which_columns_each_split_uses(sweep):
    config, _ = sweep
    data = load_sweep(config).data
    splits = {"train": "train", "evaluation": "validation", "test": "test"}
    assert describe_references(data, splits) == (
        "references: summary (train); summary1, summary2, summary3 (validation, test)"
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ([], "data.target_column: an empty list; name at least one column"),
        (["summary1", "summary1"], "a column is named twice"),
        (["nope", "none"], "data.target_column: none of 'nope', 'none' is in 'train'"),
    ],
)
def test_bad_reference_columns_are_one_line(chatty_model, data, tmp_path, capsys, target, message):
    raw = sweep_dict(chatty_model, data)
    raw["data"]["target_column"] = target
    config = write_yaml(tmp_path / "s.yaml", raw)
    assert main(["run", str(config), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "runs").exists()
