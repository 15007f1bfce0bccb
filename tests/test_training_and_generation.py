"""Units of the run path on the micro model: prompts, loss mask, fit, generation, ROUGE."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from rouge_score import rouge_scorer
from transformers import AutoModelForCausalLM, AutoTokenizer

from lorasweep.config.schema import PromptConfig, TrainingConfig
from lorasweep.data.prompts import IGNORE_INDEX, PromptFormatter
from lorasweep.data.sources import Example
from lorasweep.evaluation.generate import generate
from lorasweep.metrics.rouge import mean_scores, score_examples
from lorasweep.training.loop import Checkpoints, TrainingDiverged, _micro_batches, collate, fit
from lorasweep.training.model import linear_module_names

EXAMPLES = [
    Example(
        str(i),
        f"Ann: meet at {place} at {i} pm?\nBob: ok",
        f"Ann and Bob meet at {place} at {i} pm.",
    )
    for i, place in enumerate(["the park", "the cafe", "the station", "the gym", "home", "work"], 1)
]


@pytest.fixture(scope="module")
def tokenizer(micro_model):
    return AutoTokenizer.from_pretrained(micro_model)


def lora_model(micro_model, seed=0):
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(micro_model)
    return get_peft_model(
        base,
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )


def test_chat_prompt_masks_everything_but_the_reply(tokenizer):
    formatter = PromptFormatter(
        tokenizer,
        PromptConfig(instruction="Sum up.", template="{instruction}\n{dialogue}"),
        "dialogue",
    )
    assert formatter.use_chat
    encoded = formatter.encode_example(EXAMPLES[0], max_length=512)
    prompt = formatter.encode_prompt(EXAMPLES[0].input)
    assert encoded.input_ids[: len(prompt)] == prompt
    assert encoded.labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    target = tokenizer.decode([t for t in encoded.labels if t != IGNORE_INDEX])
    # The reply, ended by end-of-turn (the built-in tokenizer gives every word a leading space).
    assert target.lstrip() == EXAMPLES[0].target + tokenizer.eos_token
    assert tokenizer.decode(prompt).startswith(tokenizer.bos_token + "<|user|> Sum up.\n Ann:")


def test_plain_template_appends_eos(tokenizer):
    formatter = PromptFormatter(
        tokenizer, PromptConfig(template="{input}\nSummary:", chat_template=False), "dialogue"
    )
    encoded = formatter.encode_example(EXAMPLES[1], max_length=512)
    assert encoded.input_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(encoded.input_ids, skip_special_tokens=True).endswith(
        "Summary: " + EXAMPLES[1].target
    )


def test_max_length_cuts_the_end(tokenizer):
    formatter = PromptFormatter(tokenizer, PromptConfig(), "dialogue")
    encoded = formatter.encode_example(EXAMPLES[0], max_length=10)
    assert len(encoded.input_ids) == len(encoded.labels) == 10


def test_fit_lowers_the_loss_and_is_repeatable(micro_model, tokenizer):
    formatter = PromptFormatter(tokenizer, PromptConfig(), "dialogue")
    encoded = [formatter.encode_example(e, 256) for e in EXAMPLES]
    config = TrainingConfig(
        learning_rate=1e-2,
        max_steps=12,
        batch_size=3,
        gradient_accumulation_steps=2,
        lr_scheduler="constant",
    )
    first = fit(lora_model(micro_model), encoded, config, tokenizer.pad_token_id)
    again = fit(lora_model(micro_model), encoded, config, tokenizer.pad_token_id)
    assert [s.loss for s in first] == [s.loss for s in again]
    assert first[-1].loss < first[0].loss
    assert all(
        s.target_tokens == sum(e.target_tokens for e in encoded) for s in first
    )  # 2x3 = all 6


def test_batched_generation_equals_one_at_a_time(micro_model, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(micro_model).eval()
    formatter = PromptFormatter(tokenizer, PromptConfig(), "dialogue")
    prompts = [formatter.encode_prompt(e.input + " extra" * i) for i, e in enumerate(EXAMPLES)]
    batched, lengths = generate(model, tokenizer, prompts, max_new_tokens=10, batch_size=4)
    single = [
        generate(model, tokenizer, [p], max_new_tokens=10, batch_size=1)[0][0] for p in prompts
    ]
    assert batched == single
    assert all(0 <= n <= 10 for n in lengths)


def test_linear_module_names_exclude_the_head(micro_model):
    names = linear_module_names(AutoModelForCausalLM.from_pretrained(micro_model))
    assert names == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]


def test_rouge_matches_rouge_score_in_points():
    predictions = ["Ann and Bob meet at the park.", "nothing in common", ""]
    references = ["Ann and Bob will meet at the park at 5 pm.", "Bob buys milk.", "Ann calls."]
    rows = score_examples(predictions, references)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    for row, p, r in zip(rows, predictions, references, strict=True):
        expected = scorer.score(r, p)
        assert row["rougeL"] == pytest.approx(100 * expected["rougeL"].fmeasure)
        assert row["rouge2"] == pytest.approx(100 * expected["rouge2"].fmeasure)
    assert set(rows[2].values()) == {0.0}  # an empty prediction scores zero
    assert mean_scores(rows)["rouge1"] == pytest.approx(sum(r["rouge1"] for r in rows) / 3)
    assert 0 < rows[0]["rouge1"] < 100


def test_stemming_is_configurable():
    plain = score_examples(["they meets"], ["they meeting"])[0]["rouge1"]
    stemmed = score_examples(["they meets"], ["they meeting"], use_stemmer=True)[0]["rouge1"]
    assert stemmed > plain


def test_padding_to_the_batch_longest_gives_the_padded_to_max_length_loss(micro_model, tokenizer):
    """Dynamic padding changes nothing but speed: the loss equals padding to max_length."""
    model = lora_model(micro_model).eval()
    formatter = PromptFormatter(tokenizer, PromptConfig(), "dialogue")
    batch = [formatter.encode_example(e, 256) for e in EXAMPLES]
    input_ids, attention_mask, labels = collate(batch, tokenizer.pad_token_id)
    width = 128
    padded = [
        torch.nn.functional.pad(t, (0, width - t.shape[1]), value=v)
        for t, v in (
            (input_ids, tokenizer.pad_token_id),
            (attention_mask, 0),
            (labels, IGNORE_INDEX),
        )
    ]
    with torch.no_grad():
        dynamic = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        full = model(input_ids=padded[0], attention_mask=padded[1], labels=padded[2]).loss
    assert dynamic.item() == pytest.approx(full.item(), rel=1e-5)


def test_length_grouping_keeps_every_example_and_cuts_padding(tokenizer):
    formatter = PromptFormatter(tokenizer, PromptConfig(), "dialogue")
    rows = [
        Example(str(i), "Ann: hi\nBob: yo" + " and more" * (i % 17), "Ann greets Bob.")
        for i in range(256)
    ]
    encoded = [formatter.encode_example(e, 512) for e in rows]

    def one_epoch(grouped: bool) -> list[list]:
        batches = _micro_batches(encoded, 8, seed=3, group_by_length=grouped)
        return [next(batches) for _ in range(len(encoded) // 8)]

    def padding(epoch) -> int:
        return sum(
            max(len(e.input_ids) for e in b) * len(b) - sum(len(e.input_ids) for e in b)
            for b in epoch
        )

    grouped, shuffled = one_epoch(True), one_epoch(False)
    assert sorted(id(e) for b in grouped for e in b) == sorted(id(e) for e in encoded)
    assert padding(grouped) < padding(shuffled) / 4
    assert one_epoch(True) == grouped  # seeded: the same batches every time


def test_resume_from_a_checkpoint_continues_bit_for_bit(micro_model, tokenizer, tmp_path):
    formatter = PromptFormatter(tokenizer, PromptConfig(), "dialogue")
    encoded = [formatter.encode_example(e, 256) for e in EXAMPLES]
    config = TrainingConfig(
        learning_rate=1e-2, max_steps=8, batch_size=2, lr_scheduler="cosine", warmup_steps=2
    )
    straight = fit(lora_model(micro_model), encoded, config, tokenizer.pad_token_id)

    class Stop(Exception):
        pass

    def stop_after_five(log):
        if log.step == 5:
            raise Stop

    checkpoints = Checkpoints(tmp_path / "checkpoint.pt", every=2)
    with pytest.raises(Stop):
        fit(
            lora_model(micro_model),
            encoded,
            config,
            tokenizer.pad_token_id,
            stop_after_five,
            checkpoints,
        )
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 4
    resumed = fit(
        lora_model(micro_model, seed=123),
        encoded,
        config,
        tokenizer.pad_token_id,
        checkpoints=checkpoints,
    )
    assert [s.loss for s in resumed] == [s.loss for s in straight]


def test_a_nan_loss_stops_the_run(micro_model, tokenizer):
    model = lora_model(micro_model)
    # A numeric blow-up inside the network, as a too-high learning rate or fp16 overflow causes.
    model.base_model.model.model.layers[0].mlp.register_forward_hook(
        lambda m, i, out: out * float("nan")
    )
    formatter = PromptFormatter(tokenizer, PromptConfig(), "dialogue")
    encoded = [formatter.encode_example(e, 256) for e in EXAMPLES]
    with pytest.raises(TrainingDiverged, match="loss is nan at step 1"):
        fit(model, encoded, TrainingConfig(max_steps=3, batch_size=2), tokenizer.pad_token_id)
