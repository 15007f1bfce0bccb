"""The report on a hand-made run store: verdicts, intervals and recommendation text read against
the numbers beside them. The store is written in its real on-disk format (result.json,
predictions.jsonl, plan.json, sweep.yaml), so no model is trained here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from lorasweep.report.markdown import write_report
from lorasweep.report.tables import build_tables
from lorasweep.stats.bootstrap import paired_bootstrap
from lorasweep.store.store import RunStore

N = 60  # evaluation examples
BASE = np.random.default_rng(7).uniform(10, 60, N)  # the baseline's per-example ROUGE-L
WIGGLE = np.tile([3.0, -3.0], N // 2)  # symmetric per-example noise: mean 0, sd 3


def dialogue(i: int) -> str:
    return (
        f"Ann: Hi Bob, are we still meeting at {i} pm today?\n"
        "Bob: Yes.\n"
        f"Ann: Great, I will bring the {i} photos from the trip.\n"
        "Bob: Perfect.\n"
        "Ann: See you at the cafe near the station then, the one with the green door."
    )


def predictions(
    rougeL: np.ndarray, *, tokens: int = 8, text: str = "Ann and Bob meet at the cafe."
) -> list:
    rows = []
    for i, score in enumerate(rougeL):
        score = float(np.clip(score, 0, 100))
        rows.append(
            {
                "id": f"ex{i}",
                "input": dialogue(i),
                "reference": f"Ann and Bob meet at {i} pm at the cafe.",
                "prediction": text,
                "generated_tokens": tokens,
                "rouge1": min(100.0, score + 10),
                "rouge2": max(0.0, score - 10),
                "rougeL": score,
                "rougeLsum": score,
            }
        )
    return rows


def write_run(
    root: Path,
    run_id: str,
    labels: list[str],
    rows: list[dict],
    params: int = 1000,
    train_s: float = 10.0,
    kind: str = "lora",
    status: str = "done",
) -> None:
    folder = root / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    keys = [k for k in ("rouge1", "rouge2", "rougeL", "rougeLsum") if all(k in r for r in rows)]
    result = {
        "run_id": run_id,
        "kind": kind,
        "status": status,
        "labels": labels,
        "metrics": {k: float(np.mean([r[k] for r in rows])) for k in keys if rows},
        "timings": {"setup_s": 1.0, "train_s": train_s, "eval_s": 2.0, "total_s": train_s + 3},
        "efficiency": {"trainable_params": params} if kind == "lora" else {},
        "config": {
            "lora": {"r": 8, "alpha": 16.0, "dropout": 0.05, "target_modules": ["q_proj"]},
            "training": {
                "learning_rate": 2e-4,
                "max_steps": 10,
                "batch_size": 4,
                "gradient_accumulation_steps": 1,
            },
            "generation": {"max_new_tokens": 16, "batch_size": 8},
        },
    }
    if status != "done":
        result = {**result, "error": "RuntimeError: boom", "metrics": {}}
    (folder / "result.json").write_text(json.dumps(result))


def make_store(root: Path, reported: list | None = None) -> RunStore:
    """Three experiments whose verdicts are known by construction (see each comment)."""
    runs = {
        # rank: 16 is far above both others -> recommended for being significantly best.
        "run-r4": (["rank=4"], BASE + WIGGLE, 500, 9.0),
        "run-base": (["baseline", "rank=8", "lr=2e-4", "targets=qv"], BASE, 1000, 9.0),
        "run-r16": (["rank=16"], BASE + 6 + WIGGLE, 2000, 11.0),
        # lr: 1e-4 is best but within noise of the baseline (equal params, slower); 5e-4 is a
        # significant loss -> the baseline's value is recommended (equal costs).
        "run-lr1": (["lr=1e-4"], BASE + 0.3 + WIGGLE, 1000, 12.0),
        "run-lr5": (["lr=5e-4"], BASE - 8 + WIGGLE, 1000, 9.5),
        # targets: attention within noise of qv (the baseline) with more params -> qv.
        "run-att": (["targets=attention"], BASE + 0.5 + WIGGLE, 4000, 14.0),
    }
    for run_id, (labels, scores, params, seconds) in runs.items():
        write_run(root, run_id, labels, predictions(scores), params, seconds)
    write_run(root, "base-0", ["zero-shot"], predictions(BASE - 20, tokens=16), kind="base")

    def row(label: str, run_id: str) -> dict:
        return {"label": label, "run_id": run_id, "run_ids": [run_id],
                "is_baseline": run_id == "run-base"}  # fmt: skip

    plan = {
        "format": 2,
        "name": "fake",
        "baseline": "run-base",
        "baseline_run_ids": ["run-base"],
        "base_eval": "base-0",
        "runs": [{"run_id": r, "labels": v[0]} for r, v in runs.items()],
        "experiments": [
            {"name": "rank", "factor": "lora.r",
             "rows": [row("4", "run-r4"), row("8", "run-base"), row("16", "run-r16")]},
            {"name": "lr", "factor": "training.learning_rate",
             "rows": [row("1e-4", "run-lr1"), row("2e-4", "run-base"), row("5e-4", "run-lr5")]},
            {"name": "targets", "factor": "lora.target_modules",
             "rows": [row("qv", "run-base"), row("attention", "run-att")]},
        ],
    }  # fmt: skip
    (root / "plan.json").write_text(json.dumps(plan))
    sweep = {
        "name": "fake",
        "model": {"name": "tiny"},
        "data": {"source": "dialogues"},
        "evaluation": {"split": "validation", "size": N, "seed": 42, "use_stemmer": False},
        "reported": reported or [],
    }
    (root / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    return RunStore(root)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("fake-sweep")
    reported = [{"label": "Paper X LoRA", "rouge1": 50.1, "rouge2": 25.2, "rougeL": 41.3,
                 "rougeLsum": None, "source": "arXiv:0000.00000 Table 2"}]  # fmt: skip
    store = make_store(root, reported)
    return store, write_report(store).read_text()


def section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> dict[str, list[str]]:
    """First cell -> the other cells of every table row in ``text`` (the first occurrence)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows.setdefault(cells[0], cells[1:])
    return rows


