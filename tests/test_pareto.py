"""The quality-against-cost data: Pareto fronts computed as data, and the report built on them."""

from __future__ import annotations

import json
import random

import pytest

from lorasweep.report.markdown import write_report
from lorasweep.report.pareto import COST_DIRECTIONS, dominates, pareto_front, tradeoff
from lorasweep.report.tables import build_tables
from tests.test_report import BASE, make_store, predictions, section, table_rows, write_run

UP_LEFT = {"rougeL": "higher", "trainable_params": "lower"}


def point(rouge: float, params: float) -> dict[str, float]:
    return {"rougeL": rouge, "trainable_params": params}


def test_front_keeps_what_no_other_point_beats_on_both():
    points = [
        point(30, 100),  # cheapest
        point(35, 200),  # better and dearer: on the front
        point(34, 300),  # worse and dearer than (35, 200): dominated
        point(35, 250),  # as good, dearer: dominated
        point(40, 800),  # best
        point(29, 100),  # as cheap, worse: dominated
    ]
    assert pareto_front(points, UP_LEFT) == [True, True, False, False, True, False]


def test_identical_points_are_all_kept_and_directions_are_honoured():
    points = [point(30, 100), point(30, 100), point(20, 50)]
    assert pareto_front(points, UP_LEFT) == [True, True, True]
    # Reversed directions (lower score, more parameters preferred) reverse the verdicts.
    reverse = {"rougeL": "lower", "trainable_params": "higher"}
    assert pareto_front([point(30, 100), point(20, 200), point(25, 150)], reverse) == [
        False,
        True,
        False,
    ]
    assert not dominates(point(30, 100), point(30, 100), UP_LEFT)
    with pytest.raises(ValueError, match="'rougeL' must be 'higher' or 'lower'"):
        pareto_front([point(1, 1)], {"rougeL": "up"})


@pytest.mark.parametrize("seed", range(5))
def test_front_on_random_points_is_the_set_of_undominated_points(seed):
    rng = random.Random(seed)
    points = [point(rng.randint(0, 8), rng.randint(0, 8)) for _ in range(30)]
    flags = pareto_front(points, UP_LEFT)
    front = [p for p, on in zip(points, flags, strict=True) if on]
    rest = [p for p, on in zip(points, flags, strict=True) if not on]
    assert front  # a finite set always has a front
    for p in rest:  # every point off the front is beaten by one on it (dominance is transitive)
        assert any(dominates(f, p, UP_LEFT) for f in front)
    for p in front:
        assert not any(dominates(q, p, UP_LEFT) for q in points)


def test_tradeoff_leaves_out_unknown_costs_and_lists_the_front_cheapest_first():
    configurations = [
        ("a", {"rougeL": 40.0, "train_s": 30.0}),
        ("b", {"rougeL": 30.0, "train_s": 10.0}),
        ("c", {"rougeL": 35.0, "train_s": None}),  # not recorded: not drawn, not compared
        ("d", {"rougeL": 20.0, "train_s": 20.0}),
    ]
    panel = tradeoff(configurations, "rougeL", "train_s")
    assert [p.label for p in panel.points] == ["a", "b", "d"]
    assert [p.label for p in panel.front] == ["b", "a"]
    assert COST_DIRECTIONS["train_s"] == "lower"


def test_sweep_tables_mark_the_front_per_cost(tmp_path):
    tables = build_tables(make_store(tmp_path))
    panels = {t.cost_key: t for t in tables.tradeoffs}
    assert set(panels) == {"trainable_params", "train_s"}
    # Every configuration once: the baseline under its own name, the others as experiment=value.
    labels = [p.label for p in panels["trainable_params"].points]
    assert labels == ["baseline", "rank=4", "rank=16", "lr=1e-4", "lr=5e-4", "targets=attention"]
    # rank=4 has the baseline's mean ROUGE-L with half its parameters; lr=1e-4 beats the
    # baseline by 0.3 at equal parameters; rank=16 is the best; the rest are dominated.
    assert [p.label for p in panels["trainable_params"].front] == ["rank=4", "lr=1e-4", "rank=16"]
    # In training time the baseline and rank=4 tie (9 s, same ROUGE-L): both stay on the front.
    assert [p.label for p in panels["train_s"].front] == ["baseline", "rank=4", "rank=16"]
    for panel in panels.values():
        flags = pareto_front(
            [{"q": p.quality, "c": p.cost} for p in panel.points], {"q": "higher", "c": "lower"}
        )
        assert flags == [p.on_front for p in panel.points]


def test_a_confirmation_of_an_existing_configuration_is_not_counted_twice(tmp_path):
    store = make_store(tmp_path)
    plan = json.loads((tmp_path / "plan.json").read_text())
    plan["confirmation"] = {"run_ids": ["run-r16"], "label": "rank=16"}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    labels = [p.label for p in build_tables(store).tradeoffs[0].points]
    assert labels.count("rank=16") == 1 and not any("confirmation" in x for x in labels)

    write_run(tmp_path, "run-combo", ["confirmation"], predictions(BASE + 7), params=2500)
    plan["confirmation"] = {"run_ids": ["run-combo"], "label": "rank=16 + lr=1e-4"}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    panel = build_tables(store).tradeoffs[0]
    combo = next(p for p in panel.points if p.label == "confirmation (rank=16 + lr=1e-4)")
    assert combo.on_front and combo.cost == 2500


def test_report_shows_efficiency_and_the_front_it_computed(tmp_path):
    store = make_store(tmp_path)
    result_path = tmp_path / "runs/run-r16/result.json"
    result = json.loads(result_path.read_text())
    result["efficiency"].update(adapter_bytes=3 * 1024**2, train_tokens_per_s=1234.4,
                                peak_memory_bytes=2 * 1024**3, eval_tokens_per_s=98.6)  # fmt: skip
    result_path.write_text(json.dumps(result))
    text = write_report(store).read_text()
    assert (tmp_path / "report" / "quality-vs-cost.png").is_file()

    cost = section(text, "## Experiment: rank").split("Cost (mean over finished seeds")[1]
    rows = table_rows(cost.split("### Recommendation")[0])
    assert rows["16"] == ["2,000", "3.0 MiB", "11.0", "1,234", "2.0 GiB", "2.0", "99"]
    assert rows["8 (baseline)"][:3] == ["1,000", "", "9.0"]  # not recorded: left empty

    quality = table_rows(section(text, "## Quality against cost"))
    tables = build_tables(store)
    for panel_index, panel in enumerate(tables.tradeoffs):
        for p in panel.points:
            assert quality[p.label][1 + panel_index].endswith("◆") == p.on_front
    assert quality["rank=16"][0] == f"{tables.tradeoffs[0].points[2].quality:.2f}"
    assert "Against trainable parameters, the front is rank=4 (34.48), lr=1e-4" in text

    runs = table_rows(section(text, "## Runs"))
    assert runs["run"][2] == "LoRA scaling"
    assert runs["run"][5:] == ["trainable params", "adapter", "train tokens/s",
                               "generated tokens/s", "peak memory"]  # fmt: skip
    assert runs["`run-r16`"][5:] == ["2,000", "3.0 MiB", "1,234", "99", "2.0 GiB"]
