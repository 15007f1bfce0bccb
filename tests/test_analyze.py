"""``lorasweep analyze``: the sweep report from prediction files made elsewhere.

The study is laid out as a published one is: one folder per configuration holding a
``predictions.jsonl`` with ``dialogue``, ``reference`` and ``prediction`` (no ids, each file in
its own order), so the files pair by input text. Scores are checked against ``rouge-score`` and
the paired bootstrap computed here, independently of the report.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import yaml
from rouge_score import rouge_scorer

from lorasweep.builtin.corpus import generate_dialogues
from lorasweep.cli.main import main
from lorasweep.stats.bootstrap import paired_bootstrap
from tests.test_report import parse_delta, section, table_rows

N = 40
DIALOGUES = generate_dialogues(N, 5)


def _half(text: str) -> str:
    words = text.split()
    return " ".join(words[: len(words) // 2])


# Each configuration's prediction for example i: the full reference (best), half of it, or the
# first line of the dialogue (the zero-shot base model).
SYSTEMS = {
    "baseline": lambda i, d: _half(d["summary"]) if i % 4 else d["summary"],
    "r4": lambda i, d: _half(d["summary"]) if i % 5 else d["summary"],
    "r16": lambda i, d: d["summary"] if i % 5 else _half(d["summary"]),
    "lr1e-4": lambda i, d: d["summary"] if i % 3 else _half(d["summary"]),
    "base": lambda i, d: d["dialogue"].splitlines()[0],
}


def write_study(root, systems=SYSTEMS, **changes):
    for name, predict in systems.items():
        rows = [
            {"dialogue": d["dialogue"], "reference": d["summary"], "prediction": predict(i, d)}
            for i, d in enumerate(DIALOGUES)
        ]
        random.Random(name).shuffle(rows)  # every tool writes its own order
        (root / "runs" / name).mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r) + "\n" for r in rows)
        (root / "runs" / name / "predictions.jsonl").write_text(text)
    study = {
        "name": "published-study",
        "model": "meta-llama/Llama-3.2-1B-Instruct",
        "fields": {"input": "dialogue", "reference": "reference", "prediction": "prediction"},
        "baseline": {"label": "r=8, lr 2e-4, q+v", "predictions": "runs/baseline/predictions.jsonl",
                     "cost": {"trainable_params": 851968, "train_s": 600}},
        "zero_shot": {"predictions": "runs/base/predictions.jsonl"},
        "experiments": [
            {"name": "rank", "factor": "lora.r", "values": [
                {"value": 4, "predictions": "runs/r4/predictions.jsonl",
                 "cost": {"trainable_params": 425984, "train_s": 590}},
                {"value": 8, "baseline": True},
                {"value": 16, "predictions": "runs/r16/predictions.jsonl",
                 "cost": {"trainable_params": 1703936, "train_s": 620}},
            ]},
        ],
        **changes,
    }  # fmt: skip
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def rouge_l(system: str) -> np.ndarray:
    """Per-example ROUGE-L in the baseline file's order: the examples the report is built on."""
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    order = list(range(N))
    random.Random("baseline").shuffle(order)
    return np.array(
        [
            100 * scorer.score(d["summary"], SYSTEMS[system](i, d))["rougeL"].fmeasure
            for i, d in ((i, DIALOGUES[i]) for i in order)
        ]
    )


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    study = write_study(root)
    assert main(["analyze", str(study), "--out", str(root / "analysis")]) == 0
    return root, (root / "analysis" / "report" / "report.md").read_text()


def test_scores_and_intervals_are_those_of_the_files(analyzed):
    _, report = analyzed
    rows = table_rows(section(report, "## Experiment: rank").split("Cost (")[0])
    baseline, r16, r4 = rouge_l("baseline"), rouge_l("r16"), rouge_l("r4")
    assert rows["8 (baseline)"][2].strip("*") == f"{baseline.mean():.2f}"
    assert rows["16"][2].strip("*") == f"{r16.mean():.2f}"
    # Paired by input text although every file has its own order: the uncorrected interval
    # is the paired bootstrap of the files' own per-example scores.
    expected = paired_bootstrap(baseline, r16)
    assert parse_delta(rows["16"][4]) == pytest.approx(
        (expected.delta, expected.low, expected.high), abs=0.006
    )
    assert rows["16"][6] == "significant gain"
    assert paired_bootstrap(baseline, r4).verdict == "noise" and rows["4"][6] == "within noise"
    assert rows["16"][8] == "1,703,936"  # the study's cost columns


