"""Evaluate a model on the sweep's fixed examples: generate, score, and keep every prediction."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lorasweep.data.sources import Example
from lorasweep.evaluation.generate import generate
from lorasweep.faults import fault_point
from lorasweep.metrics.rouge import mean_scores, score_examples


@dataclass(frozen=True)
class Evaluation:
    predictions: list[dict[str, Any]]  # one row per example, per-example scores included
    metrics: dict[str, float]
    seconds: float
    generated_tokens: int


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[Example],
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int,
    use_stemmer: bool = False,
    on_batch: Callable[[int], None] = lambda n: None,
) -> Evaluation:
    """Greedy predictions for ``prompts`` scored against the examples' references."""
    start = time.perf_counter()

    def after_batch(n: int) -> None:
        on_batch(n)
        fault_point("evaluation")

    texts, lengths = generate(model, tokenizer, prompts, max_new_tokens, batch_size, after_batch)
    seconds = time.perf_counter() - start
    scores = score_examples(texts, [e.target for e in examples], use_stemmer)
    rows = [
        {
            "id": example.key,
            "input": example.input,
            "reference": example.target,
            "prediction": text,
            "generated_tokens": length,
            **score,
        }
        for example, text, length, score in zip(examples, texts, lengths, scores, strict=True)
    ]
    return Evaluation(rows, mean_scores(scores), seconds, sum(lengths))
