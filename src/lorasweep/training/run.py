"""One run from start to finish: set up, fit, save the adapter, evaluate, write the result.

The zero-shot evaluation of the base model follows the same path without the training half.
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lorasweep.config.plan import EvalSpec, RunSpec, TestSpec
from lorasweep.config.schema import SweepConfig
from lorasweep.data.prompts import Encoded, PromptFormatter
from lorasweep.data.sources import Example
from lorasweep.data.token_cache import TokenCache
from lorasweep.evaluation.evaluate import Evaluation, evaluate
from lorasweep.faults import fault_point
from lorasweep.store.store import (
    DONE,
    replace_dir,
    write_json,
    write_jsonl,
    write_yaml,
)
from lorasweep.training.loop import Checkpoints, StepLog, fit
from lorasweep.training.model import device


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


@dataclass
class Hooks:
    """Progress callbacks the caller may set (a progress bar, a tracker)."""

    on_step: Any = lambda log: None
    on_eval_batch: Any = lambda n: None


def train_and_evaluate(
    spec: RunSpec, resources: SweepResources, run_dir: Path, hooks: Hooks
) -> dict[str, Any]:
    """Train ``spec``'s adapter, evaluate it, and write every artifact into ``run_dir``."""
    started = time.perf_counter()
    settings = spec.settings
    write_yaml(run_dir / "config.yaml", spec.resolved)

    # Set up: a fresh copy of the base model, so no run sees another's adapter.
    torch.manual_seed(settings.training.seed)
    examples = resources.train_encoded(settings.training.max_length)
    if not examples:
        raise ValueError(
            f"no training example keeps a target token within max_length="
            f"{settings.training.max_length}; the prompts alone are longer"
        )
    lora = spec.resolved["lora"]
    model = get_peft_model(
        copy.deepcopy(resources.model),
        PeftLoraConfig(
            r=lora["r"],
            lora_alpha=lora["alpha"],
            lora_dropout=lora["dropout"],
            target_modules=lora["target_modules"],
            task_type="CAUSAL_LM",
        ),
    )
    trainable, total = model.get_nb_trainable_parameters()
    setup_seconds = time.perf_counter() - started

    # Fit.
    _reset_peak_memory()
    fit_start = time.perf_counter()
    checkpoints = Checkpoints(run_dir / "checkpoint.pt", resources.sweep.execution.checkpoint_every)
    history: list[StepLog] = fit(
        model,
        examples,
        settings.training,
        resources.tokenizer.pad_token_id,
        hooks.on_step,
        checkpoints,
    )
    train_seconds = time.perf_counter() - fit_start
    write_jsonl(run_dir / "train_log.jsonl", (log.as_dict() for log in history))

    # Save the adapter in PEFT format, atomically.
    staging = Path(tempfile.mkdtemp(prefix=".adapter-", dir=run_dir))
    model.save_pretrained(staging)
    replace_dir(staging, run_dir / "adapter")
    adapter_bytes = sum(f.stat().st_size for f in (run_dir / "adapter").rglob("*") if f.is_file())

    # Evaluate. Merging folds the adapter into the weights: the same function, faster to decode.
    merged = model.merge_and_unload()
    evaluation = _evaluate(merged, resources, hooks)
    del merged, model

    # Throughput counts the steps trained in this process only; a resumed run trained fewer.
    tokens = sum(log.tokens for log in history[checkpoints.resumed_at :])
    efficiency = {
        "trainable_params": trainable,
        "total_params": total,
        "adapter_bytes": adapter_bytes,
        "train_tokens": tokens,
        "train_tokens_per_s": tokens / train_seconds if train_seconds else None,
        "peak_memory_bytes": _peak_memory(),
        "eval_tokens_per_s": evaluation.generated_tokens / evaluation.seconds,
    }
    timings = {
        "setup_s": setup_seconds,
        "train_s": train_seconds,
        "eval_s": evaluation.seconds,
        "total_s": time.perf_counter() - started,
    }
    extra = {
        "train_steps": len(history),
        "resumed_at_step": checkpoints.resumed_at,
        "final_loss": history[-1].loss if history else None,
    }
    result = _finish(run_dir, spec.run_id, "lora", spec.labels, spec.resolved, evaluation,
                     timings, {**efficiency, **extra}, resources)  # fmt: skip
    checkpoints.remove()  # the run is done: its result and adapter are all that is needed
    return result


