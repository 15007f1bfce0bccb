"""One base model per process: runs add and remove their adapters, never copy the base.

Also rsLoRA, DoRA, gradient checkpointing and 4-bit (QLoRA) bases, on the micro model with
bitsandbytes' CPU backend.
"""

from __future__ import annotations

import copy
import importlib.util
import json

import pytest
import torch
from peft import get_peft_model
from rich.console import Console

from lorasweep.cli.main import main
from lorasweep.config.load import validate_sweep
from lorasweep.config.plan import build_plan
from lorasweep.errors import UserError
from lorasweep.evaluation.evaluate import evaluate
from lorasweep.preflight import check_model
from lorasweep.store.records import Status
from lorasweep.store.store import RunStore
from lorasweep.training.adapters import (
    checkpointing,
    has_adapter,
    is_quantized,
    new_adapter,
    peft_config,
)
from lorasweep.training.loop import fit
from lorasweep.training.resources import load_resources
from lorasweep.training.run import Hooks, execute
from tests.conftest import sweep_dict, write_yaml

requires_bnb = pytest.mark.skipif(
    importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes is not installed"
)


def micro_sweep(micro_model, dialogue_dir, **model):
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["model"].update(model)
    # Dropout on, MLP targeted: the demo's shape, where RNG use and merging both matter.
    raw["baseline"]["lora"].update(dropout=0.1, target_modules="attention+mlp")
    raw["experiments"] = [{"name": "rank", "factor": "lora.r", "values": [2, 4]}]
    return validate_sweep(raw)


@pytest.fixture(scope="module")
def sweep(micro_model, dialogue_dir):
    return micro_sweep(micro_model, dialogue_dir)


@pytest.fixture(scope="module")
def resources(sweep):
    return load_resources(sweep, log=lambda line: None)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def assert_same_weights(before: dict[str, torch.Tensor], model: torch.nn.Module) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    changed = [name for name, t in before.items() if not torch.equal(t, after[name])]
    assert not changed, f"base weights changed: {changed[:3]}"


def predictions(store: RunStore, run_id: str) -> list[str]:
    lines = (store.run_dir(run_id) / "predictions.jsonl").read_text().splitlines()
    return [json.loads(line)["prediction"] for line in lines]


def test_a_run_leaves_the_shared_base_bit_identical_and_adapter_free(sweep, resources, tmp_path):
    plan = build_plan(sweep)
    before = weights(resources.model)
    result = execute(plan.unit(plan.baseline_id), resources, RunStore(tmp_path), Hooks())
    assert result.status is Status.DONE
    assert_same_weights(before, resources.model)
    assert not has_adapter(resources.model)
    assert not hasattr(resources.model, "peft_config")
    assert not resources.model.training


def test_numbers_equal_a_run_on_a_private_copy_of_the_base(sweep, resources, tmp_path):
    """What lorasweep did before sharing the base: each run on a deep copy, merged to decode."""
    plan = build_plan(sweep)
    spec = plan.run(plan.baseline_id)
    store = RunStore(tmp_path)
    shared = execute(plan.unit(spec.run_id), resources, store, Hooks())

    torch.manual_seed(spec.settings.training.seed)
    model = get_peft_model(copy.deepcopy(resources.model), peft_config(spec.resolved["lora"]))
    examples = resources.train_encoded(spec.settings.training.max_length)
    history = fit(model, examples, spec.settings.training, resources.tokenizer.pad_token_id)
    merged = model.merge_and_unload()
    reference = evaluate(merged, resources.tokenizer, resources.eval_examples,
                         resources.eval_prompts, resources.max_new_tokens,
                         sweep.generation.batch_size)  # fmt: skip

    assert shared.efficiency["final_loss"] == history[-1].loss
    assert predictions(store, spec.run_id) == [row["prediction"] for row in reference.predictions]
    assert shared.metrics == reference.metrics


