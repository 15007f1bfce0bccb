"""Micro-batches as model inputs, and their target-only loss.

A micro-batch reaches the model in one of two layouts:

* padded: one row per example, right-padded to the batch's longest, with an attention mask;
* packed (``training.packing``): every example concatenated into one row, position ids
  restarting at 0 for each example and no attention mask, so transformers builds a
  block-diagonal causal mask from the position ids: no token attends across examples. That mask
  is only built without a KV cache, so the model always runs with ``use_cache=False`` here.

Either way the loss is the sum of the target tokens' cross-entropies divided by the optimizer
step's target tokens, and the output projection runs only at the positions that predict a
target token: the prompt is most of an example, and for Llama-family models the vocabulary
projection is a large share of the arithmetic (a fifth of Llama-3.2-1B's weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lorasweep.data.prompts import IGNORE_INDEX, Encoded
from lorasweep.evaluation.generate import LEAN_MODEL_TYPES

Inputs = dict[str, torch.Tensor]


def next_targets(example: Encoded) -> list[int]:
    """The label each position predicts: the next token's label, ignored after the last token
    (so that nothing is predicted across the end of an example into the next)."""
    return [*example.labels[1:], IGNORE_INDEX]


def padded(batch: list[Encoded], pad_id: int) -> tuple[Inputs, torch.Tensor]:
    """Right-padded rows and an attention mask; the targets of each position, ``[rows, width]``."""
    width = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    targets = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        attention_mask[row, :n] = 1
        targets[row, :n] = torch.tensor(next_targets(example))
    return {"input_ids": input_ids, "attention_mask": attention_mask}, targets


def packed(batch: list[Encoded]) -> tuple[Inputs, torch.Tensor]:
    """One row of every example end to end, position ids restarting per example; ``[1, T]``."""
    ids = [t for e in batch for t in e.input_ids]
    positions = [p for e in batch for p in range(len(e.input_ids))]
    targets = [t for e in batch for t in next_targets(e)]
    inputs = {"input_ids": torch.tensor([ids]), "position_ids": torch.tensor([positions])}
    return inputs, torch.tensor([targets])


def micro_batch_loss(
    model: torch.nn.Module,
    batch: list[Encoded],
    pad_id: int,
    packing: bool,
    target_tokens: int,
) -> torch.Tensor:
    """Summed cross-entropy of the batch's target tokens over ``target_tokens`` (the step's).

    Args:
        model: A causal language model, or a PEFT model around one, in training mode.
        batch: The micro-batch's examples.
        pad_id: Token id padding fills (masked out; unused when packing).
        packing: Concatenate the examples into one row instead of padding them.
        target_tokens: Target tokens of the whole optimizer step: every target token weighs the
            same, however the step is split into micro-batches.
    """
    inputs, targets = packed(batch) if packing else padded(batch, pad_id)
    device = next(model.parameters()).device
    inputs = {name: t.to(device) for name, t in inputs.items()}
    targets = targets.to(device)
    keep = targets != IGNORE_INDEX
    parts = _backbone_and_head(model)
    if parts is None:  # any other model: its own forward, full logits
        if packing:  # preflight refuses this first (check_packing); the run must not go on
            raise ValueError(packing_refused(model.config.model_type))
        logits = model(**inputs, use_cache=False).logits[keep]
    else:
        backbone, head = parts
        hidden = backbone(**inputs, use_cache=False).last_hidden_state
        logits = head(hidden[keep])
    return F.cross_entropy(logits.float(), targets[keep], reduction="sum") / max(1, target_tokens)


def packing_refused(model_type: str) -> str | None:
    """Why packing cannot train a model of ``model_type``, or None if it can.

    Only Llama-family models are known to mask packed examples apart (and to use the position
    ids for their rotary embeddings); GPT-2, for one, lets them attend to each other.
    """
    if model_type in LEAN_MODEL_TYPES:
        return None
    return (
        f"model type {model_type!r} does not keep packed examples apart (packing supports "
        f"{', '.join(sorted(LEAN_MODEL_TYPES))}); set packing: false"
    )


def _backbone_and_head(model: torch.nn.Module):
    """The decoder stack and the output projection of a Llama-family model (whose logits are
    the projection of the last hidden state, nothing more), or None for any other model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if getattr(config, "model_type", None) not in LEAN_MODEL_TYPES:
        return None
    return base.get_decoder(), base.get_output_embeddings()
