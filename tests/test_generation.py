"""Both decoders against transformers' ``generate`` on one prompt at a time, token for token.

The lean decoder is checked on the micro model lorasweep builds and on randomly initialised
models of each architecture it accepts (grouped-query attention included), with a stop token
chosen so that some sequences end early and others run to the cap.
"""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    MistralConfig,
    Qwen2Config,
    Qwen3Config,
)

from lorasweep.evaluation import generate as generation
from lorasweep.evaluation.generate import (
    PASS_TOKENS,
    WEIGHT_MAJOR_HIDDEN,
    LeanDecoder,
    WeightMajorLinears,
    generate,
    prefill_passes,
)

SMALL = dict(
    vocab_size=97,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,  # grouped-query attention, as in Llama 3
    max_position_embeddings=128,
    attn_implementation="sdpa",
)


def random_model(config_class, **overrides):
    torch.manual_seed(0)
    config = config_class(**{**SMALL, **overrides})
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()


def prompts_with_a_shared_prefix(vocab: int, n: int = 7) -> list[list[int]]:
    """An instruction every prompt starts with, then inputs of different lengths."""
    g = torch.Generator().manual_seed(1)
    prefix = torch.randint(3, vocab, (9,), generator=g).tolist()
    return [prefix + torch.randint(3, vocab, (3 + 4 * i,), generator=g).tolist() for i in range(n)]


def one_at_a_time(model, prompts, max_new_tokens, stops) -> list[list[int]]:
    """The reference: transformers' greedy ``generate``, no padding, no batch."""
    config = generation.greedy_config(max_new_tokens, stops, pad_id=0)
    outputs = []
    for prompt in prompts:
        ids = torch.tensor([prompt])
        # No padding, and the mask says so: left to infer one, generate would hide every token
        # equal to the pad id (0: a real tokenizer's BOS, say) from attention.
        output = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)
        outputs.append(generation._until_stop(output[0, len(prompt) :].tolist(), stops))
    return outputs


def a_stop_token_some_sequences_reach(model, prompts, max_new_tokens) -> int:
    """A token that ends some of the sequences early but not all of them."""
    free = one_at_a_time(model, prompts, max_new_tokens, stops=[])
    counts = {}
    for tokens in free:
        for t in set(tokens[1:-1]):
            counts[t] = counts.get(t, 0) + 1
    usable = [t for t, c in counts.items() if 0 < c < len(prompts)]
    assert usable, "the random model repeats one token everywhere: change the seed"
    return max(usable, key=lambda t: counts[t])


@pytest.mark.parametrize(
    "config_class, overrides",
    [
        (LlamaConfig, {}),
        (LlamaConfig, {"num_key_value_heads": 4, "tie_word_embeddings": True}),
        (MistralConfig, {"sliding_window": None}),
        (Qwen2Config, {}),
        (Qwen3Config, {"head_dim": 8}),  # Qwen3 normalises queries and keys per head
    ],
    ids=["llama-gqa", "llama-mha-tied", "mistral", "qwen2", "qwen3"],
)
def test_lean_decoder_equals_one_prompt_at_a_time(config_class, overrides):
    model = random_model(config_class, **overrides)
    prompts = prompts_with_a_shared_prefix(model.config.vocab_size)
    assert LeanDecoder.unsupported(model, 64) is None
    stop = a_stop_token_some_sequences_reach(model, prompts, 12)
    expected = one_at_a_time(model, prompts, 12, stops=[stop])
    assert 0 < sum(len(e) < 12 for e in expected) < len(prompts)  # both endings are exercised

    decoder = LeanDecoder(model, prompts, 12, stops=[stop])
    assert len(decoder.prefix) == 9  # the shared instruction, read once
    assert decoder.vocab_major  # a CPU model's logits are computed as W @ h.T
    with torch.inference_mode():
        assert decoder(prompts) == expected
        decoder.vocab_major = False  # ... and as the head computes them
        assert decoder(prompts) == expected
        decoder.vocab_major = True
        assert decoder(prompts[::-1]) == expected[::-1]  # any order, any batch
        assert decoder(prompts[2:5]) == expected[2:5]
        # Read in chunks of at most 30 tokens: rows of different widths share one buffer.
        chunked = LeanDecoder(model, prompts, 12, stops=[stop], prefill_tokens=30)
        assert [r.stop - r.start for r in chunked._chunks([p[9:] for p in prompts[::-1]])] == [
            1,
            1,
            1,
            2,
            2,
        ]
        assert chunked(prompts[::-1]) == expected[::-1]


