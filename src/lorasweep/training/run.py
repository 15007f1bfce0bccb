"""One unit from start to finish: set up, fit, save the adapter, evaluate, write the result.

The zero-shot evaluation of the base model follows the same path without the training half; a
run whose adapter is already in the store skips straight to its evaluation. Every executor
computes units through ``execute``, into a store on this machine.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import torch
from peft import PeftModel

from lorasweep.config.plan import EvalSpec, RunSpec, TestSpec, Unit
from lorasweep.evaluation.backends import describe
from lorasweep.evaluation.evaluate import Evaluation, evaluate, evaluate_with
from lorasweep.faults import fault_point
from lorasweep.store.records import AdapterRecord, RunResult, Status, UnitKind
from lorasweep.store.store import CHECKPOINT, RunStore, replace_dir, write_jsonl, write_yaml
from lorasweep.training.adapters import checkpointing, for_decoding, new_adapter, saved_adapter
from lorasweep.training.loop import Checkpoints, StepLog, fit
from lorasweep.training.model import device
from lorasweep.training.resources import SweepResources


@dataclass
class Hooks:
    """Progress callbacks the caller may set (a progress bar, a tracker)."""

    on_step: Any = lambda log: None
    on_eval_batch: Any = lambda n: None


def execute(unit: Unit, resources: SweepResources, store: RunStore, hooks: Hooks) -> RunResult:
    """Compute one unit into ``store`` and return its result record.

    An exception inside the unit is a failed unit: recorded with its error, returned, never
    raised, so that the sweep goes on. Ctrl-C records the unit as cancelled and propagates.
    """
    for folder in (store.run_dir(unit.run_id),
                   store.adapter_dir(unit.adapter_id) if unit.adapter_id else None):  # fmt: skip
        if folder is not None and folder.is_dir():
            for leftover in folder.glob(".*"):  # temporaries of a process killed mid-write
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    try:
        if unit.kind is UnitKind.ZERO_SHOT:
            return evaluate_base(unit.spec, resources, store, hooks)
        if unit.kind is UnitKind.TEST:
            return evaluate_test(unit.spec, resources, store, hooks)
        return train_and_evaluate(unit.spec, resources, store, hooks)
    except KeyboardInterrupt:
        store.write_result(unfinished_result(unit, Status.CANCELLED, "interrupted (Ctrl-C)"))
        raise
    except Exception as err:  # a failed run is a state; the sweep goes on
        error = f"{type(err).__name__}: {err}".splitlines()[0] if str(err) else type(err).__name__
        result = unfinished_result(unit, Status.FAILED, error, traceback.format_exc())
        store.write_result(result)
        return result


def unfinished_result(
    unit: Unit, status: Status, error: str, trace: str | None = None
) -> RunResult:
    """The record of a unit that did not finish: failed (with its error) or cancelled."""
    return RunResult(unit.run_id, unit.kind, status, (unit.label,), unit.spec.resolved,
                     adapter_id=unit.adapter_id, error=error, traceback=trace)  # fmt: skip


def train_and_evaluate(
    spec: RunSpec, resources: SweepResources, store: RunStore, hooks: Hooks
) -> RunResult:
    """Train ``spec``'s adapter unless the store has it, then evaluate it.

    An adapter already in the store (trained for other generation or evaluation settings, or
    by a run killed during its evaluation) is loaded and evaluated, not trained again.
    """
    started = time.perf_counter()
    write_yaml(store.run_dir(spec.run_id) / "config.yaml", spec.resolved)
    record = store.adapter(spec.adapter_id)
    if record is None:
        torch.manual_seed(spec.settings.training.seed)  # the adapter's initial weights
        with new_adapter(resources.model, spec.resolved["lora"]) as model:
            record = train_adapter(model, spec, resources, store, hooks)
            if resources.engine is None:  # hf: decode the adapter just trained, merged
                with for_decoding(model) as decoder:
                    evaluation = _evaluate(decoder, resources, hooks)
        if resources.engine is not None:  # another backend reads the adapter as saved
            evaluation = _evaluate_saved(resources, store.adapter_dir(spec.adapter_id), hooks)
    else:
        evaluation = _evaluate_saved(resources, store.adapter_dir(spec.adapter_id), hooks)
    timings = {**record.timings, "eval_s": evaluation.seconds,
               "total_s": time.perf_counter() - started}  # fmt: skip
    extra = {"train_steps": record.train_steps, "resumed_at_step": record.resumed_at_step,
             "final_loss": record.final_loss}  # fmt: skip
    efficiency = {**record.efficiency, **_eval_efficiency(evaluation), **extra}
    return _finish(store, spec.run_id, UnitKind.TRAIN, spec.labels, spec.resolved, evaluation,
                   timings, efficiency, resources, spec.adapter_id)  # fmt: skip


def train_adapter(
    model: PeftModel, spec: RunSpec, resources: SweepResources, store: RunStore, hooks: Hooks
) -> AdapterRecord:
    """Train the run's adapter, freshly added to the shared base, and save it in the store."""
    started = time.perf_counter()
    settings = spec.settings
    folder = store.adapter_dir(spec.adapter_id)
    write_yaml(folder / "config.yaml", spec.adapter_resolved)
    examples = resources.train_encoded(settings.training.max_length)
    if not examples:
        raise ValueError(
            f"no training example keeps a target token within max_length="
            f"{settings.training.max_length}; the prompts alone are longer"
        )
    trainable, total = model.get_nb_trainable_parameters()
    setup_seconds = time.perf_counter() - started

    # Fit.
    _reset_peak_memory()
    fit_start = time.perf_counter()
    checkpoints = Checkpoints(folder / CHECKPOINT, resources.sweep.execution.checkpoint_every)
    with checkpointing(resources.model, settings.training.gradient_checkpointing):
        history: list[StepLog] = fit(
            model,
            examples,
            settings.training,
            resources.tokenizer.pad_token_id,
            hooks.on_step,
            checkpoints,
        )
    # Every segment counts: a run resumed from a checkpoint adds the time trained before it.
    train_seconds = checkpoints.earlier_seconds + time.perf_counter() - fit_start
    write_jsonl(folder / "train_log.jsonl", (log.as_dict() for log in history))

    # Save the adapter in PEFT format, atomically, then its record.
    staging = Path(tempfile.mkdtemp(prefix=".adapter-", dir=folder))
    model.save_pretrained(staging)
    replace_dir(staging, folder / "adapter")
    adapter_bytes = sum(f.stat().st_size for f in (folder / "adapter").rglob("*") if f.is_file())
    tokens = sum(log.tokens for log in history)
    record = AdapterRecord(
        adapter_id=spec.adapter_id,
        config=spec.adapter_resolved,
        timings={"setup_s": setup_seconds, "train_s": train_seconds},
        efficiency={
            "trainable_params": trainable,
            "total_params": total,
            "adapter_bytes": adapter_bytes,
            "train_tokens": tokens,
            "train_tokens_per_s": tokens / train_seconds if train_seconds else None,
            "peak_memory_bytes": _peak_memory(),
        },
        train_steps=len(history),
        resumed_at_step=checkpoints.resumed_at,
        final_loss=history[-1].loss if history else None,
    )
    store.write_adapter(record)
    checkpoints.remove()  # the adapter is saved: its record and files are all that is needed
    return record


