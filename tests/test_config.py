"""Config validation, error messages and the plan derived from a config."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorasweep.config.load import load_sweep, validate_sweep
from lorasweep.config.plan import build_plan, config_hash
from lorasweep.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs").glob("*.yaml"))


def minimal(**sections) -> dict:
    raw = {
        "model": {"name": "some/model"},
        "data": {"source": "some/data"},
        "baseline": {"training": {"learning_rate": 1e-4, "max_steps": 10}},
    }
    for key, value in sections.items():
        raw[key] = value
    return raw


def problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_sweep(raw)
    return caught.value.problems


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_config_is_valid(path):
    sweep = load_sweep(path)
    plan = build_plan(sweep)
    assert plan.runs[0].run_id == plan.baseline_id
    assert all(len(e.rows) >= 2 for e in plan.experiments)


def test_the_qlora_configs_are_the_published_setup():
    plan = build_plan(load_sweep(ROOT / "configs" / "samsum-llama-3.2-1b-qlora.yaml"))
    assert len(plan.runs) == 7
    model = plan.run(plan.baseline_id).resolved["model"]
    assert (model["quantization"], model["double_quant"], model["compute_dtype"]) == (
        "nf4", True, "bfloat16")  # fmt: skip
    variants = build_plan(load_sweep(ROOT / "configs" / "samsum-llama-3.2-1b-qlora-variants.yaml"))
    assert [e.factor for e in variants.experiments] == ["lora.use_dora", "lora.use_rslora"]
    assert [r.resolved["lora"].get("use_dora", False) for r in variants.runs] == [
        False,
        True,
        False,
    ]
    assert variants.runs[2].settings.lora.scaling == pytest.approx(16 / 8**0.5)
    same = plan.run(plan.baseline_id).resolved["training"]
    assert variants.run(variants.baseline_id).resolved["training"] == same


def test_reference_study_plan_has_seven_unique_runs():
    plan = build_plan(load_sweep(ROOT / "configs" / "samsum-llama-3.2-1b.yaml"))
    assert len(plan.runs) == 7
    baseline = plan.run(plan.baseline_id)
    assert baseline.resolved["lora"] == {
        "r": 8, "alpha": 16.0, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"],
    }  # fmt: skip
    # The baseline serves one row of each of the three experiments.
    assert sum(row.is_baseline for e in plan.experiments for row in e.rows) == 3
    rank = next(e for e in plan.experiments if e.name == "rank")
    alphas = [plan.run(row.run_id).resolved["lora"]["alpha"] for row in rank.rows]
    assert alphas == [8.0, 16.0, 32.0, 64.0]  # alpha: 2r follows the rank
    targets = next(e for e in plan.experiments if e.name == "target_modules")
    widest = plan.run(targets.rows[-1].run_id).resolved["lora"]["target_modules"]
    assert widest == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert plan.sweep.evaluation.size == 200 and plan.sweep.evaluation.seed == 42


def test_run_ids_depend_on_resolved_settings_only():
    fixed = minimal(
        baseline={
            "lora": {"r": 8, "alpha": 16},
            "training": {"learning_rate": "2e-4", "max_steps": 5},
        }
    )
    multiple = minimal(
        baseline={
            "lora": {"r": 8, "alpha": "2r"},
            "training": {"learning_rate": 0.0002, "max_steps": 5},
        }
    )
    a, b = (build_plan(validate_sweep(raw)) for raw in (fixed, multiple))
    assert a.baseline_id == b.baseline_id
    changed = minimal(
        baseline={
            "lora": {"r": 8, "alpha": 16},
            "training": {"learning_rate": 3e-4, "max_steps": 5},
        }
    )
    assert build_plan(validate_sweep(changed)).baseline_id != a.baseline_id
    assert config_hash({"b": 1, "a": 2}) == config_hash({"a": 2, "b": 1})


def test_unknown_keys_are_errors_with_a_suggestion():
    raw = minimal(baseline={"training": {"lerning_rate": 1e-4, "max_steps": 10}})
    found = problems(raw)
    assert any(
        "baseline.training.lerning_rate: unknown key; did you mean 'learning_rate'" in p
        for p in found
    )


def test_all_errors_are_reported_together():
    raw = minimal(
        baseline={
            "lora": {"r": 0, "target_modules": "everything"},
            "training": {"learning_rate": -1, "max_steps": 3},
        },
        evaluation={"size": 0},
    )
    found = problems(raw)
    assert any(
        p.startswith("config: baseline.lora.r: must be greater than 0 (got 0)") for p in found
    )
    assert any(
        "baseline.training.learning_rate: must be greater than 0 (got -1)" in p for p in found
    )
    assert any("baseline.lora.target_modules: unknown preset" in p for p in found)
    assert any("evaluation.size: must be greater than 0" in p for p in found)
    assert len(found) == 4


def test_experiment_values_are_validated_against_the_baseline():
    raw = minimal(experiments=[{"name": "rank", "factor": "lora.r", "values": [4, -2]}])
    assert problems(raw) == [
        "config: experiments[0].values[1] (lora.r): must be greater than 0 (got -2)"
    ]


def test_unknown_factor_lists_the_choices():
    raw = minimal(experiments=[{"name": "x", "factor": "lora.rank", "values": [1]}])
    (line,) = problems(raw)
    assert "experiments[0].factor: unknown factor; choose one of lora.r," in line


def test_union_errors_name_the_branch_that_matches_the_value():
    raw = minimal(data={"source": "d", "train_size": -5})
    assert problems(raw) == ["config: data.train_size: must be greater than 0 (got -5)"]


def test_prompt_placeholders_must_be_known():
    raw = minimal(prompt={"template": "{instruction} {dialog}"})
    (line,) = problems(raw)
    assert "unknown placeholder {dialog}" in line


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"- a\n- b\n", "expected a mapping of sections, got list"),
        (b"model: [unclosed\n", "invalid YAML at line"),
        (b"name: caf\xe9\n", "not UTF-8 text"),
    ],
)
def test_unreadable_files_get_one_line(tmp_path, content, expected):
    path = tmp_path / "sweep.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    assert len(caught.value.problems) == 1 and expected in caught.value.problems[0]


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_sweep(path)
