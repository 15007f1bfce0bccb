"""Seeds, the confirmation run and the held-out test split, end to end on the micro model."""

from __future__ import annotations

import json

import pytest

from lorasweep.cli.main import main
from lorasweep.report.tables import build_tables
from lorasweep.store.store import RunStore
from tests.conftest import sweep_dict, write_yaml


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


def test_test_split_reevaluates_baseline_confirmation_and_best(sweep):
    out, plan = sweep
    assert {t["role"] for t in plan["tests"]} == {"baseline", "confirmation", "best"}
    for run_id in (t["run_id"] for t in plan["tests"]):
        record = result(out, run_id)
        assert record["kind"] == "test" and record["status"] == "done"
        rows = [
            json.loads(x)
            for x in (out / "runs" / run_id / "predictions.jsonl").read_text().splitlines()
        ]
        assert len(rows) == 10
        validation_ids = {
            json.loads(x)["id"]
            for x in (out / "runs" / plan["baseline"] / "predictions.jsonl")
            .read_text()
            .splitlines()
        }
        assert not {r["id"] for r in rows} & validation_ids  # held-out examples
    tested = {t["adapter_of"] for t in plan["tests"]}
    assert plan["baseline"] in tested


def test_rerun_adds_nothing(sweep, capsys):
    out, _ = sweep
    before = sorted(p.name for p in (out / "runs").iterdir())
    config = next(out.parent.glob("*.yaml"))
    assert main(["run", str(config), "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == before
    assert " 0 run(s) done" in capsys.readouterr().out