INTERVAL = re.compile(r"^([+-]\d+\.\d+) \[([+-]\d+\.\d+), ([+-]\d+\.\d+)\]$")


def parse_delta(cell: str) -> tuple[float, float, float]:
    match = INTERVAL.match(cell)
    assert match, cell
    return tuple(float(x) for x in match.groups())


def expected_verdict(low: float, high: float) -> str:
    return "significant gain" if low > 0 else "significant loss" if high < 0 else "within noise"


def test_experiment_tables_show_paired_intervals_and_verdicts_that_agree(report):
    store, text = report
    verdicts = {}
    for name in ("rank", "lr", "targets"):
        rows = table_rows(section(text, f"## Experiment: {name}").split("### Recommendation")[0])
        for label, cells in rows.items():
            if label == "value" or "(baseline)" in label:
                continue
            delta, low, high = parse_delta(cells[3])  # at the Holm step's level
            same, low95, high95 = parse_delta(cells[4])  # uncorrected, 95%
            assert low <= low95 <= delta <= high95 <= high and same == delta
            assert cells[6] == expected_verdict(low, high)
            verdicts[(name, label)] = cells[6]
            assert 0 <= float(cells[5]) <= 1  # P(Δ≤0)
            assert cells[7].startswith("±")  # the smallest detectable difference
    assert verdicts == {
        ("rank", "4"): "within noise",
        ("rank", "16"): "significant gain",
        ("lr", "1e-4"): "within noise",
        ("lr", "5e-4"): "significant loss",
        ("targets", "attention"): "within noise",
    }


def test_the_table_delta_is_an_independent_paired_bootstrap(report):
    store, text = report
    rows = table_rows(section(text, "## Experiment: rank").split("### Recommendation")[0])
    base = [r["rougeL"] for r in store.predictions("run-base")]
    other = [r["rougeL"] for r in store.predictions("run-r16")]
    # An independent loop implementation with another seed: same delta, interval within MC error.
    rng = np.random.default_rng(123)
    diffs = np.array(other) - np.array(base)
    means = [diffs[rng.integers(0, N, N)].mean() for _ in range(4000)]
    low, high = np.quantile(means, [0.025, 0.975])
    delta, table_low, table_high = parse_delta(rows["16"][4])
    assert delta == pytest.approx(diffs.mean(), abs=0.006)
    assert table_low == pytest.approx(low, abs=0.15)
    assert table_high == pytest.approx(high, abs=0.15)
    assert paired_bootstrap(base, other).delta == pytest.approx(diffs.mean())


