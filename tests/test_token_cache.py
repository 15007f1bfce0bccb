"""The tokenization cache: the same tokens as tokenizing afresh, and a new key whenever the
tokenizer, the prompt, the data or the length limit changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from transformers import AutoTokenizer

from lorasweep.cache import cache_dir
from lorasweep.config.load import validate_sweep
from lorasweep.config.plan import build_plan
from lorasweep.config.schema import PromptConfig
from lorasweep.data.prompts import PromptFormatter
from lorasweep.data.sources import Example
from lorasweep.data.token_cache import TokenCache
from lorasweep.executors.local import prepare
from tests.conftest import sweep_dict

EXAMPLES = [
    Example(str(i), f"Ann: see you at {i}?\nBob: {'ok ' * i}", f"They meet at {i}.")
    for i in range(1, 8)
]
PROMPT = PromptConfig(instruction="Summarize.", template="{instruction}\n{input}\nSummary:")


@pytest.fixture(scope="module")
def tokenizer(micro_model):
    return AutoTokenizer.from_pretrained(micro_model)


def cache(tokenizer, root: Path, prompt: PromptConfig = PROMPT) -> TokenCache:
    return TokenCache(PromptFormatter(tokenizer, prompt, "dialogue"), root)


def test_cached_tokens_equal_fresh_ones(tokenizer, tmp_path):
    formatter = PromptFormatter(tokenizer, PROMPT, "dialogue")
    first = cache(tokenizer, tmp_path)
    prompts, training = first.prompts(EXAMPLES), first.training(EXAMPLES, max_length=24)
    assert (first.hits, first.misses) == (0, 2)
    assert len(list((tmp_path / "tokens").glob("*.npz"))) == 2

    again = cache(tokenizer, tmp_path)  # another process, same tokenizer, prompt and data
    assert (
        again.prompts(EXAMPLES) == prompts == [formatter.encode_prompt(e.input) for e in EXAMPLES]
    )
    assert again.training(EXAMPLES, max_length=24) == training
    assert training == [formatter.encode_example(e, 24) for e in EXAMPLES]
    assert any(e.target_tokens == 0 for e in training)  # cut inside the prompt: kept exactly
    assert (again.hits, again.misses) == (2, 0)


def test_anything_that_changes_the_tokens_changes_the_key(tokenizer, tmp_path):
    base = cache(tokenizer, tmp_path)
    key = base.key("training", EXAMPLES, "24")
    other_prompt = cache(tokenizer, tmp_path, PROMPT.model_copy(update={"instruction": "Sum."}))
    assert other_prompt.key("training", EXAMPLES, "24") != key
    assert base.key("training", EXAMPLES, "32") != key  # max_length
    assert base.key("prompts", EXAMPLES, "24") != key
    edited = [*EXAMPLES[:-1], Example("7", EXAMPLES[-1].input, "They meet at 8.")]
    assert base.key("training", edited, "24") != key

    other_tokenizer = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    other_tokenizer.chat_template = "{{ messages[0]['content'] }}"
    assert cache(other_tokenizer, tmp_path).key("training", EXAMPLES, "24") != key
    assert cache(tokenizer, tmp_path / "elsewhere").key("training", EXAMPLES, "24") == key


def test_a_damaged_entry_is_rebuilt(tokenizer, tmp_path):
    expected = cache(tokenizer, tmp_path).prompts(EXAMPLES)
    (entry,) = (tmp_path / "tokens").glob("*.npz")
    entry.write_bytes(b"not a zip file")
    again = cache(tokenizer, tmp_path)
    assert again.prompts(EXAMPLES) == expected and again.misses == 1
    assert again.prompts(EXAMPLES) == expected and again.hits == 1


def test_a_sweep_tokenizes_once_across_processes(micro_model, dialogue_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LORASWEEP_CACHE", str(tmp_path))  # empty, whatever ran before
    plan = build_plan(validate_sweep(sweep_dict(micro_model, dialogue_dir)))
    first = prepare(plan, Console(quiet=True))
    first.train_encoded(192)
    assert first.tokens.root == cache_dir() == tmp_path and first.tokens.misses == 2

    second = prepare(plan, Console(quiet=True))  # as a resumed `lorasweep run` would
    assert second.eval_prompts == first.eval_prompts
    assert second.train_encoded(192) == first.train_encoded(192)
    assert (second.tokens.hits, second.tokens.misses) == (2, 0)
