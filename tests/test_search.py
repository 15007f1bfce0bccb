"""The search: config errors, Optuna ask-and-tell replayed from the store, and its report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

optuna = pytest.importorskip("optuna", reason="the search extra: pip install 'lorasweep[search]'")

from optuna.distributions import (  # noqa: E402
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from lorasweep.cli.main import main  # noqa: E402
from lorasweep.config.load import validate_sweep  # noqa: E402
from lorasweep.errors import ConfigError, UserError  # noqa: E402
from lorasweep.report.markdown import write_report  # noqa: E402
from lorasweep.report.search import build_search, sentences  # noqa: E402
from lorasweep.report.tables import build_tables  # noqa: E402
from lorasweep.search.space import parameters  # noqa: E402
from lorasweep.search.study import import_optuna  # noqa: E402
from lorasweep.store.store import RunStore  # noqa: E402
from tests.conftest import sweep_dict, write_yaml  # noqa: E402
from tests.test_report import BASE, WIGGLE, predictions, section, table_rows, write_run  # noqa: E402

MINIMAL = {"model": {"name": "m"}, "data": {"source": "d"},
           "baseline": {"lora": {"r": 4}, "training": {"max_steps": 3}}}  # fmt: skip


def search_config(micro_model, dialogue_dir, root: Path, name: str = "search", **search) -> Path:
    """The micro sweep without experiments: the baseline and a 4-trial TPE search, 2 at a
    time, then the best trial on the test split."""
    raw = sweep_dict(micro_model, dialogue_dir)
    raw.pop("experiments")
    raw["test"] = {"split": "test", "size": 8, "seed": 1}
    raw["search"] = {
        "sampler": "tpe", "trials": 4, "seed": 3, "batch": 2,
        "space": {"lora.r": [2, 4, 8],
                  "training.learning_rate": {"low": 1.0e-3, "high": 2.0e-2, "log": True}},
        **search,
    }  # fmt: skip
    return write_yaml(root / f"{name}.yaml", raw)


def trials(out: Path) -> list[dict]:
    return json.loads((out / "plan.json").read_text())["search"]["trials"]


def results(out: Path) -> dict[str, tuple[float, str]]:
    """Every result record's modification time and contents, by run id."""
    return {
        p.parent.name: (p.stat().st_mtime_ns, p.read_text()) for p in out.glob("runs/*/result.json")
    }


# Config errors: one line naming the field, before anything is written.


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ({"space": {"lora.r": [4, 8]}}, "search.trials: required for sampler tpe"),
        ({"trials": 3, "space": {"lora.r": [0, 8]}},
         "search.space.lora.r[0]: must be greater than 0 (got 0)"),
        ({"trials": 3, "space": {"lora.rank": [4]}}, "search.space.lora.rank: unknown factor"),
        ({"trials": 3, "space": {"training.learning_rate": {"low": 1.0e-4, "high": 2}}},
         "search.space.training.learning_rate.high: must be less than or equal to 1 (got 2)"),
        ({"trials": 3, "space": {"lora.dropout": {"low": 0.3, "high": 0.1}}},
         "search.space.lora.dropout: low must be below high (got low 0.3, high 0.1)"),
        ({"trials": 3, "space": {"lora.dropout": {"low": 0, "high": 0.5, "log": True}}},
         "search.space.lora.dropout: log: true needs low > 0 (got low 0)"),
        ({"sampler": "grid", "space": {"training.learning_rate": {"low": 1.0e-4, "high": 0.1}}},
         "search.space.training.learning_rate: a grid needs a list of values, not a range"),
        ({"sampler": "grid", "trials": 5, "space": {"lora.r": [4, 8]}},
         "search.trials: 5 trials, but the grid has 2 points"),
        ({"trials": 3, "space": {"lora.r": [4, 4]}}, "search.space.lora.r: 4 is listed twice"),
        ({"trials": 3, "space": {"lora.target_modules": ["qv", "attn"]}},
         "search.space.lora.target_modules[1]: unknown preset"),
        ({"trials": 3, "space": {}}, "search.space: name at least one field to search"),
        ({"trials": 3, "space": {"lora.r": [4]}, "sampler": "bayes"}, "search.sampler: must be"),
        ({"trials": 3, "space": {"training.gradient_checkpointing": [True]}},
         "search.space.training.gradient_checkpointing: training.gradient_checkpointing does "
         "not change a run's numbers"),
    ],
)  # fmt: skip
def test_config_errors_name_the_field(search, expected):
    with pytest.raises(ConfigError) as raised:
        validate_sweep({**MINIMAL, "search": search}, source="s.yaml")
    assert len(raised.value.problems) == 1, raised.value.problems
    assert raised.value.problems[0].startswith(f"s.yaml: {expected}"), raised.value.problems


