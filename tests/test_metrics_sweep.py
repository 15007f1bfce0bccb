"""End to end with several metrics: a real small sweep scored by ROUGE, chrF and exact match
with chrF as the primary key, against the same sweep scored by ROUGE alone; then a metric is
added and the report rebuilt without training or generating anything."""

from __future__ import annotations

import json

import pytest
import sacrebleu

from lorasweep.cli.main import main
from lorasweep.export import run_table
from lorasweep.report.tables import build_tables
from lorasweep.store.store import RunStore
from tests.conftest import sweep_dict, write_yaml

KEYS = ["rouge1", "rouge2", "rougeL", "rougeLsum", "chrf", "exact_match"]


def config(micro_model, dialogue_dir, **evaluation) -> dict:
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["experiments"] = raw["experiments"][:1]  # rank: 2 and 4 (the baseline)
    raw["evaluation"].update(evaluation)
    return raw


@pytest.fixture(scope="module")
def sweeps(micro_model, dialogue_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics-e2e")
    many = config(micro_model, dialogue_dir, metrics=["rouge", "chrf", "exact_match"],
                  primary="chrf")  # fmt: skip
    for name, raw in (("many", many), ("rouge", config(micro_model, dialogue_dir))):
        path = write_yaml(root / f"{name}.yaml", raw)
        assert main(["run", str(path), "--out", str(root / name)]) == 0
    return root


def files(folder):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def test_every_key_has_intervals_and_verdicts(sweeps):
    tables = build_tables(RunStore(sweeps / "many"))
    rows = tables.experiments[0].rows
    assert len(rows) == 2
    for row in rows:
        assert list(row.intervals) == KEYS
        assert row.is_baseline or list(row.vs_baseline) == KEYS
    report = (sweeps / "many" / "report" / "report.md").read_text()
    every = report.split("Every metric")[1].split("Cost (mean")[0]
    other = next(r for r in rows if not r.is_baseline)
    lines = [x for x in every.splitlines() if x.startswith(f"| {other.label} |")]
    assert len(lines) == len(KEYS)
    verdicts = ("significant gain", "significant loss", "within noise")
    assert all(line.split("|")[6].strip() in verdicts for line in lines)


def test_stored_scores_are_sacrebleus_and_rouge_is_unchanged(sweeps):
    many, rouge = RunStore(sweeps / "many"), RunStore(sweeps / "rouge")
    assert [u.run_id for u in many.plan().units()] == [u.run_id for u in rouge.plan().units()]
    for unit in many.plan().units():
        rows, result = many.predictions(unit.run_id), many.result(unit.run_id)
        for row in rows:
            assert row["chrf"] == pytest.approx(
                sacrebleu.sentence_chrf(row["prediction"], [row["reference"]]).score
            )
        corpus = sacrebleu.corpus_chrf(
            [r["prediction"] for r in rows], [[r["reference"] for r in rows]]
        )
        assert result.metrics["chrf"] == pytest.approx(corpus.score)
        alone = rouge.result(unit.run_id).metrics
        assert {k: result.metrics[k] for k in alone} == alone  # the same numbers, bit for bit
        assert [{k: r[k] for k in alone} for r in rows] == [
            {k: r[k] for k in alone} for r in rouge.predictions(unit.run_id)
        ]
    with_more, alone = (build_tables(s).experiments[0].rows for s in (many, rouge))
    for a, b in zip(with_more, alone, strict=True):
        assert {k: a.metrics[k] for k in b.metrics} == b.metrics
        assert {k: a.vs_baseline[k] for k in b.vs_baseline} == b.vs_baseline


def test_the_recommendation_follows_chrf(sweeps):
    tables = build_tables(RunStore(sweeps / "many"))
    table = tables.experiments[0]
    recommendation = table.recommendation
    assert recommendation.metric == "chrF"
    chrf = {r.label: r.metrics["chrf"] for r in table.rows}
    assert {c.label: c.score for c in recommendation.candidates} == chrf
    assert recommendation.best == max(chrf, key=chrf.get)
    assert tables.tradeoffs[0].quality_key == "chrf"
    report = (sweeps / "many" / "report" / "report.md").read_text()
    assert "Δ chrF vs baseline" in report and "Highest chrF of any configuration" in report


def test_a_metric_added_later_rebuilds_the_report_without_training(sweeps, capsys):
    folder = sweeps / "many"
    raw = json.loads(json.dumps(config_of(folder)))
    raw["evaluation"]["metrics"] = ["rouge", "chrf", "exact_match", "bleu"]
    path = write_yaml(sweeps / "more.yaml", raw)
    kept = {**files(folder / "runs"), **files(folder / "adapters")}
    assert main(["report", str(folder), "--config", str(path)]) == 0
    assert {**files(folder / "runs"), **files(folder / "adapters")} == kept
    report = (folder / "report" / "report.md").read_text()
    assert "| BLEU |" in report.split("## Experiment: rank")[1].split("\n\n")[1]
    run = RunStore(folder).plan().baseline
    rows = RunStore(folder).predictions(run)
    corpus = sacrebleu.corpus_bleu(
        [r["prediction"] for r in rows], [[r["reference"] for r in rows]]
    )
    exported = next(r for r in run_table(RunStore(folder)) if r["run_id"] == run)
    assert exported["bleu"] == pytest.approx(corpus.score)
    # The run command with that config trains and generates nothing either.
    assert main(["run", str(path), "--out", str(folder)]) == 0
    assert "0 run(s) done, 3 skipped" in capsys.readouterr().out
    assert {**files(folder / "runs"), **files(folder / "adapters")} == kept


def test_report_config_refuses_a_config_of_other_runs(sweeps, capsys):
    raw = config_of(sweeps / "many")
    raw["baseline"]["training"]["max_steps"] = 7
    path = write_yaml(sweeps / "other.yaml", raw)
    assert main(["report", str(sweeps / "many"), "--config", str(path)]) == 2
    assert "--config: " in capsys.readouterr().err


def config_of(folder) -> dict:
    import yaml

    return yaml.safe_load((folder / "sweep.yaml").read_text())
