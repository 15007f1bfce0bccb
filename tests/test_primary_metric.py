"""The primary key drives the decisions: on a hand-made store whose exact match and ROUGE-L
disagree, verdicts, recommendations, the best configuration and the Pareto front follow the
configured primary, while the ROUGE numbers stay exactly those of a ROUGE-only report."""

from __future__ import annotations

import json

import pytest
import sacrebleu
import yaml

from lorasweep.report.markdown import write_report
from lorasweep.report.recommend import SIGNIFICANT
from lorasweep.report.tables import build_tables
from tests.test_report import N, make_store, section, table_rows

# Per-example exact match (0 or 100) by run: rank=4 answers 80% right, the baseline 20%,
# rank=16 10%; ROUGE-L says the opposite (rank=16 best, see test_report.make_store).
CORRECT = {"run-r4": 48, "run-r16": 6}


def with_exact_match(root, primary: str):
    store = make_store(root)
    for folder in (root / "runs").iterdir():
        path = folder / "predictions.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        correct = CORRECT.get(folder.name, 12)
        for i, row in enumerate(rows):
            row["exact_match"] = 100.0 if i < correct else 0.0
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sweep = yaml.safe_load((root / "sweep.yaml").read_text())
    sweep["evaluation"].update(metrics=["rouge", "exact_match"], primary=primary)
    (root / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    return store


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    em = with_exact_match(tmp_path_factory.mktemp("em"), "exact_match")
    rouge = with_exact_match(tmp_path_factory.mktemp("rouge"), "rougeL")
    return em, rouge


def test_the_recommendation_and_the_best_follow_the_primary(stores):
    em, rouge = (build_tables(store) for store in stores)
    by_name = {t.name: t.recommendation for t in em.experiments}
    assert (by_name["rank"].choice, by_name["rank"].reason) == ("4", SIGNIFICANT)
    assert by_name["rank"].metric == "exact match"
    assert {t.name: t.recommendation for t in rouge.experiments}["rank"].choice == "16"
    assert em.best.label == "rank=4" and rouge.best.label == "rank=16"
    assert em.tradeoffs[0].quality_key == "exact_match"
    rank = {r.label: r for r in em.experiments[0].rows}
    assert rank["4"].delta.verdict == "gain" and rank["4"].delta.delta == pytest.approx(60.0)
    assert rank["4"].metrics["exact_match"] == pytest.approx(80.0)


def test_rouge_numbers_do_not_depend_on_the_other_metrics_or_the_primary(stores, tmp_path):
    em = build_tables(stores[0])
    only_rouge = build_tables(make_store(tmp_path))  # the same store, scored by ROUGE alone
    for with_more, alone in zip(em.experiments, only_rouge.experiments, strict=True):
        for a, b in zip(with_more.rows, alone.rows, strict=True):
            assert {k: a.metrics[k] for k in b.metrics} == b.metrics
            assert {k: a.vs_baseline[k] for k in b.vs_baseline} == b.vs_baseline
            assert b.interval is None or a.intervals["rougeL"] == b.interval


def test_the_report_names_the_primary_and_shows_every_key_with_a_verdict(stores):
    text = write_report(stores[0]).read_text()
    assert "Deltas, verdicts and recommendations are about exact match" in text
    assert "Highest exact match of any configuration: **rank=4**" in text
    rank = section(text, "## Experiment: rank")
    assert "| Δ exact match vs baseline [Holm CI] | uncorrected [95% CI] |" in rank
    every = rank.split("Every metric")[1].split("Cost (mean")[0]
    lines = [x for x in every.splitlines() if x.startswith("| 4 |")]
    keys = [x.split("|")[2].strip() for x in lines]
    assert keys == ["ROUGE-1", "ROUGE-2", "ROUGE-L", "ROUGE-Lsum", "exact match"]
    exact = lines[-1].split("|")
    assert exact[3].strip().startswith("80.00 [") and exact[6].strip() == "significant gain"
    cells = table_rows(rank)["4"]  # R-1 | R-2 | R-L | exact match | Δ exact match | ...
    assert cells[3] == "**80.00**" and cells[4].startswith("+60.00 [")
    assert "Recommended: **4**. Its exact match (80.00) is significantly higher" in rank


def test_a_metric_added_later_scores_the_stored_predictions(tmp_path):
    store = make_store(tmp_path)
    runs = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    before = {p: p.read_bytes() for p in runs}
    sweep = yaml.safe_load((tmp_path / "sweep.yaml").read_text())
    sweep["evaluation"]["metrics"] = ["rouge", "chrf"]
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    rank = {r.label: r for r in build_tables(store).experiments[0].rows}
    rows = store.predictions("run-r4")
    expected = sacrebleu.corpus_chrf(
        [r["prediction"] for r in rows], [[r["reference"] for r in rows]]
    )
    assert len(rows) == N and rank["4"].metrics["chrf"] == pytest.approx(expected.score)
    assert "chrf" in rank["4"].intervals and "chrf" in rank["4"].vs_baseline
    assert {p: p.read_bytes() for p in runs} == before  # no run file was touched
    assert not (tmp_path / "scores").exists()  # chrF is cheap: scored again, not kept


def test_a_failing_custom_metric_is_named_in_the_report_and_the_rest_stands(tmp_path):
    store = make_store(tmp_path / "store")
    metric = tmp_path / "fragile.py"
    metric.write_text(
        "def score(prediction, references):\n"
        "    if '7 pm' in references[0]:\n"
        "        raise KeyError('no label in ' + references[0])\n"
        "    return {'hit': 1.0}\n"
    )
    sweep = yaml.safe_load((store.root / "sweep.yaml").read_text())
    sweep["evaluation"]["metrics"] = ["rouge", f"{metric}:score"]
    (store.root / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    text = write_report(store).read_text()
    assert (
        f"⚠ Metric `{metric}:score` is left out where it failed: {metric}:score raised on" in text
    )
    assert "KeyError: 'no label in Ann and Bob meet at 7 pm at the cafe.'" in text
    alone = build_tables(make_store(tmp_path / "alone"))
    rank = build_tables(store).experiments[0].rows
    assert [r.metrics for r in rank] == [r.metrics for r in alone.experiments[0].rows]