def test_a_bad_search_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    config = write_yaml(
        tmp_path / "bad.yaml",
        {**MINIMAL, "search": {"trials": 2, "space": {"lora.dropout": [0.1, 1.5]}}},
    )
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"lorasweep: error: {config}: search.space.lora.dropout[1]: must be less than 1 (got 1.5)"
    ]
    assert not (tmp_path / "out").exists()


def test_without_optuna_the_search_is_refused_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(
        UserError, match=r"^search: needs the optuna package; pip install 'lorasweep\[search\]'$"
    ):
        import_optuna()


def test_the_space_becomes_optuna_distributions_and_back():
    sweep = validate_sweep({**MINIMAL, "search": {"trials": 3, "space": {
        "lora.r": {"low": 2, "high": 16, "step": 2},
        "training.learning_rate": {"low": 1.0e-5, "high": 1.0e-3, "log": True},
        "lora.alpha": {"low": 8, "high": 64},
        "lora.target_modules": ["qv", ["q_proj", "k_proj"]],
    }}})  # fmt: skip
    found = {p.name: p for p in parameters(sweep.search, sweep.baseline)}
    assert found["lora.r"].distribution == IntDistribution(2, 16, step=2)  # r is an int field
    assert found["training.learning_rate"].distribution == FloatDistribution(1e-5, 1e-3, log=True)
    assert found["lora.alpha"].distribution == FloatDistribution(8.0, 64.0)  # alpha: a float
    targets = found["lora.target_modules"]
    assert targets.distribution == CategoricalDistribution(["qv", "q_proj+k_proj"])
    assert targets.value("q_proj+k_proj") == ["q_proj", "k_proj"]  # a list comes back as one


# A real search on the micro model, killed and resumed.