def test_no_run_sees_another_runs_adapter(sweep, resources, tmp_path):
    plan = build_plan(sweep)
    rank2 = next(r.run_id for r in plan.runs if r.resolved["lora"]["r"] == 2)
    zero_shot = plan.unit(plan.base_eval.run_id)
    together, alone = RunStore(tmp_path / "together"), RunStore(tmp_path / "alone")

    for unit in (zero_shot, plan.unit(plan.baseline_id), plan.unit(rank2)):
        assert execute(unit, resources, together, Hooks()).status is Status.DONE
    assert execute(plan.unit(rank2), resources, alone, Hooks()).status is Status.DONE
    assert execute(zero_shot, resources, alone, Hooks()).status is Status.DONE

    # After the baseline's adapter came and went, rank 2 and zero-shot decode as if alone.
    assert predictions(together, rank2) == predictions(alone, rank2)
    assert predictions(together, zero_shot.run_id) == predictions(alone, zero_shot.run_id)
    adapter = together.adapter_dir(plan.run(rank2).adapter_id) / "adapter"
    saved = json.loads((adapter / "adapter_config.json").read_text())
    assert saved["r"] == 2


@pytest.mark.parametrize("stage", ["training", "evaluation"])
def test_a_failing_run_leaves_the_base_as_it_was(sweep, resources, tmp_path, stage):
    plan = build_plan(sweep)
    unit = plan.unit(plan.baseline_id)
    before = weights(resources.model)

    def fail(*args):
        raise RuntimeError(f"broken during {stage}")

    hooks = Hooks(on_step=fail) if stage == "training" else Hooks(on_eval_batch=fail)
    result = execute(unit, resources, RunStore(tmp_path), hooks)

    assert result.status is Status.FAILED and stage in result.error
    # During evaluation the adapter was merged into the base: its weights must be restored.
    assert_same_weights(before, resources.model)
    assert not has_adapter(resources.model)


def test_gradient_checkpointing_changes_no_number(sweep, resources):
    """Which is why it is not part of a run's identity (see plan.resolve_run)."""
    spec = build_plan(sweep).run(build_plan(sweep).baseline_id)
    examples = resources.train_encoded(spec.settings.training.max_length)
    outcomes = []
    for enabled in (False, True):
        torch.manual_seed(0)
        with new_adapter(resources.model, spec.resolved["lora"]) as model:
            with checkpointing(resources.model, enabled):
                assert resources.model.is_activation_checkpointing == enabled
                history = fit(model, examples, spec.settings.training, 0)
            trained = {n: p.detach().clone() for n, p in model.named_parameters() if "lora" in n}
        outcomes.append(([log.loss for log in history], trained))
        assert not resources.model.is_activation_checkpointing
    (losses, plain), (checkpointed_losses, checkpointed) = outcomes
    assert losses == checkpointed_losses
    assert plain.keys() == checkpointed.keys() and plain
    assert all(torch.equal(plain[n], checkpointed[n]) for n in plain)


def test_rslora_and_dora_reach_peft_and_the_run_identity(micro_model, dialogue_dir, resources):
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["baseline"]["lora"].update(r=4, alpha=8)
    raw["experiments"] = [
        {"name": "rslora", "factor": "lora.use_rslora", "values": [False, True]},
        {"name": "dora", "factor": "lora.use_dora", "values": [False, True]},
    ]
    plan = build_plan(validate_sweep(raw))
    assert len(plan.runs) == 3  # baseline, rsLoRA, DoRA
    baseline, rslora, dora = plan.runs
    assert "use_rslora" not in baseline.resolved["lora"]  # off: the id of a plain LoRA run
    assert rslora.resolved["lora"]["use_rslora"] and dora.resolved["lora"]["use_dora"]

    with new_adapter(resources.model, rslora.resolved["lora"]) as model:
        layer = model.get_base_model().model.layers[0].self_attn.q_proj
        assert layer.scaling["default"] == pytest.approx(8 / 4**0.5)
    with new_adapter(resources.model, dora.resolved["lora"]) as model:
        layer = model.get_base_model().model.layers[0].self_attn.q_proj
        assert layer.scaling["default"] == pytest.approx(8 / 4)
        assert "default" in layer.lora_magnitude_vector
    assert not has_adapter(resources.model)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"compute_dtype": "bfloat16"}}, "model.compute_dtype: applies to a 4-bit model"),
        ({"model": {"double_quant": False}}, "model.double_quant: applies to a 4-bit model"),
        ({"model": {"quantization": "int3"}}, "model.quantization"),
        ({"lora": {"use_dora": "maybe"}}, "use_dora"),
    ],
)
def test_bad_quantization_and_lora_options_are_one_line(micro_model, dialogue_dir, change, message):
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["model"].update(change.get("model", {}))
    raw["baseline"]["lora"].update(change.get("lora", {}))
    with pytest.raises(UserError, match=message):
        validate_sweep(raw)