def evaluate_base(spec: EvalSpec, resources: SweepResources, run_dir: Path, hooks: Hooks) -> dict:
    """Evaluate the base model zero-shot with the sweep's prompt and examples."""
    started = time.perf_counter()
    write_yaml(run_dir / "config.yaml", spec.resolved)
    evaluation = _evaluate(resources.model, resources, hooks)
    timings = {"eval_s": evaluation.seconds, "total_s": time.perf_counter() - started}
    efficiency = {"eval_tokens_per_s": evaluation.generated_tokens / evaluation.seconds}
    return _finish(run_dir, spec.run_id, "base", ("zero-shot",), spec.resolved, evaluation,
                   timings, efficiency, resources)  # fmt: skip


def evaluate_test(
    spec: TestSpec, resources: SweepResources, adapter_run: Path, run_dir: Path, hooks: Hooks
) -> dict:
    """Evaluate a finished run's saved adapter on the held-out test split."""
    started = time.perf_counter()
    write_yaml(run_dir / "config.yaml", spec.resolved)
    model = PeftModel.from_pretrained(copy.deepcopy(resources.model), adapter_run / "adapter")
    evaluation = _evaluate(model.merge_and_unload(), resources, hooks, test=True)
    timings = {"eval_s": evaluation.seconds, "total_s": time.perf_counter() - started}
    efficiency = {"eval_tokens_per_s": evaluation.generated_tokens / evaluation.seconds}
    labels = (f"test split: {spec.role}", spec.adapter_of)
    return _finish(run_dir, spec.run_id, "test", labels, spec.resolved, evaluation,
                   timings, efficiency, resources)  # fmt: skip


def _evaluate(
    model: PreTrainedModel, resources: SweepResources, hooks: Hooks, test: bool = False
) -> Evaluation:
    sweep = resources.sweep
    return evaluate(
        model,
        resources.tokenizer,
        resources.test_examples if test else resources.eval_examples,
        resources.test_prompts if test else resources.eval_prompts,
        resources.max_new_tokens,
        sweep.generation.batch_size,
        sweep.evaluation.use_stemmer,
        hooks.on_eval_batch,
    )


def _finish(
    run_dir: Path,
    run_id: str,
    kind: str,
    labels: tuple[str, ...],
    resolved: dict[str, Any],
    evaluation: Evaluation,
    timings: dict[str, float],
    efficiency: dict[str, Any],
    resources: SweepResources,
) -> dict[str, Any]:
    write_jsonl(run_dir / "predictions.jsonl", evaluation.predictions)
    fault_point("writing-result")
    result = {
        "run_id": run_id,
        "kind": kind,
        "status": DONE,
        "labels": list(labels),
        "metrics": evaluation.metrics,
        "generation": {"max_new_tokens": resources.max_new_tokens},
        "timings": timings,
        "efficiency": efficiency,
        "environment": resources.environment,
        "config": resolved,
    }
    write_json(run_dir / "result.json", result)  # last: its presence marks the run done
    return result


def _reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_memory() -> int:
    """CUDA max allocated on a GPU; on the CPU the process's peak resident set size."""
    if device().type == "cuda":
        return torch.cuda.max_memory_allocated()
    info = psutil.Process().memory_info()
    return getattr(info, "peak_wset", None) or _linux_peak_rss() or info.rss


def _linux_peak_rss() -> int | None:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    except (ImportError, AttributeError):
        return None