def run_cli(config: Path, out: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LORASWEEP_KILL_AT", None)
    if kill_at:
        env["LORASWEEP_KILL_AT"] = kill_at
    command = [sys.executable, "-m", "lorasweep.cli.main", "run", str(config), "--out", str(out)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def uninterrupted(micro_model, dialogue_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    config = search_config(micro_model, dialogue_dir, root)
    assert main(["run", str(config), "--out", str(root / "out")]) == 0
    return config, root / "out"


def test_a_sigkilled_search_resumes_to_the_same_trials_and_a_rerun_trains_nothing(
    uninterrupted, tmp_path, capsys
):
    config, reference = uninterrupted
    expected = trials(reference)
    assert [t["number"] for t in expected] == [1, 2, 3, 4]
    assert len({json.dumps(t["params"]) for t in expected}) > 1, "TPE suggests different points"
    out = tmp_path / "out"
    killed = run_cli(config, out, kill_at="search-batch")  # right after the first batch is told
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert trials(out) == expected[:2]
    done = results(out)
    assert all(r in done for t in expected[:2] for r in t["run_ids"])
    assert run_cli(config, out).returncode == 0
    assert trials(out) == expected  # the same suggestions, in the same order
    for run_id, (mtime, _) in done.items():  # the trials done before the kill were not redone
        assert results(out)[run_id][0] == mtime
    scores = {r: json.loads(text)["metrics"] for r, (_, text) in results(reference).items()}
    assert {r: json.loads(text)["metrics"] for r, (_, text) in results(out).items()} == scores
    before = results(out)
    assert main(["run", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "0 run(s) done" in printed and "skipped (already in the store)" in printed
    assert results(out) == before  # a rerun trains and evaluates nothing
    assert trials(out) == expected


def test_the_report_ranks_the_trials_names_holm_and_checks_the_winner_on_test(uninterrupted):
    _, out = uninterrupted
    text = (out / "report" / "report.md").read_text()
    search = section(text, "## Search (tpe, seed 3): 4 of 4 trials finished")
    assert "Holm's step-down correction" in search
    ranked = [
        line.split(" | ")[0].strip("| ")
        for line in search.splitlines()
        if line.startswith("| ") and line[2].isdigit()
    ]
    assert ranked == ["1", "2", "3", "4"]
    # The micro model scores 0 everywhere: identical scores are no difference (p = 1).
    assert "No trial is significantly better than the baseline after Holm's correction" in search
    assert "### Test-split check of the best trial" in search
    assert "| test (held out) |" in search and "winner's curse" in search
    assert (out / "report" / "search-parameters.png").is_file()
    plan = json.loads((out / "plan.json").read_text())
    roles = {tuple(t["roles"]) for t in plan["tests"]}
    assert ("best trial",) in roles or any("best trial" in r for r in roles)


def test_a_grid_runs_every_point_once(micro_model, dialogue_dir, tmp_path):
    space = {"lora.r": [2, 4], "lora.dropout": [0.0, 0.1]}
    config = search_config(micro_model, dialogue_dir, tmp_path, sampler="grid", trials=None,
                           space=space, batch=None)  # fmt: skip
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 0
    found = trials(tmp_path / "out")
    points = sorted((t["params"]["lora.r"], t["params"]["lora.dropout"]) for t in found)
    assert points == [(2, 0.0), (2, 0.1), (4, 0.0), (4, 0.1)]
    # (4, 0.0) is the baseline's configuration: that trial shares the baseline's run.
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    same = next(t for t in found if t["params"] == {"lora.r": 4, "lora.dropout": 0.0})
    assert same["run_ids"] == plan["baseline_run_ids"]


# The report on a synthetic store whose trials' scores are known by construction.


def synthetic_search(root: Path) -> RunStore:
    """A baseline and 5 trials over r and the learning rate: trial 3 is far above the baseline,
    trial 1 a little, trial 5 repeats trial 1's configuration, trial 2 is a loss, trial 4 is
    near the baseline; on the test split trial 3 keeps only part of its gain."""
    runs = {
        "run-base": (["baseline"], BASE, 1000),
        "run-t1": (["trial 1", "trial 5"], BASE + 0.4 + WIGGLE, 1000),
        "run-t2": (["trial 2"], BASE - 6 + WIGGLE, 500),
        "run-t3": (["trial 3"], BASE + 7 + WIGGLE, 4000),
        "run-t4": (["trial 4"], BASE + 0.2 - WIGGLE, 2000),
    }
    for run_id, (labels, scores, params) in runs.items():
        write_run(root, run_id, labels, predictions(scores), params)
    write_run(root, "base-0", ["zero-shot"], predictions(BASE - 20), kind="base")
    write_run(root, "test-base", ["test"], predictions(BASE - 1))
    write_run(root, "test-t3", ["test"], predictions(BASE - 1 + 3 + WIGGLE))
    trial_params = [
        (1, {"lora.r": 8, "training.learning_rate": 3e-4}, "run-t1"),
        (2, {"lora.r": 4, "training.learning_rate": 2e-5}, "run-t2"),
        (3, {"lora.r": 32, "training.learning_rate": 8e-4}, "run-t3"),
        (4, {"lora.r": 16, "training.learning_rate": 1e-4}, "run-t4"),
        (5, {"lora.r": 8, "training.learning_rate": 3e-4}, "run-t1"),
    ]
    distributions = {
        "lora.r": distribution_to_json(CategoricalDistribution([4, 8, 16, 32])),
        "training.learning_rate": distribution_to_json(FloatDistribution(1e-5, 1e-3, log=True)),
    }
    plan = {
        "format": 2, "name": "fake", "baseline": "run-base", "baseline_run_ids": ["run-base"],
        "base_eval": "base-0", "runs": [{"run_id": r, "labels": v[0]} for r, v in runs.items()],
        "experiments": [],
        "tests": [{"run_id": "test-base", "roles": ["baseline"], "adapter_of": "run-base"},
                  {"run_id": "test-t3", "roles": ["best trial"], "adapter_of": "run-t3"}],
        "search": {"sampler": "tpe", "seed": 0, "target": 5, "distributions": distributions,
                   "trials": [{"number": n, "params": p, "run_ids": [r]} for n, p, r in trial_params]},
    }  # fmt: skip
    (root / "plan.json").write_text(json.dumps(plan))
    sweep = {"name": "fake", "model": {"name": "tiny"}, "data": {"source": "dialogues"},
             "evaluation": {"split": "validation", "size": len(BASE), "seed": 42}}  # fmt: skip
    (root / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    return RunStore(root)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    store = synthetic_search(tmp_path_factory.mktemp("synthetic-search"))
    return store, build_search(store, build_tables(store)), write_report(store).read_text()


def test_trials_are_ranked_with_holm_over_the_distinct_configurations(synthetic):
    _, table, _ = synthetic
    assert [t.number for t in table.trials] == [3, 1, 5, 4, 2]  # a tie keeps the asked order
    assert [t.rank for t in table.trials] == [1, 2, 3, 4, 5]
    assert table.trials[2].same_as == 1  # trial 5 repeated trial 1's configuration
    assert table.family_size == 4  # trials 1-4: trial 5 is the same comparison as trial 1
    best = table.best
    assert best.number == 3 and best.row.delta.verdict == "gain"
    assert best.row.delta.uncorrected.level == 0.95 and best.row.delta.level > 0.95
    by_number = {t.number: t for t in table.trials}
    assert by_number[2].row.delta.verdict == "loss"
    assert by_number[4].vs_best.verdict == "loss" and by_number[1].vs_best.verdict == "loss"
    assert by_number[5].row.delta == by_number[1].row.delta


def test_the_winner_is_checked_on_the_test_split_with_its_shrinking_gain(synthetic):
    _, table, text = synthetic
    check = table.test
    assert check.trial == 3
    assert check.validation == pytest.approx(float(np.mean(np.clip(BASE + 7 + WIGGLE, 0, 100))))
    assert check.test_delta.delta == pytest.approx(3.0, abs=0.05)
    assert check.validation_delta.delta == pytest.approx(7.0, abs=0.05)
    words = " ".join(sentences(table))
    assert (
        "its difference to the baseline shrank from +7.00 on validation to +3.00 on test" in words
    )
    assert "the winner's curse" in words
    search = section(text, "## Search (tpe, seed 0): 5 of 5 trials finished")
    rows = table_rows(search)
    assert rows["test (held out)"][1].startswith("+3.00")


def test_parameter_points_and_importance_are_data(synthetic):
    _, table, text = synthetic
    r_points = {p.trial: (p.value, p.score, p.is_best) for p in table.points["lora.r"]}
    assert r_points[3][0] == 32 and r_points[3][2] and not r_points[2][2]
    assert r_points[2][1] < r_points[4][1] < r_points[3][1]
    assert set(table.importance) == {"lora.r", "training.learning_rate"}
    assert sum(table.importance.values()) == pytest.approx(1.0)
    assert "| parameter | importance |" in text
    assert "By fANOVA over the 5 finished trials" in " ".join(sentences(table))


def test_the_recommendation_sentences_follow_the_numbers(synthetic):
    _, table, _ = synthetic
    words = " ".join(sentences(table))
    assert (
        "The best of the 5 finished trials is trial 3 (lora.r=32, training.learning_rate=8e-4): "
        "ROUGE-L" in words
    )
    assert "a significant gain after Holm's correction over 4 comparisons" in words
    assert "Every other finished trial is significantly worse than trial 3." in words


def test_too_few_trials_for_importance_says_how_many_are_needed(tmp_path):
    store = synthetic_search(tmp_path)
    plan = json.loads((tmp_path / "plan.json").read_text())
    plan["search"]["trials"] = plan["search"]["trials"][:3]
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    table = build_search(store, build_tables(store))
    assert table.importance is None
    assert table.importance_note.startswith(
        "Parameter importance needs at least 4 finished distinct trials"
    )


def test_a_failed_trial_is_recorded_the_search_goes_on_and_the_report_rescores(
    micro_model, dialogue_dir, tmp_path
):
    # max_length 8 leaves no target token after the prompt: that trial fails, the other runs.
    space = {"training.max_length": [192, 8]}
    config = search_config(micro_model, dialogue_dir, tmp_path, sampler="grid", trials=None,
                           space=space, batch=None)  # fmt: skip
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 1  # a failed run: exit status 1
    found = {t["params"]["training.max_length"]: t for t in trials(out)}
    assert sorted(found) == [8, 192]
    failed = json.loads((out / "runs" / found[8]["run_ids"][0] / "result.json").read_text())
    assert (
        failed["status"] == "failed"
        and "no training example keeps a target token" in failed["error"]
    )
    search = section(
        (out / "report" / "report.md").read_text(),
        "## Search (grid, seed 3): 1 of 2 trials finished",
    )
    assert "| failed |" in search
    # Another primary metric for the stored predictions: the search's trials are its runs.
    raw = yaml.safe_load(config.read_text())
    raw["evaluation"] = {**raw["evaluation"], "metrics": ["rouge", "chrf"], "primary": "chrf"}
    rescored = write_yaml(tmp_path / "chrf.yaml", raw)
    assert main(["report", str(out), "--config", str(rescored)]) == 0
    search = section((out / "report" / "report.md").read_text(), "## Search (grid, seed 3)")
    assert "| chrF [95% CI] |" in search


def test_a_search_alone_answers_with_its_best_trial_and_its_test_check(synthetic):
    _, table, text = synthetic
    answer = section(text, "## The answer")
    assert "keep the baseline" not in answer  # no experiments: the search decides
    assert answer.startswith(
        "\n\n- **Recommended, from the search:** The best of the 5 finished trials is trial 3"
    )
    assert "+7.00 [+6.10, +7.90] against the baseline, a significant gain" in answer
    assert "On the held-out test split trial 3 scores ROUGE-L 36.48" in answer
