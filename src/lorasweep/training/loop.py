"""The training loop: seeded batches, target-only loss, gradient accumulation, a logged loss curve.

A plain loop over a PEFT model rather than a Trainer subclass: every step is visible here, the
loss over an accumulated step is weighted by target tokens (not averaged per micro-batch), and
the run is bit-for-bit repeatable on the CPU for a fixed seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from transformers import get_scheduler

from lorasweep.config.schema import TrainingConfig
from lorasweep.data.prompts import IGNORE_INDEX, Encoded


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class StepLog:
    step: int
    loss: float
    learning_rate: float
    target_tokens: int
    tokens: int  # real (non-padding) tokens in the step

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def total_steps(config: TrainingConfig, examples: int) -> int:
    """Optimizer steps of a run: ``max_steps``, or enough for ``epochs`` passes over the data."""
    if config.max_steps is not None:
        return config.max_steps
    per_step = config.batch_size * config.gradient_accumulation_steps
    return max(1, math.ceil(config.epochs * examples / per_step))


def fit(
    model: torch.nn.Module,
    examples: list[Encoded],
    config: TrainingConfig,
    pad_id: int,
    on_step: Callable[[StepLog], None] = lambda log: None,
) -> list[StepLog]:
    """Train the model's trainable parameters on ``examples``.

    Args:
        model: A model whose trainable parameters are the adapter's (a PEFT model).
        examples: Encoded training examples.
        config: The run's training settings.
        pad_id: Token id used to pad batches (masked out of attention and loss).
        on_step: Called after every optimizer step, e.g. to advance a progress bar.

    Returns:
        One entry per optimizer step.

    Raises:
        TrainingDiverged: If a step's loss is NaN or infinite.
    """
    device = next(model.parameters()).device
    steps = total_steps(config, len(examples))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer,
        num_warmup_steps=min(config.warmup_steps, steps),
        num_training_steps=steps,
    )
    batches = _micro_batches(examples, config.batch_size, config.seed)
    model.train()
    history = []
    for step in range(1, steps + 1):
        micro = [next(batches) for _ in range(config.gradient_accumulation_steps)]
        target_tokens = sum(e.target_tokens for batch in micro for e in batch)
        loss_sum = 0.0
        for batch in micro:
            input_ids, attention_mask, labels = (t.to(device) for t in collate(batch, pad_id))
            # num_items_in_batch makes the model sum the loss and divide by the step's target
            # tokens: every target token weighs the same, however the step is split.
            loss = model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                labels=labels,
                num_items_in_batch=max(1, target_tokens),
            ).loss
            loss.backward()
            loss_sum += loss.item()
        if not math.isfinite(loss_sum):
            raise TrainingDiverged(f"loss is {loss_sum} at step {step}")
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        learning_rate = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        log = StepLog(
            step,
            loss_sum,
            learning_rate,
            target_tokens,
            sum(len(e.input_ids) for b in micro for e in b),
        )
        history.append(log)
        on_step(log)
    model.eval()
    return history


def collate(batch: list[Encoded], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad a batch to its longest example: input ids, attention mask, labels."""
    width = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        attention_mask[row, :n] = 1
        labels[row, :n] = torch.tensor(example.labels)
    return input_ids, attention_mask, labels


def _micro_batches(examples: list[Encoded], size: int, seed: int) -> Iterator[list[Encoded]]:
    """Endless epochs, each shuffled with a seeded generator of its own."""
    rng = random.Random(seed)
    size = min(size, len(examples))
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for start in range(0, len(order) - size + 1, size):
            yield [examples[i] for i in order[start : start + size]]
