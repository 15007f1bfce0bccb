"""Batched greedy generation: left padding, KV cache, each sequence stopped at EOS."""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase


def stop_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every token that ends a reply: the tokenizer's EOS and the model's (Llama 3 has three)."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return sorted(set(ids))


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int,
    on_batch: Callable[[int], None] = lambda n: None,
) -> tuple[list[str], list[int]]:
    """Greedy completions of tokenized prompts, returned in the prompts' order.

    Prompts are sorted by length so each batch pads little; the longest go first, so an
    out-of-memory error shows up in the first batch rather than the last.

    Returns:
        The decoded completions (special tokens removed, whitespace stripped) and the number of
        tokens generated for each.
    """
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    config = GenerationConfig(
        do_sample=False,
        max_new_tokens=max_new_tokens,
        eos_token_id=stop_token_ids(model, tokenizer),
        pad_token_id=pad_id,
    )
    stops = set(config.eos_token_id)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    texts: list[str] = [""] * len(prompts)
    lengths: list[int] = [0] * len(prompts)
    model.eval()
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in chunk)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):  # left padding: every prompt ends where generation starts
            input_ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
            attention_mask[row, width - len(prompts[i]) :] = 1
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=config,
        )
        for row, i in enumerate(chunk):
            new = output[row, width:].tolist()
            end = next((k for k, t in enumerate(new) if t in stops), len(new))
            lengths[i] = end
            texts[i] = tokenizer.decode(new[:end], skip_special_tokens=True).strip()
        on_batch(len(chunk))
    return texts, lengths