def test_the_report_is_a_sweep_report_with_its_provenance(analyzed):
    root, report = analyzed
    assert report.startswith("# LoRA sweep report: published-study\n\n## The answer")
    assert "The predictions were made outside lorasweep, one file per configuration" in report
    assert "scored here on the baseline's 40 examples, paired with it by input text" in report
    assert "**Recommended: the baseline with `lora.r` = 16** (measured as 16)" in report
    perspective = table_rows(section(report, "## Perspective"))
    zero_shot = perspective["base model, zero-shot (same prompt)"]
    assert parse_delta(zero_shot[5])[0] == pytest.approx(
        (rouge_l("base") - rouge_l("baseline")).mean(), abs=0.006
    )
    assert "first 3 utterances" in perspective  # extractive rows: the files hold the inputs
    assert "## Generation health" in report
    # The folder is a sweep folder: report rebuilds it, byte for byte.
    assert main(["report", str(root / "analysis")]) == 0
    assert (root / "analysis" / "report" / "report.md").read_text() == report


def test_a_combination_never_run_says_train_it_to_confirm(tmp_path):
    lr = {"name": "lr", "factor": "training.learning_rate", "values": [
        {"value": 2.0e-4, "baseline": True},
        {"value": 1.0e-4, "predictions": "runs/lr1e-4/predictions.jsonl"},
    ]}  # fmt: skip
    study = write_study(tmp_path)
    raw = yaml.safe_load(study.read_text())
    raw["experiments"].append(lr)
    study.write_text(yaml.safe_dump(raw))
    assert main(["analyze", str(study), "--out", str(tmp_path / "a")]) == 0
    answer = section((tmp_path / "a" / "report" / "report.md").read_text(), "## The answer")
    assert "`lora.r` = 16 and `training.learning_rate` = 1e-4" in answer
    assert "never run as one configuration" in answer and "train it to confirm" in answer
    # The study adds that run: the same folder is replaced, and the answer is now measured.
    raw["confirmation"] = {"values": {"rank": 16, "lr": 1.0e-4},
                           "predictions": "runs/r16/predictions.jsonl"}  # fmt: skip
    study.write_text(yaml.safe_dump(raw))
    assert main(["analyze", str(study), "--out", str(tmp_path / "a")]) == 0
    report = (tmp_path / "a" / "report" / "report.md").read_text()
    assert "(measured by the confirmation run): ROUGE-L" in section(report, "## The answer")
    assert "## Confirmation run" in report and "never run" not in report


def test_a_file_without_the_baselines_examples_is_one_line(tmp_path, capsys):
    study = write_study(tmp_path)
    path = tmp_path / "runs" / "r16" / "predictions.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # one example short
    out = tmp_path / "a"
    assert main(["analyze", str(study), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"lorasweep: error: experiments[0].values[2].predictions: {path}")
    assert "does not hold the baseline's 40 examples (1 missing by input" in line
    assert not out.exists() and not list(tmp_path.glob(".a-*"))  # nothing half-written


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "colour: unknown key"),
        ({"evaluation": {"size": 200}}, "evaluation: size does not apply"),
        ({"zero_shot": {"predictions": "runs/nope.jsonl"}}, "zero_shot.predictions: no such file"),
        (
            {"experiments": [{"name": "rank", "factor": "lora.r",
                              "values": [{"value": 4, "baseline": True,
                                          "predictions": "runs/r4/predictions.jsonl"}]}]},
            "experiments[0].values[0]: give predictions or baseline: true, not both",
        ),
    ],
)  # fmt: skip
def test_a_bad_study_is_one_line_naming_the_field(tmp_path, capsys, change, message):
    study = write_study(tmp_path, **change)
    assert main(["analyze", str(study), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists()


def test_several_references_are_scored_best_of(tmp_path):
    study = write_study(tmp_path, fields={"input": "dialogue"})
    path = tmp_path / "runs" / "baseline" / "predictions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row["reference"] = ["an unrelated sentence about nothing", row["reference"]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["analyze", str(study), "--out", str(tmp_path / "a")]) == 0
    report = (tmp_path / "a" / "report" / "report.md").read_text()
    rows = table_rows(section(report, "## Experiment: rank"))
    assert rows["8 (baseline)"][2].strip("*") == f"{rouge_l('baseline').mean():.2f}"