def test_recommendations_follow_from_the_tables_beside_them(report):
    _, text = report
    rank = section(text, "## Experiment: rank").split("### Recommendation")[1]
    assert "Recommended: **16**." in rank
    assert "significantly higher than that of every other value" in rank
    vs_best = table_rows(rank)
    assert vs_best["4"][2] == vs_best["8"][2] == "significant loss"

    lr = section(text, "## Experiment: lr").split("### Recommendation")[1]
    vs_best = table_rows(lr)
    assert vs_best["1e-4"][1] == "— (best)"
    assert vs_best["2e-4"][2] == "within noise" and vs_best["5e-4"][2] == "significant loss"
    assert "2e-4 is within noise of the best ROUGE-L, 1e-4" in lr
    assert "5e-4 is significantly worse than the best." in lr
    # Equal trainable parameters and tokens: the baseline's value, never the faster clock
    # (1e-4 trained longer here; the rule does not look at it).
    assert "Recommended: **2e-4**, the baseline's value, within noise of the best" in lr

    targets = section(text, "## Experiment: targets").split("### Recommendation")[1]
    vs_best = table_rows(targets)
    assert vs_best["attention"][1] == "— (best)" and vs_best["qv"][2] == "within noise"
    assert (
        "Recommended: **qv**, the cheapest value within noise of the best (fewest trainable "
        in (targets)
    )
    assert int(vs_best["qv"][3].replace(",", "")) < int(vs_best["attention"][3].replace(",", ""))


def test_overall_recommendation_and_best_configuration(report):
    _, text = report
    overall = section(text, "\n## Recommendation\n")
    rows = table_rows(overall)
    assert rows["rank"][1:3] == ["16", "significantly best"]
    assert rows["lr"][1:3] == ["2e-4", "cheapest within noise of the best"]
    assert rows["targets"][1:3] == ["qv", "cheapest within noise of the best"]
    assert "Recommended configuration: the baseline with `lora.r` = 16." in overall
    assert "The value of `lora.r` is significantly better than every alternative" in overall
    assert "**rank=16** (`run-r16`)" in overall
    delta, low, high = parse_delta(rows["rank"][4])
    assert rows["rank"][5] == expected_verdict(low, high) == "significant gain"


def test_perspective_has_measured_extractive_external_and_reported_rows(report):
    _, text = report
    rows = table_rows(section(text, "## Perspective"))
    assert rows["base model, zero-shot (same prompt)"][0] == "measured"
    assert rows["base model, zero-shot (same prompt)"][6] == "significant loss"
    assert rows["LoRA baseline"][6] == "(the baseline)"
    assert rows["best configuration (rank=16)"][6] == "significant gain"
    for name in ("first 3 utterances", "3 longest utterances"):
        assert rows[name][0] == "extractive, no model"
        delta, low, high = parse_delta(rows[name][5])
        assert rows[name][6] == expected_verdict(low, high)
    reported = rows["Paper X LoRA"]
    assert reported[0] == "**reported**, not measured"
    assert reported[1:5] == ["50.10", "25.20", "41.30", "—"]
    assert reported[5:7] == ["—", "—"] and reported[7] == "arXiv:0000.00000 Table 2"


def test_extractive_rows_score_the_sweeps_examples(report):
    store, _ = report
    tables = build_tables(store)
    first = next(r for r in tables.perspective if r.name == "first 3 utterances")
    assert first.vs_baseline.n_examples == N
    assert 0 < first.metrics["rouge1"] < 100