def evaluate_base(
    spec: EvalSpec, resources: SweepResources, store: RunStore, hooks: Hooks
) -> RunResult:
    """Evaluate the base model zero-shot with the sweep's prompt and examples."""
    started = time.perf_counter()
    write_yaml(store.run_dir(spec.run_id) / "config.yaml", spec.resolved)
    if resources.engine is not None:
        evaluation = _evaluate_engine(None, resources, hooks)
    else:
        evaluation = _evaluate(resources.model, resources, hooks)
    timings = {"eval_s": evaluation.seconds, "total_s": time.perf_counter() - started}
    return _finish(store, spec.run_id, UnitKind.ZERO_SHOT, ("zero-shot",), spec.resolved,
                   evaluation, timings, _eval_efficiency(evaluation), resources)  # fmt: skip


def evaluate_test(
    spec: TestSpec, resources: SweepResources, store: RunStore, hooks: Hooks
) -> RunResult:
    """Evaluate a finished run's saved adapter on the held-out test split."""
    started = time.perf_counter()
    write_yaml(store.run_dir(spec.run_id) / "config.yaml", spec.resolved)
    evaluation = _evaluate_saved(resources, store.adapter_dir(spec.adapter_id), hooks, test=True)
    timings = {"eval_s": evaluation.seconds, "total_s": time.perf_counter() - started}
    return _finish(store, spec.run_id, UnitKind.TEST, spec.labels, spec.resolved, evaluation,
                   timings, _eval_efficiency(evaluation), resources, spec.adapter_id)  # fmt: skip


