"""``lorasweep score``: external prediction files, their errors, and their rows in a sweep."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rouge_score import rouge_scorer

from lorasweep.builtin.corpus import generate_dialogues
from lorasweep.cli.main import main
from lorasweep.evaluation.extractive import first_utterances, longest_utterances
from lorasweep.external import Fields, score_file
from lorasweep.report.tables import build_tables
from tests.test_report import BASE, N, make_store, section, table_rows

REFERENCES = [f"Ann and Bob meet at {i} pm at the cafe." for i in range(N)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def api_predictions(path: Path, ids=range(N), **extra) -> Path:
    rows = [
        {
            "id": f"ex{i}",
            "prediction": f"Ann meets Bob at {i}.",
            "reference": REFERENCES[i],
            **extra,
        }
        for i in ids
    ]
    return write_jsonl(path, rows)


def test_score_prints_means_with_intervals(tmp_path, capsys):
    path = api_predictions(tmp_path / "gpt.jsonl")
    assert main(["score", str(path)]) == 0
    out = capsys.readouterr().out
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    expected = 100 * np.mean(
        [
            scorer.score(r, f"Ann meets Bob at {i}.")["rougeL"].fmeasure
            for i, r in enumerate(REFERENCES)
        ]
    )
    assert f"{expected:.2f} [" in out
    assert "gpt" in out and "95% bootstrap interval" in out


def test_field_names_are_configurable_and_references_may_be_lists(tmp_path):
    path = write_jsonl(
        tmp_path / "other.jsonl",
        [
            {
                "output": "Bob buys milk.",
                "targets": ["Ann calls.", "Bob buys milk."],
                "dialogue": "x",
            }
        ],
    )
    fields = Fields(prediction="output", reference="targets", input="dialogue")
    scored = score_file(path, fields=fields)
    assert scored.metrics["rouge1"] == pytest.approx(100)  # the best of its two references
    assert scored.rows[0]["input"] == "x" and "id" not in scored.rows[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prediction": "a", "reference": "b"}\n{"prediction": "a", \n', ":2: not valid JSON"),
        ('{"prediction": "a"}\n', ":1: no field 'reference'"),
        ('{"prediction": 3, "reference": "b"}\n', ":1: field 'prediction' must be a string"),
        ("[1, 2]\n", ":1: expected a JSON object"),
        ("\n", ": no predictions (the file is empty)"),
    ],
)
def test_bad_input_is_one_line_naming_file_line_and_field(tmp_path, capsys, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    assert main(["score", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"lorasweep: error: {path}{message}" or (
        err.startswith(f"lorasweep: error: {path}{message}") and "\n" not in err
    )


def test_missing_file_and_bad_sweep_folder(tmp_path, capsys):
    assert main(["score", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl: no such file or directory" in capsys.readouterr().err
    path = api_predictions(tmp_path / "a.jsonl")
    assert main(["score", str(path), "--into", str(tmp_path)]) == 2
    assert "--into:" in capsys.readouterr().err and not (tmp_path / "external").exists()


def test_a_directory_gives_one_row_per_file(tmp_path, capsys):
    folder = tmp_path / "preds"
    folder.mkdir()
    api_predictions(folder / "model-a.jsonl")
    api_predictions(folder / "model-b.jsonl", ids=range(10))
    assert main(["score", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "model-a" in out and "model-b" in out
    assert main(["score", str(folder), "--name", "x"]) == 2
    assert "--name:" in capsys.readouterr().err


def test_into_adds_paired_external_rows_to_the_perspective_table(tmp_path, capsys):
    store = make_store(tmp_path / "sweep")
    paired = api_predictions(tmp_path / "api-model.jsonl", ids=reversed(range(N)))
    other = write_jsonl(
        tmp_path / "elsewhere.jsonl", [{"prediction": "x", "reference": "y", "id": "zz"}]
    )
    assert main(["score", str(paired), "--into", str(store.root)]) == 0
    assert main(["score", str(other), "--into", str(store.root), "--name", "other-data"]) == 0
    out = capsys.readouterr().out
    assert "paired by id with the sweep's 60 examples" in out and "not paired" in out
    folder = store.root / "external" / "api-model"
    result = json.loads((folder / "result.json").read_text())
    assert result["kind"] == "external" and result["examples"] == N
    assert len((folder / "predictions.jsonl").read_text().splitlines()) == N

    tables = build_tables(store)
    row = next(r for r in tables.perspective if r.name == "api-model")
    assert row.vs_baseline is not None and row.vs_baseline.n_examples == N
    stored = [json.loads(x) for x in (folder / "predictions.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r["rougeL"] for r in stored}
    base = {r["id"]: r["rougeL"] for r in store.predictions("run-base")}
    assert row.vs_baseline.delta == pytest.approx(np.mean([by_id[k] - base[k] for k in base]))

    text = (store.report_dir / "report.md").read_text()  # `score --into` rebuilt the report
    rows = table_rows(section(text, "## Perspective"))
    assert rows["api-model"][0] == "external predictions"
    assert rows["api-model"][6] in ("significant gain", "significant loss", "within noise")
    assert rows["api-model"][7] == "paired by id on the sweep's 60 examples"
    assert rows["other-data"][5:7] == ["—", "—"]
    assert "not paired" in rows["other-data"][7]


def test_external_rows_pair_by_input_text_and_use_the_sweeps_examples_only(tmp_path):
    store = make_store(tmp_path / "sweep")
    inputs = [r["input"] for r in store.predictions("run-base")]
    rows = [
        {"prediction": "Ann and Bob meet.", "reference": REFERENCES[i], "input": inputs[i]}
        for i in range(N)
    ] + [{"prediction": "extra", "reference": "more", "input": "not in the sweep"}]
    path = write_jsonl(tmp_path / "by-input.jsonl", rows)
    assert main(["score", str(path), "--into", str(store.root)]) == 0
    row = next(r for r in build_tables(store).perspective if r.name == "by-input")
    assert row.note == "paired by input on the sweep's 60 examples (of 61 in the file)"
    assert row.vs_baseline.n_examples == N
    assert BASE.shape == (N,)


def test_baseline_option_compares_files_like_an_independent_paired_bootstrap(tmp_path, capsys):
    dialogues = generate_dialogues(150, 3)
    folder = tmp_path / "sweep-preds"
    folder.mkdir()
    for name, pick in (("lead", first_utterances), ("longest", longest_utterances)):
        rows = [
            {"id": d["id"], "prediction": pick(d["dialogue"]), "reference": d["summary"]}
            for d in dialogues
        ]
        write_jsonl(folder / f"{name}.jsonl", rows[::-1] if name == "longest" else rows)
    assert main(["score", str(folder), "--baseline", "lead"]) == 0
    line = next(
        x for x in capsys.readouterr().out.splitlines() if "longest" in x and "ROUGE-L " in x
    )
    cells = [c.strip() for c in line.strip("│ ").split("│")]
    low, high = (float(x) for x in cells[3].strip("[]").split(","))

    lead = score_file(folder / "lead.jsonl")
    longest = {r["id"]: r["rougeL"] for r in score_file(folder / "longest.jsonl").rows}
    diffs = np.array([longest[r["id"]] - r["rougeL"] for r in lead.rows])
    rng = np.random.default_rng(11)
    means = np.array([diffs[rng.integers(0, len(diffs), len(diffs))].mean() for _ in range(4000)])
    expected_low, expected_high = np.quantile(means, [0.025, 0.975])
    assert float(cells[2]) == pytest.approx(diffs.mean(), abs=0.006)
    width = expected_high - expected_low
    assert low == pytest.approx(expected_low, abs=0.05 * width)
    assert high == pytest.approx(expected_high, abs=0.05 * width)
    verdict = "significant gain" if low > 0 else "significant loss" if high < 0 else "within noise"
    assert cells[5] == verdict
    # The smallest difference 150 paired examples detect: (1.960 + 0.842) sd / sqrt(n).
    mde = (1.959964 + 0.841621) * diffs.std(ddof=1) / np.sqrt(len(diffs))
    assert cells[6].startswith(f"±{mde:.2f}")
    assert main(["score", str(folder), "--baseline", "nope"]) == 2
    assert "--baseline: 'nope'" in capsys.readouterr().err


def test_metrics_option_scores_with_the_named_metrics(tmp_path, capsys):
    import sacrebleu

    path = api_predictions(tmp_path / "gpt.jsonl")
    assert main(["score", str(path), "--metrics", "chrf,exact_match"]) == 0
    out = capsys.readouterr().out
    predictions = [f"Ann meets Bob at {i}." for i in range(N)]
    corpus = sacrebleu.corpus_chrf(predictions, [REFERENCES]).score
    assert f"{corpus:.2f} [" in out and "exact match" in out and "ROUGE-L" not in out
    assert main(["score", str(path), "--metrics", "rouge,chrF"]) == 2
    err = capsys.readouterr().err
    assert "lorasweep: error: --metrics: unknown metric 'chrF'" in err