def test_generation_health_flags_abnormal_runs(tmp_path):
    store = make_store(tmp_path)
    rows = predictions(BASE - 20, tokens=16, text="")  # empty and at the token cap: broken
    write_run(tmp_path, "base-0", ["zero-shot"], rows, kind="base")
    # max_new_tokens: auto in the config; the value used is recorded beside it.
    result = json.loads((tmp_path / "runs/base-0/result.json").read_text())
    result["config"]["generation"]["max_new_tokens"] = "auto"
    result["generation"] = {"max_new_tokens": 16}
    (tmp_path / "runs/base-0/result.json").write_text(json.dumps(result))
    health = table_rows(section(write_report(store).read_text(), "## Generation health"))
    flags = health["zero-shot (`base-0`)"][5]
    assert flags.startswith("⚠") and "100% empty outputs" in flags and "hit max_new_tokens" in flags
    assert health["baseline, rank=8, lr=2e-4, targets=qv (`run-base`)"][5] == "ok"


def test_seeds_give_mean_and_spread_and_a_hierarchical_interval(tmp_path):
    store = make_store(tmp_path)
    plan = json.loads((tmp_path / "plan.json").read_text())
    plan["seeds"] = [1, 2, 3]
    write_run(tmp_path, "run-base-s2", ["baseline"], [], status="failed")
    write_run(tmp_path, "run-base-s3", ["baseline"], predictions(BASE + 1))
    write_run(tmp_path, "run-r16-s2", ["rank=16"], predictions(BASE + 20))
    write_run(tmp_path, "run-r16-s3", ["rank=16"], predictions(BASE + 5))
    for experiment in plan["experiments"]:
        for row in experiment["rows"]:
            row["run_ids"] = [row["run_id"], f"{row['run_id']}-s2", f"{row['run_id']}-s3"]
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    tables = build_tables(store)
    rank = {r.label: r for r in tables.experiments[0].rows}
    assert rank["16"].done_ids == ("run-r16", "run-r16-s2", "run-r16-s3")
    assert rank["4"].done_ids == ("run-r4",)  # its other seeds never ran
    # Seed i pairs with seed i: seed 2 drops out (the baseline's failed), leaving +6 and +4.
    assert rank["16"].delta.n_seeds == 2
    assert rank["16"].delta.delta == pytest.approx(5.0)
    assert rank["4"].delta.n_seeds == 1
    assert rank["16"].spread["rougeL"] == pytest.approx(np.std([6, 20, 5], ddof=1), abs=0.05)
    assert rank["16"].metrics["rougeL"] == pytest.approx(BASE.mean() + 31 / 3, abs=0.05)
    text = write_report(store).read_text()
    assert "trained once per seed (1, 2, 3)" in text
    cells = table_rows(section(text, "## Experiment: rank"))["16"]
    assert re.match(r"^\*?\*?\d+\.\d\d ± \d+\.\d\d", cells[2])
    assert cells[3].endswith(" †") and "† Δ pairs seed i with the baseline's seed i" in text
    assert parse_delta(cells[3].removesuffix(" †"))[0] == pytest.approx(5.0, abs=0.006)


def test_old_records_without_rougelsum_and_failed_runs_still_report(tmp_path):
    store = make_store(tmp_path)
    rows = [{k: v for k, v in r.items() if k != "rougeLsum"} for r in predictions(BASE + 1)]
    write_run(tmp_path, "run-att", ["targets=attention"], rows, params=4000)
    write_run(tmp_path, "run-lr5", ["lr=5e-4"], [], status="failed")
    text = write_report(store).read_text()
    targets = table_rows(section(text, "## Experiment: targets").split("### Recommendation")[0])
    assert parse_delta(targets["attention"][3])[0] == pytest.approx(1.0, abs=0.006)
    assert table_rows(section(text, "## Experiment: lr"))["5e-4"][:3] == ["failed"] * 3


def test_confirmation_and_test_split_sections_when_planned(tmp_path):
    store = make_store(tmp_path)
    plan = json.loads((tmp_path / "plan.json").read_text())
    write_run(tmp_path, "run-combo", ["confirmation"], predictions(BASE + 6.2 - WIGGLE))
    for run_id, shift in (("test-base", 0.0), ("test-combo", 5.0), ("test-best", 5.0)):
        write_run(tmp_path, run_id, ["test"], predictions(BASE + shift + WIGGLE))
    plan["confirmation"] = {"run_ids": ["run-combo"], "label": "r=16"}
    plan["tests"] = [
        {"run_id": f"test-{key}", "role": role, "adapter_of": f"run-{key}"}
        for key, role in (("base", "baseline"), ("combo", "confirmation"), ("best", "best"))
    ]
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    text = write_report(store).read_text()
    confirmation = section(text, "## Confirmation run")
    assert "against the best single-factor configuration (rank=16" in confirmation
    assert ": within noise; the combination neither adds up nor hurts, measurably." in confirmation
    test = section(text, "## Held-out test split")
    rows = table_rows(test)
    assert rows["confirmation run"][5] == "significant gain"
    assert "On the test split, the confirmation run scores +5.00" in test


