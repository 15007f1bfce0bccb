"""The training loop: seeded batches, target-only loss, gradient accumulation, a logged loss curve.

A plain loop over a PEFT model rather than a Trainer subclass: every step is visible here, the
loss over an accumulated step is weighted by target tokens (not averaged per micro-batch), and
the run is bit-for-bit repeatable on the CPU for a fixed seed.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import get_scheduler

from lorasweep.config.schema import TrainingConfig
from lorasweep.data.prompts import IGNORE_INDEX, Encoded
from lorasweep.faults import fault_point
from lorasweep.training.batches import micro_batch_loss, padded


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


class Checkpoints:
    """Resumable training state of one run in a single file, replaced atomically.

    Holds the adapter's trainable weights, optimizer, scheduler, RNG states and the loss log:
    everything needed to continue a run as if it had never stopped.

    Args:
        path: The checkpoint file.
        every: Save after every ``every`` optimizer steps; 0 disables saving.
    """

    def __init__(self, path: Path, every: int) -> None:
        self.path, self.every = path, every
        self.resumed_at = 0  # the step training resumed from (0: it started afresh)
        self.earlier_seconds = 0.0  # training time of the segments before the resume

    def load(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=False)

    def save(self, state: dict[str, Any]) -> None:
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with open(temporary, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)  # a half-written checkpoint is never under its name
        fault_point("checkpoint-saved")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def fit(
    model: torch.nn.Module,
    examples: list[Encoded],
    config: TrainingConfig,
    pad_id: int,
    on_step: Callable[[StepLog], None] = lambda log: None,
    checkpoints: Checkpoints | None = None,
) -> list[StepLog]:
    """Train the model's trainable parameters on ``examples``.

    Args:
        model: A model whose trainable parameters are the adapter's (a PEFT model).
        examples: Encoded training examples.
        config: The run's training settings.
        pad_id: Token id used to pad batches (masked out of attention and loss).
        on_step: Called after every optimizer step, e.g. to advance a progress bar; on a
            resume, first once for each restored step, so that a tracker whose earlier
            records died with a killed process still sees the whole curve, in order.
        checkpoints: Where to save resumable state; if it holds some, training resumes there.

    Returns:
        One entry per optimizer step (those before a resume included).

    Raises:
        TrainingDiverged: If a step's loss is NaN or infinite.
    """
    steps = total_steps(config, len(examples))
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(
        trainable.values(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer,
        num_warmup_steps=min(config.warmup_steps, steps),
        num_training_steps=steps,
    )
    batches = _micro_batches(examples, config.batch_size, config.seed, config.group_by_length)
    history: list[StepLog] = []
    segment_start, earlier_seconds = time.perf_counter(), 0.0
    state = checkpoints.load() if checkpoints else None
    if state is not None:
        history = _restore(state, trainable, optimizer, scheduler)
        checkpoints.resumed_at = len(history)
        checkpoints.earlier_seconds = earlier_seconds = state.get("train_seconds", 0.0)
        for _ in range(len(history) * config.gradient_accumulation_steps):
            next(batches)  # the batch order is a function of the seed: skip what was consumed
        for log in history:
            on_step(log)
    model.train()
    for step in range(len(history) + 1, steps + 1):
        micro = [next(batches) for _ in range(config.gradient_accumulation_steps)]
        target_tokens = sum(e.target_tokens for batch in micro for e in batch)
        loss_sum = 0.0
        for batch in micro:
            loss = micro_batch_loss(model, batch, pad_id, config.packing, target_tokens)
            loss.backward()
            loss_sum += loss.item()
        if not math.isfinite(loss_sum):
            raise TrainingDiverged(f"loss is {loss_sum} at step {step}")
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(trainable.values(), config.max_grad_norm)
        learning_rate = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        tokens = sum(len(e.input_ids) for batch in micro for e in batch)
        log = StepLog(step, loss_sum, learning_rate, target_tokens, tokens)
        history.append(log)
        on_step(log)
        # The last step is saved too: a crash during evaluation then costs no training.
        if checkpoints and checkpoints.every and (step % checkpoints.every == 0 or step == steps):
            seconds = earlier_seconds + time.perf_counter() - segment_start
            checkpoints.save(_snapshot(history, trainable, optimizer, scheduler, seconds))
    model.eval()
    return history


def _snapshot(history, trainable, optimizer, scheduler, seconds: float) -> dict[str, Any]:
    return {
        "step": len(history),
        "train_seconds": seconds,  # so that a resumed run reports its whole training time
        "history": [log.as_dict() for log in history],
        "trainable": {name: p.detach().cpu().clone() for name, p in trainable.items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _restore(state, trainable, optimizer, scheduler) -> list[StepLog]:
    with torch.no_grad():
        for name, value in state["trainable"].items():
            trainable[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_cpu"])  # dropout masks continue exactly where they stopped
    if state["rng_cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return [StepLog(**log) for log in state["history"]]


def collate(batch: list[Encoded], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad a batch to its longest example: input ids, attention mask, labels."""
    inputs, _ = padded(batch, pad_id)
    labels = torch.full_like(inputs["input_ids"], IGNORE_INDEX)
    for row, example in enumerate(batch):
        labels[row, : len(example.labels)] = torch.tensor(example.labels)
    return inputs["input_ids"], inputs["attention_mask"], labels


def _micro_batches(
    examples: list[Encoded], size: int, seed: int, group_by_length: bool = True
) -> Iterator[list[Encoded]]:
    """Endless epochs of micro-batches, each epoch in a seeded order of its own.

    With ``group_by_length``, each window of 64 batches' worth of shuffled examples is sorted by
    length before it is cut into batches, and the batches are shuffled again: batches hold
    examples of similar length, so little compute goes to padding, while the order stays random.
    """
    rng = random.Random(seed)
    size = min(size, len(examples))
    window = size * 64
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        order = order[: len(order) - len(order) % size]  # whole batches only
        if group_by_length:
            groups = []
            for start in range(0, len(order), window):
                chunk = sorted(
                    order[start : start + window], key=lambda i: len(examples[i].input_ids)
                )
                groups += [chunk[i : i + size] for i in range(0, len(chunk), size)]
            rng.shuffle(groups)
        else:
            groups = [order[i : i + size] for i in range(0, len(order), size)]
        for group in groups:
            yield [examples[i] for i in group]