def every_split(n: int):
    """Every way to cut rows ``[0, n)`` into consecutive passes."""
    for mask in range(2 ** (n - 1)):
        cuts = [0, *(k + 1 for k in range(n - 1) if mask >> k & 1), n]
        yield [slice(a, b) for a, b in zip(cuts, cuts[1:], strict=False)]


@pytest.mark.parametrize("seed", range(6))
def test_prefill_passes_read_the_fewest_tokens(seed):
    g = torch.Generator().manual_seed(seed)
    widths = torch.randint(1, 200, (9,), generator=g).tolist()
    if seed % 2:
        widths.sort(reverse=True)  # as generate passes them
    limit = 400

    def cost(split):
        return sum((s.stop - s.start) * max(widths[s]) + PASS_TOKENS for s in split)

    def allowed(split):
        return all(s.stop - s.start == 1 or (s.stop - s.start) * max(widths[s]) <= limit
                   for s in split)  # fmt: skip

    chosen = prefill_passes(widths, limit)
    assert [i for s in chosen for i in range(s.start, s.stop)] == list(range(len(widths)))
    assert allowed(chosen)
    assert cost(chosen) == min(cost(split) for split in every_split(len(widths)) if allowed(split))


def test_prefill_passes_split_a_sorted_batch_where_it_narrows():
    # Ten rows of 100 tokens and ten of 10: one pass would read 2,000 tokens, two read 1,100.
    assert prefill_passes([100] * 10 + [10] * 10, 4096) == [slice(0, 10), slice(10, 20)]
    assert prefill_passes([100, 99, 98], 4096) == [slice(0, 3)]  # a token of padding is cheap
    assert prefill_passes([500, 500], 400) == [slice(0, 1), slice(1, 2)]  # over the limit


def test_prompts_that_share_everything_keep_a_token_of_their_own():
    model = random_model(LlamaConfig)
    prompt = prompts_with_a_shared_prefix(model.config.vocab_size)[2]
    short = prompt[:5]
    with torch.inference_mode():
        decoder = LeanDecoder(model, [prompt, prompt, short], 6, stops=[])
        assert decoder.prefix == short[:4]
        assert decoder([prompt, short, prompt]) == [
            *one_at_a_time(model, [prompt, short, prompt], 6, stops=[])
        ]
        single = LeanDecoder(model, [short], 6, stops=[])
        assert single.prefix == [] and single([short]) == one_at_a_time(model, [short], 6, [])


def test_decoding_steps_compute_small_linears_weight_major():
    torch.manual_seed(0)
    layer, biased = torch.nn.Linear(48, 80, bias=False), torch.nn.Linear(48, 80)
    rows, many = torch.randn(5, 1, 48), torch.randn(WeightMajorLinears.ROWS + 1, 48)
    with torch.inference_mode(), WeightMajorLinears():
        small, with_bias, large = layer(rows), biased(rows), layer(many)
        double = torch.nn.Linear(48, 80, bias=False, dtype=torch.float64)(rows.double())
    assert small.shape == (5, 1, 80) and small.stride()[-1] == 5  # (W @ x.T).T, a view
    torch.testing.assert_close(small, rows @ layer.weight.T)
    for plain in (with_bias, large, double):  # as F.linear computes them
        assert plain.is_contiguous()
    torch.testing.assert_close(
        with_bias, torch.nn.functional.linear(rows, biased.weight, biased.bias)
    )