def test_a_tie_with_the_baseline_names_the_baseline(tmp_path):
    store = make_store(tmp_path)
    plan = json.loads((tmp_path / "plan.json").read_text())
    plan["experiments"] = plan["experiments"][2:]  # targets only
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    write_run(tmp_path, "run-att", ["targets=attention"], predictions(BASE), params=4000)
    overall = section(write_report(store).read_text(), "\n## Recommendation\n")
    assert (
        "**baseline** (`run-base`), 34.48 (tied with targets=attention): the baseline itself."
        in (overall)
    )
    assert "Every experiment recommends the baseline's value" in overall


def test_test_split_evaluates_every_seed_and_lists_each_configuration_once(tmp_path):
    """Two seeds; the baseline is also the best configuration: its row names both roles."""
    store = make_store(tmp_path)
    plan = json.loads((tmp_path / "plan.json").read_text())
    plan["seeds"] = [1, 2]
    plan["baseline_run_ids"] = ["run-base", "run-base-s2"]
    for experiment in plan["experiments"]:
        for row in experiment["rows"]:
            row["run_ids"] = [row["run_id"], f"{row['run_id']}-s2"]
    plan["confirmation"] = {"run_ids": ["run-combo", "run-combo-s2"], "label": "r=16"}
    tests = {  # test unit -> (the run whose adapter it evaluates, its shift over BASE)
        "test-b1": ("run-base", 0.0),
        "test-b2": ("run-base-s2", 2.0),
        "test-c1": ("run-combo", 4.0),
        "test-c2": ("run-combo-s2", 8.0),
    }
    for run_id, (_, shift) in tests.items():
        write_run(tmp_path, run_id, ["test"], predictions(BASE + shift + WIGGLE))
    roles = {"run-base": ["baseline", "best"], "run-base-s2": ["baseline", "best"]}
    plan["tests"] = [
        {"run_id": t, "roles": roles.get(of, ["confirmation"]), "adapter_of": of}
        for t, (of, _) in tests.items()
    ]
    (tmp_path / "plan.json").write_text(json.dumps(plan))

    rows = {row.name: row for row in build_tables(store).test}
    assert list(rows) == ["LoRA baseline, best single-factor configuration", "confirmation run"]
    baseline, confirmation = rows.values()
    assert baseline.is_baseline and baseline.vs_baseline is None
    assert baseline.metrics["rougeL"] == pytest.approx(BASE.mean() + 1.0, abs=0.01)
    assert confirmation.metrics["rougeL"] == pytest.approx(BASE.mean() + 6.0, abs=0.01)
    assert [seed for seed, _ in confirmation.per_seed] == [1, 2]
    assert [v for _, v in confirmation.per_seed] == pytest.approx(
        [BASE.mean() + 4, BASE.mean() + 8], abs=0.01
    )
    # Seed i pairs with the baseline's seed i: +4 and +6, so +5 over both seeds.
    assert confirmation.vs_baseline.n_seeds == 2
    assert confirmation.vs_baseline.delta == pytest.approx(5.0, abs=0.01)

    text = section(write_report(store).read_text(), "## Held-out test split")
    table = table_rows(text)
    assert set(table) == {"system", *rows}  # each configuration once
    cells = table["confirmation run"]
    per_seed = f"1: {BASE.mean() + 4:.2f}, 2: {BASE.mean() + 8:.2f}"
    assert cells[2] == f"{BASE.mean() + 6:.2f}"  # ROUGE-L, the mean over seeds
    assert cells[4] == per_seed  # after ROUGE-1, -2, -L, -Lsum
    assert parse_delta(cells[5])[0] == pytest.approx(5.0, abs=0.006)
    assert table["LoRA baseline, best single-factor configuration"][5:7] == ["—", "(the baseline)"]
    assert "scores are means over the 2 seeds" in text