def test_a_written_out_config_with_the_4bit_defaults_reads_back(micro_model, dialogue_dir):
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["model"].update(double_quant=True, compute_dtype="auto")  # as sweep.yaml writes them
    assert not validate_sweep(raw).model.is_quantized


def test_gradient_checkpointing_is_no_experiment_factor(micro_model, dialogue_dir):
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["experiments"] = [
        {"name": "gc", "factor": "training.gradient_checkpointing", "values": [False, True]}
    ]
    with pytest.raises(UserError, match="does not change a run's numbers.*baseline.training"):
        validate_sweep(raw)


def test_a_4bit_model_without_bitsandbytes_is_refused_before_loading(
    micro_model, dialogue_dir, monkeypatch
):
    plan = build_plan(micro_sweep(micro_model, dialogue_dir, quantization="nf4"))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "bitsandbytes" else real(name, *a),
    )
    with pytest.raises(UserError, match=r"model.quantization: nf4 needs bitsandbytes.*\[qlora\]"):
        check_model(plan, Console(quiet=True), dry_run=True)


@requires_bnb
def test_a_4bit_base_trains_decodes_unmerged_and_stays_bit_identical(
    micro_model, dialogue_dir, tmp_path
):
    sweep = micro_sweep(micro_model, dialogue_dir, quantization="nf4", compute_dtype="float32")
    sweep.baseline.training.max_steps = 24
    resources = load_resources(sweep, log=lambda line: None)
    assert is_quantized(resources.model)
    plan = build_plan(sweep)
    assert plan.run(plan.baseline_id).resolved["model"]["quantization"] == "nf4"
    before = weights(resources.model)
    store = RunStore(tmp_path)

    result = execute(plan.unit(plan.baseline_id), resources, store, Hooks())

    assert result.status is Status.DONE, result.error
    losses = [log["loss"] for log in store.train_log(plan.baseline_id)]
    assert sum(losses[-6:]) < sum(losses[:6])  # it learns on the 4-bit base
    assert_same_weights(before, resources.model)
    assert not has_adapter(resources.model)
    # Evaluated again from the saved adapter, on the same 4-bit base: the same predictions.
    first = predictions(store, plan.baseline_id)
    (store.run_dir(plan.baseline_id) / "result.json").unlink()
    assert execute(plan.unit(plan.baseline_id), resources, store, Hooks()).metrics == result.metrics
    assert predictions(store, plan.baseline_id) == first


@requires_bnb
def test_a_qlora_sweep_over_dora_and_rslora_runs_to_the_end(micro_model, dialogue_dir, tmp_path):
    """The issue's check: nf4, experiments over lora.use_dora and lora.use_rslora, on CPU."""
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["model"].update(quantization="nf4", double_quant=True)
    raw["baseline"]["training"]["gradient_checkpointing"] = True
    raw["experiments"] = [
        {"name": "dora", "factor": "lora.use_dora", "values": [False, True]},
        {"name": "rslora", "factor": "lora.use_rslora", "values": [False, True]},
    ]
    config = write_yaml(tmp_path / "qlora.yaml", raw)

    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 0

    store = RunStore(tmp_path / "out")
    plan = store.plan()
    results = [store.result(u.run_id) for u in plan.units()]
    assert [r.status for r in results] == [Status.DONE] * 4  # zero-shot, baseline, DoRA, rsLoRA
    report = (tmp_path / "out" / "report" / "report.md").read_text()
    # r=4, alpha 2r: 8/4 for LoRA and DoRA, 8/sqrt(4) for rsLoRA.
    row = {u.run_id: line for u in plan.units() for line in report.splitlines()
           if line.startswith(f"| `{u.run_id}` |")}  # fmt: skip
    baseline, dora, rslora = (plan.runs[i].run_id for i in range(3))
    assert "| 2 (LoRA) |" in row[baseline] and "| 2 (DoRA) |" in row[dora]
    assert "| 4 (rsLoRA) |" in row[rslora]
    assert "on a 4-bit (nf4) base" in report
