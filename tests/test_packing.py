"""training.packing: examples end to end in one row, the same loss and gradients as padding."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

from lorasweep.config.load import validate_sweep
from lorasweep.config.plan import build_plan
from lorasweep.config.schema import PromptConfig, TrainingConfig
from lorasweep.data.prompts import IGNORE_INDEX, Encoded, PromptFormatter
from lorasweep.data.sources import Example
from lorasweep.errors import UserError
from lorasweep.preflight import check_packing
from lorasweep.training.batches import micro_batch_loss, packed
from lorasweep.training.loop import fit
from tests.conftest import sweep_dict

ROWS = [
    Example(str(i), "Ann: hi\nBob: see you at the park" + " and the lake" * i, f"They meet {i}.")
    for i in range(5)
]


@pytest.fixture(scope="module")
def tokenizer(micro_model):
    return AutoTokenizer.from_pretrained(micro_model)


@pytest.fixture(scope="module")
def batch(tokenizer) -> list[Encoded]:
    formatter = PromptFormatter(tokenizer, PromptConfig(), "dialogue")
    return [formatter.encode_example(e, 256) for e in ROWS]  # lengths differ: padding is real


def lora(base: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    model = get_peft_model(copy.deepcopy(base), config)
    for name, p in model.named_parameters():  # B = 0 at init would make every gradient of A zero
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return model.train()


def loss_and_grads(model, batch, pad_id, packing):
    model.zero_grad(set_to_none=True)
    total = sum(e.target_tokens for e in batch)
    loss = micro_batch_loss(model, batch, pad_id, packing, total)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.item(), grads


def test_packed_rows_restart_positions_and_never_target_across_examples(batch):
    inputs, targets = packed(batch)
    starts = [sum(len(e.input_ids) for e in batch[:k]) for k in range(len(batch))]
    assert inputs["input_ids"].shape == targets.shape == (1, sum(len(e.input_ids) for e in batch))
    assert "attention_mask" not in inputs  # the block mask comes from the position ids
    assert [inputs["position_ids"][0, s].item() for s in starts] == [0] * len(batch)
    # The last position of each example predicts nothing (not the next example's first token).
    assert all(targets[0, s - 1].item() == IGNORE_INDEX for s in starts[1:])
    assert (targets != IGNORE_INDEX).sum().item() == sum(e.target_tokens for e in batch)


def test_packed_loss_and_gradients_equal_padded(micro_model, tokenizer, batch):
    model = lora(AutoModelForCausalLM.from_pretrained(micro_model))
    pad_loss, pad_grads = loss_and_grads(model, batch, tokenizer.pad_token_id, packing=False)
    pack_loss, pack_grads = loss_and_grads(model, batch, tokenizer.pad_token_id, packing=True)
    assert pack_loss == pytest.approx(pad_loss, abs=1e-5)
    assert pad_grads.keys() == pack_grads.keys()
    assert len(pad_grads) == 8  # A and B of q and v in 2 layers
    for name, grad in pad_grads.items():  # within 1e-5 of each gradient's size
        assert grad.norm() > 0
        assert (pack_grads[name] - grad).norm() <= 1e-5 * grad.norm(), name


def gpt2(tokenizer) -> torch.nn.Module:
    torch.manual_seed(0)
    eos = tokenizer.eos_token_id
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=eos, eos_token_id=eos)  # fmt: skip
    return GPT2LMHeadModel(config).eval()  # no dropout: the two losses are comparable


def test_other_models_train_padded_through_their_own_forward_and_refuse_packing(tokenizer, batch):
    model = gpt2(tokenizer)
    n = sum(e.target_tokens for e in batch)
    input_ids = torch.tensor([batch[0].input_ids])
    own = model(input_ids=input_ids, labels=torch.tensor([batch[0].labels])).loss.item()
    ours = micro_batch_loss(model, batch[:1], 0, False, batch[0].target_tokens).item()
    assert ours == pytest.approx(own, abs=1e-6)
    with pytest.raises(ValueError, match="'gpt2' does not keep packed examples apart"):
        micro_batch_loss(model, batch, 0, True, n)


def test_preflight_refuses_packing_for_a_model_that_would_mix_examples(micro_model, dialogue_dir):
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["baseline"]["training"]["packing"] = True
    plan = build_plan(validate_sweep(raw))
    check_packing(plan, "llama")  # fine
    with pytest.raises(UserError) as error:
        check_packing(plan, "gpt2")
    assert str(error.value).startswith("baseline.training.packing: model type 'gpt2'")


def test_the_target_only_head_gives_the_models_own_loss(micro_model, tokenizer, batch):
    model = lora(AutoModelForCausalLM.from_pretrained(micro_model))
    input_ids = torch.full((len(batch), max(len(e.input_ids) for e in batch)), 0)
    mask, labels = torch.zeros_like(input_ids), torch.full_like(input_ids, IGNORE_INDEX)
    for row, e in enumerate(batch):
        input_ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[row, : len(e.input_ids)] = 1
        labels[row, : len(e.labels)] = torch.tensor(e.labels)
    own = model(input_ids=input_ids, attention_mask=mask, labels=labels, use_cache=False).loss
    ours = micro_batch_loss(model, batch, 0, False, sum(e.target_tokens for e in batch))
    assert ours.item() == pytest.approx(own.item(), abs=1e-6)


def test_no_token_attends_across_examples_even_when_the_model_asks_for_a_cache(
    micro_model, tokenizer, batch
):
    """The trap: with a KV cache, transformers builds no block mask and a packed example
    attends to the ones before it. Changing the first example must not move the second's loss,
    whatever the model config says about caching."""
    base = AutoModelForCausalLM.from_pretrained(micro_model)
    base.config.use_cache = True
    model = lora(base)
    other = Encoded([t + 1 if t > 10 else t for t in batch[0].input_ids], batch[0].labels)
    n = batch[1].target_tokens
    alone = micro_batch_loss(model, [batch[1]], 0, True, n).item()
    after_first = micro_batch_loss(model, [batch[0], batch[1]], 0, True, n).item()
    after_other = micro_batch_loss(model, [other, batch[1]], 0, True, n).item()
    first = micro_batch_loss(model, [batch[0]], 0, True, n).item()
    assert after_first - first == pytest.approx(alone, abs=1e-5)
    assert after_other - micro_batch_loss(model, [other], 0, True, n).item() == pytest.approx(
        alone, abs=1e-5
    )
    # What the trap looks like: the model's own forward with its cache on mixes the examples.
    inputs, _ = packed([batch[0], batch[1]])
    with torch.no_grad():
        cached = model(**inputs, use_cache=True).logits[0, len(batch[0].input_ids) :]
        clean = model(**inputs, use_cache=False).logits[0, len(batch[0].input_ids) :]
    assert (cached - clean).abs().max() > 1e-3


def test_fit_with_packing_follows_the_padded_curve(micro_model, tokenizer, batch):
    config = TrainingConfig(learning_rate=1e-2, max_steps=6, batch_size=3, lr_scheduler="constant")
    base = AutoModelForCausalLM.from_pretrained(micro_model)
    plain = fit(lora(base), batch, config, tokenizer.pad_token_id)
    packed_run = fit(lora(base), batch, config.model_copy(update={"packing": True}), 0)
    assert [s.tokens for s in packed_run] == [s.tokens for s in plain]
    assert [s.loss for s in packed_run] == pytest.approx([s.loss for s in plain], abs=1e-4)
    assert packed_run[-1].loss < packed_run[0].loss


def test_packing_enters_the_run_id_only_when_on(micro_model, dialogue_dir):
    raw = sweep_dict(micro_model, dialogue_dir)
    default = build_plan(validate_sweep(raw))
    raw["baseline"]["training"]["packing"] = False
    off = build_plan(validate_sweep(raw))
    raw["baseline"]["training"]["packing"] = True
    on = build_plan(validate_sweep(raw))
    assert "packing" not in default.run(default.baseline_id).resolved["training"]
    assert off.baseline_id == default.baseline_id  # existing stores keep their run ids
    assert on.baseline_id != default.baseline_id
    assert on.run(on.baseline_id).resolved["training"]["packing"] is True


def test_a_bad_packing_value_is_one_line_naming_the_field(micro_model, dialogue_dir):
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["baseline"]["training"]["packing"] = "sometimes"
    with pytest.raises(UserError) as error:
        validate_sweep(raw)
    assert "baseline.training.packing" in str(error.value)
    assert "\n" not in str(error.value).strip()
