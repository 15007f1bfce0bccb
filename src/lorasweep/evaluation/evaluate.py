"""Evaluate a model on the sweep's fixed examples: generate, score, and keep every prediction."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lorasweep.config.schema import EvaluationConfig
from lorasweep.data.sources import Example
from lorasweep.evaluation.generate import generate
from lorasweep.faults import fault_point
from lorasweep.metrics.registry import scoring_for


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
    evaluation: EvaluationConfig | None = None,
    on_batch: Callable[[int], None] = lambda n: None,
) -> Evaluation:
    """Greedy predictions for ``prompts`` scored against the examples' references with the
    ``evaluation`` section's metrics (default: ROUGE). A metric that fails is left out with a
    warning; the report scores the stored predictions with it again."""

    def decode(after_batch: Callable[[int], None]) -> tuple[list[str], list[int]]:
        return generate(model, tokenizer, prompts, max_new_tokens, batch_size, after_batch)

    return evaluate_with(decode, examples, evaluation, on_batch)


def evaluate_with(
    decode: Callable[[Callable[[int], None]], tuple[list[str], list[int]]],
    examples: list[Example],
    evaluation: EvaluationConfig | None = None,
    on_batch: Callable[[int], None] = lambda n: None,
) -> Evaluation:
    """Score what ``decode(after_batch)`` generates for the examples' prompts (texts and token
    counts, in the examples' order), whichever backend generates it."""
    start = time.perf_counter()

    def after_batch(n: int) -> None:
        on_batch(n)
        fault_point("evaluation")

    texts, lengths = decode(after_batch)
    seconds = time.perf_counter() - start
    rows = [
        {
            "id": example.key,
            "input": example.input,
            "reference": example.target,
            "prediction": text,
            "generated_tokens": length,
        }
        for example, text, length in zip(examples, texts, lengths, strict=True)
    ]
    scoring = scoring_for(evaluation or EvaluationConfig())
    scored = scoring.score(rows)
    for name, reason in scored.failures.items():
        warnings.warn(f"metric {name} failed and is left out: {reason}", RuntimeWarning, 2)
    return Evaluation(scored.rows, scoring.headline(scored.rows), seconds, sum(lengths))
