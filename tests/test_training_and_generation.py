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
from lorasweep.training.loop import fit
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
    assert tokenizer.decode(prompt).startswith(tokenizer.bos_token + "<|user|>\nSum up.\nAnn:")


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
    assert rows[2] == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    assert mean_scores(rows)["rouge1"] == pytest.approx(sum(r["rouge1"] for r in rows) / 3)
    assert 0 < rows[0]["rouge1"] < 100


def test_stemming_is_configurable():
    plain = score_examples(["they meets"], ["they meeting"])[0]["rouge1"]
    stemmed = score_examples(["they meets"], ["they meeting"], use_stemmer=True)[0]["rouge1"]
    assert stemmed > plain