def _evaluate_saved(
    resources: SweepResources, adapter_folder: Path, hooks: Hooks, test: bool = False
) -> Evaluation:
    """Evaluate the adapter stored in ``adapter_folder`` on the shared base model."""
    if resources.engine is not None:
        return _evaluate_engine(adapter_folder / "adapter", resources, hooks, test)
    with (
        saved_adapter(resources.model, adapter_folder / "adapter") as model,
        for_decoding(model) as decoder,
    ):
        return _evaluate(decoder, resources, hooks, test)


def _eval_efficiency(evaluation: Evaluation) -> dict[str, float]:
    return {"eval_tokens_per_s": evaluation.generated_tokens / evaluation.seconds}


def _evaluate(
    model: torch.nn.Module, resources: SweepResources, hooks: Hooks, test: bool = False
) -> Evaluation:
    sweep = resources.sweep
    return evaluate(
        model,
        resources.tokenizer,
        resources.test_examples if test else resources.eval_examples,
        resources.test_prompts if test else resources.eval_prompts,
        resources.max_new_tokens,
        sweep.generation.batch_size,
        sweep.evaluation,
        hooks.on_eval_batch,
    )


def _evaluate_engine(
    adapter: Path | None, resources: SweepResources, hooks: Hooks, test: bool = False
) -> Evaluation:
    """Evaluate through the sweep's engine (``generation.backend`` other than hf)."""
    if adapter is not None and not adapter.is_dir():
        raise FileNotFoundError(f"the adapter is missing from {adapter.parent}")
    prompts = resources.test_prompts if test else resources.eval_prompts

    def decode(after_batch):
        return resources.engine.generate(prompts, adapter, resources.max_new_tokens, after_batch)

    examples = resources.test_examples if test else resources.eval_examples
    return evaluate_with(decode, examples, resources.sweep.evaluation, hooks.on_eval_batch)


def _finish(
    store: RunStore,
    run_id: str,
    kind: UnitKind,
    labels: tuple[str, ...],
    resolved: dict[str, Any],
    evaluation: Evaluation,
    timings: dict[str, float],
    efficiency: dict[str, Any],
    resources: SweepResources,
    adapter_id: str | None = None,
) -> RunResult:
    write_jsonl(store.run_dir(run_id) / "predictions.jsonl", evaluation.predictions)
    fault_point("writing-result")
    result = RunResult(
        run_id=run_id,
        kind=kind,
        status=Status.DONE,
        labels=labels,
        config=resolved,
        adapter_id=adapter_id,
        metrics=evaluation.metrics,
        generation={"max_new_tokens": resources.max_new_tokens, **describe(resources.engine)},
        timings=timings,
        efficiency=efficiency,
        environment=resources.environment,
    )
    store.write_result(result)  # last: its presence marks the run done
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