def test_decoding_steps_go_weight_major_only_for_a_wide_model_and_few_rows():
    narrow = random_model(LlamaConfig)  # hidden 32: the mode's dispatch would cost more
    wide = random_model(LlamaConfig, hidden_size=WEIGHT_MAJOR_HIDDEN, num_hidden_layers=1)
    prompts = prompts_with_a_shared_prefix(SMALL["vocab_size"], n=5)
    assert not isinstance(LeanDecoder(narrow, prompts, 8, [])._linears(5), WeightMajorLinears)
    decoder = LeanDecoder(wide, prompts, 8, stops=[])
    assert isinstance(decoder._linears(WeightMajorLinears.ROWS), WeightMajorLinears)
    assert not isinstance(decoder._linears(WeightMajorLinears.ROWS + 1), WeightMajorLinears)
    with torch.inference_mode():  # its steps through the mode give generate's tokens
        assert decoder(prompts) == one_at_a_time(wide, prompts, 8, stops=[])


def test_a_head_with_a_bias_is_called_as_it_is():
    model = random_model(LlamaConfig)
    torch.manual_seed(3)
    head = torch.nn.Linear(SMALL["hidden_size"], SMALL["vocab_size"])  # a bias W @ h.T omits
    head.weight.data.copy_(model.lm_head.weight)
    model.lm_head = head
    prompts = prompts_with_a_shared_prefix(model.config.vocab_size, n=4)
    decoder = LeanDecoder(model, prompts, 8, stops=[])
    assert not decoder.vocab_major
    with torch.inference_mode():
        assert decoder(prompts) == one_at_a_time(model, prompts, 8, stops=[])


@pytest.mark.parametrize("lean", [True, False])
def test_generate_on_the_micro_model_equals_one_prompt_at_a_time(micro_model, lean):
    model = AutoModelForCausalLM.from_pretrained(micro_model).eval()
    tokenizer = AutoTokenizer.from_pretrained(micro_model)
    prompts = prompts_with_a_shared_prefix(len(tokenizer), n=9)
    stop = a_stop_token_some_sequences_reach(model, prompts, 10)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, stop]
    expected = one_at_a_time(model, prompts, 10, [tokenizer.eos_token_id, stop])

    texts, lengths = generate(model, tokenizer, prompts, 10, batch_size=4, lean=lean)
    assert lengths == [len(e) for e in expected]
    assert texts == [tokenizer.decode(e, skip_special_tokens=True).strip() for e in expected]


def test_models_outside_the_llama_family_use_transformers_generate(micro_model):
    llama = AutoModelForCausalLM.from_pretrained(micro_model)
    assert LeanDecoder.unsupported(llama, 100) is None
    eager = AutoModelForCausalLM.from_pretrained(micro_model, attn_implementation="eager")
    assert "eager" in LeanDecoder.unsupported(eager, 100)
    gpt2 = AutoModelForCausalLM.from_config(
        AutoConfig.for_model("gpt2", n_layer=1, n_embd=16, n_head=2, vocab_size=50)
    )
    assert "gpt2" in LeanDecoder.unsupported(gpt2, 100)
    windowed = random_model(MistralConfig, sliding_window=32)
    assert "sliding window 32" in LeanDecoder.unsupported(windowed, 100)
    assert LeanDecoder.unsupported(windowed, 32) is None

    tokenizer = AutoTokenizer.from_pretrained(micro_model)
    prompts = prompts_with_a_shared_prefix(len(tokenizer), n=3)
    expected = one_at_a_time(eager.eval(), prompts, 5, [tokenizer.eos_token_id])
    _, lengths = generate(eager, tokenizer, prompts, 5, batch_size=2)  # falls back, same tokens
    assert lengths == [len(e) for e in expected]


def test_transformers_generate_ignores_the_models_generation_defaults():
    """Hub models ship sampling and penalty settings in generation_config.json (Qwen2.5:
    repetition_penalty 1.1); transformers' ``generate`` fills every unset field from there."""
    model = random_model(Qwen2Config)
    prompts = prompts_with_a_shared_prefix(model.config.vocab_size, n=4)
    greedy = LeanDecoder(model, prompts, 8, stops=[])(prompts)
    model.generation_config.update(
        do_sample=True, temperature=0.7, top_k=20, repetition_penalty=50.0, no_repeat_ngram_size=1
    )
    assert generation._generate_decoder(model, 8, stops=[], pad_id=0)(prompts) == greedy
    assert one_at_a_time(model, prompts, 8, stops=[]) == greedy  # the tests' reference too
