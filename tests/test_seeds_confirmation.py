"""Seeds, the confirmation run and the held-out test split, end to end on the micro model."""

from __future__ import annotations

import json
from statistics import fmean

import pytest

from lorasweep.cli.main import main
from lorasweep.report.tables import build_tables
from lorasweep.store.store import RunStore
from tests.conftest import sweep_dict, write_yaml
from tests.test_report import section


@pytest.fixture(scope="module")
def sweep(micro_model, dialogue_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["seeds"] = [0, 1]
    raw["confirmation"] = True
    raw["experiments"] = [
        {"name": "rank", "factor": "lora.r", "values": [2, 4]},
        {"name": "lr", "factor": "training.learning_rate", "values": [5.0e-4, 5.0e-3]},
    ]
    raw["test"] = {"split": "test", "size": 10, "seed": 1}
    out = root / "out"
    assert main(["run", str(write_yaml(root / "s.yaml", raw)), "--out", str(out)]) == 0
    return out, json.loads((out / "plan.json").read_text())


def result(out, run_id):
    return json.loads((out / "runs" / run_id / "result.json").read_text())


def test_every_configuration_runs_once_per_seed(sweep):
    out, plan = sweep
    assert plan["seeds"] == [0, 1]
    for experiment in plan["experiments"]:
        for row in experiment["rows"]:
            seeds = [result(out, i)["config"]["training"]["seed"] for i in row["run_ids"]]
            assert seeds == [0, 1]
            configs = [result(out, i)["config"] for i in row["run_ids"]]
            for config in configs:
                config["training"].pop("seed")
            assert configs[0] == configs[1]  # the same configuration, only the seed differs


def test_confirmation_combines_the_recommended_values(sweep):
    out, plan = sweep
    tables = build_tables(RunStore(out))
    choices = {t.name: t.recommendation.choice for t in tables.experiments}
    assert plan["confirmation"]["label"] == f"rank={choices['rank']} + lr={choices['lr']}"
    configs = [result(out, i)["config"] for i in plan["confirmation"]["run_ids"]]
    assert [c["training"]["seed"] for c in configs] == [0, 1]
    assert all(c["lora"]["r"] == int(choices["rank"]) for c in configs)
    assert all(
        f"{c['training']['learning_rate']:g}" == f"{float(choices['lr']):g}" for c in configs
    )
    assert all(result(out, i)["status"] == "done" for i in plan["confirmation"]["run_ids"])
    assert "onfirmation" in (out / "report" / "report.md").read_text()


def test_test_split_reevaluates_every_seed_of_baseline_confirmation_and_best(sweep):
    out, plan = sweep
    tests = {t["adapter_of"]: t for t in plan["tests"]}
    assert len(tests) == len({t["run_id"] for t in plan["tests"]}) == len(plan["tests"])
    best = build_tables(RunStore(out)).best
    chosen = {
        "baseline": plan["baseline_run_ids"],
        "confirmation": plan["confirmation"]["run_ids"],
        "best": list(best.run_ids),
    }
    for role, run_ids in chosen.items():
        assert len(run_ids) == 2
        for run_id in run_ids:  # every seed's adapter, under every role it has
            assert role in tests[run_id]["roles"]
    assert set(tests) == {r for ids in chosen.values() for r in ids}
    validation_ids = {
        json.loads(x)["id"]
        for x in (out / "runs" / plan["baseline"] / "predictions.jsonl").read_text().splitlines()
    }
    for adapter_of, test in tests.items():
        record = result(out, test["run_id"])
        assert record["kind"] == "test" and record["status"] == "done"
        assert record["adapter_id"] == result(out, adapter_of)["adapter_id"]
        rows = [
            json.loads(x)
            for x in (out / "runs" / test["run_id"] / "predictions.jsonl").read_text().splitlines()
        ]
        assert len(rows) == 10
        assert not {r["id"] for r in rows} & validation_ids  # held-out examples


def test_each_test_evaluation_is_listed_once_with_all_its_roles(sweep, capsys):
    out, plan = sweep
    tables = build_tables(RunStore(out))
    configurations = {tuple(t["roles"]) for t in plan["tests"]}
    assert len(tables.test) == len(configurations)  # one row per configuration
    for row in tables.test:
        assert [seed for seed, _ in row.per_seed] == [0, 1]
        assert all(value is not None for _, value in row.per_seed)
        assert row.metrics["rougeL"] == pytest.approx(fmean(v for _, v in row.per_seed))
    text = section((out / "report" / "report.md").read_text(), "## Held-out test split")
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert "ROUGE-L per seed" in lines[0]
    names = [line.split(" | ")[0].removeprefix("| ") for line in lines[1:]]
    assert sorted(names) == sorted(row.name for row in tables.test)  # each row once

    assert main(["status", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    units = {
        plan["base_eval"],
        *(r["run_id"] for r in plan["runs"]),
        *(t["run_id"] for t in plan["tests"]),
    }
    listed = [line.split()[0] for line in lines[:-1]]
    assert sorted(listed) == sorted(units)  # each unit once
    assert lines[-1] == f"{len(units)} done"


def test_rerun_adds_nothing(sweep, capsys):
    out, _ = sweep
    before = sorted(p.name for p in (out / "runs").iterdir())
    config = next(out.parent.glob("*.yaml"))
    assert main(["run", str(config), "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == before
    assert " 0 run(s) done" in capsys.readouterr().out
