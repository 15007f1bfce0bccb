"""What every unit of a sweep shares, loaded once per process: model, tokenizer, data."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lorasweep.cache import cache_dir
from lorasweep.config.schema import SweepConfig
from lorasweep.data.prompts import Encoded, PromptFormatter
from lorasweep.data.sources import Example, load_eval, load_train
from lorasweep.data.token_cache import TokenCache
from lorasweep.errors import UserError
from lorasweep.store.environment import environment
from lorasweep.training.model import load_model


@dataclass
class SweepResources:
    """What every run of a sweep shares, loaded once: base model, tokenizer, tokenized data."""

    sweep: SweepConfig
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    formatter: PromptFormatter
    train_examples: list[Example]
    eval_examples: list[Example]
    eval_prompts: list[list[int]]
    environment: dict[str, Any]
    test_examples: list[Example] = field(default_factory=list)
    test_prompts: list[list[int]] = field(default_factory=list)
    tokens: TokenCache | None = None  # where tokenized data is kept across processes
    engine: Any = None  # a generation backend's engine (evaluation.backends); None: hf
    _encoded: dict[int, list[Encoded]] = field(default_factory=dict)
    _max_new_tokens: int | None = None

    @property
    def max_new_tokens(self) -> int:
        """The generation cap: the config's number, or derived from the training references."""
        configured = self.sweep.generation.max_new_tokens
        if configured != "auto":
            return configured
        if self._max_new_tokens is None:
            targets = [e.target for e in self.train_examples]
            lengths = sorted(
                len(ids) for ids in self.tokenizer(targets, add_special_tokens=False)["input_ids"]
            )
            # The 99th percentile, not the maximum: one runaway reference in 15k (SAMSum has
            # some) must not make every batch that fails to stop decode hundreds of tokens.
            p99 = lengths[min(len(lengths) - 1, math.ceil(0.99 * len(lengths)) - 1)]
            self._max_new_tokens = math.ceil(1.5 * p99) + 4
        return self._max_new_tokens

    def train_encoded(self, max_length: int) -> list[Encoded]:
        """Training examples tokenized once per sweep (per max length), with at least one target
        token left after cutting."""
        if max_length not in self._encoded:
            tokens = self.tokens or TokenCache(self.formatter, root=None)
            encoded = tokens.training(self.train_examples, max_length)
            self._encoded[max_length] = [e for e in encoded if e.target_tokens > 0]
        return self._encoded[max_length]


def load_resources(
    sweep: SweepConfig,
    log: Callable[[str], None] = print,
    status: Callable[[str], AbstractContextManager[Any]] = lambda message: nullcontext(),
) -> SweepResources:
    """Load data, model and tokenizer, and tokenize the evaluation prompts (through the cache).

    Args:
        sweep: The validated sweep.
        log: Where one-line notes go (a model being built, ...).
        status: A spinner for each slow step, e.g. ``console.status``.

    Raises:
        UserError: For data, a model or a prompt the user must fix.
    """
    with status("Loading data ..."):
        train = load_train(sweep.data)
        examples = load_eval(sweep.data, sweep.evaluation)
        test = load_eval(sweep.data, sweep.test, field="test") if sweep.test else []
    with status(f"Loading model {sweep.model.name} ..."):
        model, tokenizer = load_model(sweep.model, log=log)
    try:
        formatter = PromptFormatter(tokenizer, sweep.prompt, sweep.data.input_column)
        tokens = TokenCache(formatter, cache_dir())
        prompts = tokens.prompts(examples)
        test_prompts = tokens.prompts(test) if test else []
    except ValueError as err:
        raise UserError(str(err)) from None
    return SweepResources(
        sweep, model, tokenizer, formatter, train, examples, prompts, environment(),
        test, test_prompts, tokens,
    )  # fmt: skip
