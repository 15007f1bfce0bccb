"""lorasweep against the plain scripts it replaces, on the same tiny model and data, in one process.

Three measurements, each on the built-in tiny model and corpus (the demo's settings):

* sweep overhead: a demo sweep (``run_sweep`` then the report, as ``lorasweep run`` does), and
  the share of its wall time spent outside training and generation;
* training: the transformers ``Trainer`` with every batch padded to ``max_length`` (the common
  fine-tuning script) against lorasweep's ``fit``; same LoRA init, adapter, learning-rate
  schedule, steps and batch size, target-only loss; real (non-padding) tokens per second and the
  two loss curves;
* evaluation: ``transformers.pipeline("text-generation")`` with batch size 8 and
  ``max_new_tokens=256`` (the common evaluation script) against lorasweep's ``generate`` with the
  sweep's batch size and ``max_new_tokens: auto``, on every model the sweep evaluated (the base
  model zero-shot and each run's merged adapter); wall time, and whether the predictions are
  the same: identical where the pipeline's ended within lorasweep's cap, lorasweep's equal to
  the pipeline's first tokens up to the cap where it did not.

The built-in model comes from lorasweep's normal cache (``$LORASWEEP_CACHE``, else
``~/.cache/lorasweep``); it is built there first if missing (about 3 minutes on 2 cores).

Usage::

    LORASWEEP_CACHE=/tmp/exp/cache python benchmarks/compare_plain.py

Exit status 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from statistics import fmean
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

import torch  # noqa: E402
import transformers  # noqa: E402
from peft import get_peft_model  # noqa: E402
from rich.console import Console  # noqa: E402
from transformers import (  # noqa: E402
    DataCollatorForSeq2Seq,
    PrinterCallback,
    Trainer,
    TrainingArguments,
    pipeline,
)

from lorasweep.config.load import read_yaml, validate_sweep  # noqa: E402
from lorasweep.config.plan import Plan, RunSpec, build_plan  # noqa: E402
from lorasweep.config.schema import TrainingConfig  # noqa: E402
from lorasweep.evaluation.generate import generate, stop_token_ids  # noqa: E402
from lorasweep.executors.driver import run_sweep  # noqa: E402
from lorasweep.executors.local import prepare  # noqa: E402
from lorasweep.report.markdown import write_report  # noqa: E402
from lorasweep.store.store import RunStore  # noqa: E402
from lorasweep.training.adapters import for_decoding, peft_config, saved_adapter  # noqa: E402
from lorasweep.training.loop import fit  # noqa: E402
from lorasweep.training.run import SweepResources  # noqa: E402

# The targets: what "fast" means here.
EVAL_SPEEDUP_TARGET = 5.0  # lorasweep generation at least 5x faster than the pipeline ...
SAME_PREDICTIONS_TARGET = 1.0  # ... with identical predictions where the pipeline stopped at EOS
TRAIN_SPEEDUP_TARGET = 2.0  # real-token throughput at least 2x the padded Trainer's ...
# ... with the same loss curve: the two smoothed curves differ by at most 1.5x what batch order
# alone does to lorasweep's curve (the Trainer draws its batches in another order).
LOSS_TOLERANCE = 1.5
OVERHEAD_TARGET = 0.10  # at most 10% of a sweep's wall time outside training and generation

PLAIN_EVAL_BATCH, PLAIN_MAX_NEW_TOKENS = 8, 256  # the common evaluation script's settings
SMOOTHING = 10  # loss curves are compared as trailing means over this many steps


@dataclass
class Measured:
    """One row of the final table."""

    name: str
    plain: str
    lorasweep: str
    ratio: str
    target: str
    passed: bool | None  # None: informative only


def demo_config(steps: int | None, eval_size: int | None) -> dict[str, Any]:
    """The shipped demo config, optionally with fewer training steps or evaluation examples."""
    with resources.as_file(resources.files("lorasweep.builtin").joinpath("demo.yaml")) as path:
        raw = read_yaml(path)
    if steps is not None:
        raw["baseline"]["training"]["max_steps"] = steps
        raw["baseline"]["training"]["warmup_steps"] = min(
            raw["baseline"]["training"].get("warmup_steps", 0), steps // 5
        )
    if eval_size is not None:
        raw["evaluation"]["size"] = eval_size
    return raw


# --- sweep overhead --------------------------------------------------------------------------


def bench_sweep(raw: dict[str, Any], out: Path) -> tuple[list[Measured], list[str]]:
    """Run a demo sweep in this process; time outside training and generation over wall time."""
    sweep = validate_sweep(raw, source="demo.yaml")
    plan = build_plan(sweep)
    store = RunStore(out)
    console = Console(quiet=True)
    started = time.perf_counter()
    run_sweep(plan, store, console)
    swept = time.perf_counter()
    write_report(store)
    wall = time.perf_counter() - started

    results = [r for r in (store.result(p.name) for p in store.root.glob("runs/*")) if r]
    failed = [r.run_id for r in results if not r.done]
    if failed:
        raise RuntimeError(f"sweep runs failed: {failed}")
    train = sum(r.timings.get("train_s", 0.0) for r in results)
    gen = sum(r.timings["eval_s"] for r in results)
    in_runs = sum(r.timings["total_s"] for r in results)
    setup = sum(r.timings.get("setup_s", 0.0) for r in results)
    overhead = (wall - train - gen) / wall
    steps = plan.runs[0].resolved["training"]["max_steps"]
    lines = [
        f"sweep: {len(results)} runs and evaluations ({steps} steps each), wall {wall:.1f}s = "
        f"training {train:.1f}s + generation {gen:.1f}s + "
        f"other {wall - train - gen:.1f}s",
        f"  other = per-run setup (model copy, adapter) {setup:.1f}s"
        f" + adapter saving, merging and ROUGE in runs {in_runs - train - gen - setup:.1f}s"
        f" + data/model loading, follow-up planning {swept - started - in_runs:.1f}s"
        f" + report {wall - (swept - started):.1f}s",
    ]
    row = Measured(
        "sweep overhead (outside train + generate)",
        "",
        f"{overhead:.1%} of {wall:.0f}s",
        "",
        f"<= {OVERHEAD_TARGET:.0%}",
        overhead <= OVERHEAD_TARGET,
    )
    return [row], lines


# --- training ---------------------------------------------------------------------------------


def lora_model(resources: SweepResources, spec: RunSpec) -> torch.nn.Module:
    """A copy of the base model with the run's LoRA adapter, initialised from the run's seed:
    the two training loops compared here each need a model of their own."""
    torch.manual_seed(spec.settings.training.seed)
    return get_peft_model(copy.deepcopy(resources.model), peft_config(spec.resolved["lora"]))


def train_lorasweep(resources: SweepResources, spec: RunSpec, seed: int | None = None):
    """lorasweep's ``fit``; ``seed`` changes only the batch order (not the LoRA init)."""
    config = spec.settings.training
    if seed is not None:
        config = config.model_copy(update={"seed": seed})
    model = lora_model(resources, spec)
    examples = resources.train_encoded(config.max_length)
    started = time.perf_counter()
    history = fit(model, examples, config, resources.tokenizer.pad_token_id)
    seconds = time.perf_counter() - started
    tokens = sum(log.tokens for log in history)
    return model, [log.loss for log in history], tokens, seconds


def trainer_arguments(config: TrainingConfig, work: Path, **extra) -> dict[str, Any]:
    """TrainingArguments for lorasweep's schedule, steps, batch and clipping (real tokens
    counted), for every Trainer-based side of the benchmarks."""
    return dict(
        output_dir=str(work),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm if config.max_grad_norm is not None else 0.0,
        seed=config.seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
        use_cpu=not torch.cuda.is_available(),
        **extra,
    )


def train_plain(resources: SweepResources, spec: RunSpec, work: Path):
    """The common script: ``Trainer`` with a collator that pads every batch to ``max_length``."""
    config = spec.settings.training
    tokenizer = resources.tokenizer
    tokenizer.padding_side = "right"
    examples = resources.train_encoded(config.max_length)
    dataset = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    collator = DataCollatorForSeq2Seq(
        tokenizer, padding="max_length", max_length=config.max_length, label_pad_token_id=-100
    )
    args = TrainingArguments(**trainer_arguments(config, work / "trainer"))
    model = lora_model(resources, spec)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    trainer.remove_callback(PrinterCallback)  # the loss curve is printed below, once
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return losses, trainer.state.num_input_tokens_seen, seconds


def smoothed(losses: list[float], window: int = SMOOTHING) -> list[float]:
    """Trailing mean over ``window`` steps (fewer at the start)."""
    return [fmean(losses[max(0, i + 1 - window) : i + 1]) for i in range(len(losses))]


def curve_gap(a: list[float], b: list[float], window: int = SMOOTHING) -> float:
    """Mean absolute difference of two smoothed loss curves, from the first full window on."""
    a, b = smoothed(a, window), smoothed(b, window)
    n = min(len(a), len(b))
    pairs = zip(a[window - 1 : n], b[window - 1 : n], strict=True)
    return fmean(abs(x - y) for x, y in pairs)


def bench_training(resources: SweepResources, spec: RunSpec, work: Path):
    plain_losses, plain_tokens, plain_s = train_plain(resources, spec, work)
    model, ours, tokens, seconds = train_lorasweep(resources, spec)
    # The noise floor: lorasweep against itself with only the batch order changed.
    seed = spec.settings.training.seed
    floors = [curve_gap(ours, train_lorasweep(resources, spec, seed + k)[1]) for k in (1, 2)]
    tolerance = LOSS_TOLERANCE * fmean(floors)
    plain_rate, rate = plain_tokens / plain_s, tokens / seconds
    gap = curve_gap(ours, plain_losses)
    steps = len(ours)
    shown = sorted({1, SMOOTHING, steps // 4, steps // 2, 3 * steps // 4, steps})
    lines = [
        f"training: {steps} steps of {spec.settings.training.batch_size} examples; real tokens "
        f"{plain_tokens:,} (Trainer, padded to {spec.settings.training.max_length}) and "
        f"{tokens:,} (lorasweep, length-grouped batches)",
        f"  loss, trailing mean of {SMOOTHING} steps:",
        "    step      " + "".join(f"{s:>7}" for s in shown),
        "    Trainer   " + "".join(f"{smoothed(plain_losses)[s - 1]:7.3f}" for s in shown),
        "    lorasweep " + "".join(f"{smoothed(ours)[s - 1]:7.3f}" for s in shown),
        f"  mean |difference| of the smoothed curves from step {SMOOTHING}: {gap:.3f} nats; "
        f"lorasweep against itself with another batch order: "
        + ", ".join(f"{f:.3f}" for f in floors)
        + f"; tolerance {LOSS_TOLERANCE:g} x their mean = {tolerance:.3f}",
    ]
    rows = [
        Measured(
            "training: real tokens/s",
            f"{plain_rate:,.0f}",
            f"{rate:,.0f}",
            f"{rate / plain_rate:.2f}x",
            f">= {TRAIN_SPEEDUP_TARGET:g}x",
            rate / plain_rate >= TRAIN_SPEEDUP_TARGET,
        ),
        Measured(
            "training: wall time",
            f"{plain_s:.1f}s",
            f"{seconds:.1f}s",
            f"{plain_s / seconds:.2f}x",
            "",
            None,
        ),  # fmt: skip
        Measured(
            "training: loss curve gap (smoothed)",
            "",
            f"{gap:.3f} nats",
            "",
            f"<= {tolerance:.3f} (batch-order noise x {LOSS_TOLERANCE:g})",
            gap <= tolerance,
        ),
    ]
    return model, rows, lines


# --- evaluation -------------------------------------------------------------------------------


@dataclass
class Evaluated:
    """One model evaluated both ways on the same prompts."""

    name: str
    plain_s: float
    generate_s: float  # lorasweep with transformers' generate (``lean=False``), for reference
    lean_s: float  # lorasweep as a sweep runs it
    plain_tokens: list[list[int]]  # the pipeline's new tokens, up to its first stop token
    texts: list[str]
    lengths: list[int]

    def compared(self, cap: int, decode) -> tuple[int, int, int, int]:
        """Counts: (identical, of those the pipeline ended within the cap; lorasweep's equal to
        the pipeline's first ``cap`` tokens, of those it did not)."""
        same = of = same_prefix = past = 0
        for tokens, text, length in zip(self.plain_tokens, self.texts, self.lengths, strict=True):
            kept = tokens[:cap]
            match = length == len(kept) and text == decode(kept)
            if len(tokens) < cap:
                of, same = of + 1, same + match
            else:
                past, same_prefix = past + 1, same_prefix + match
        return same, of, same_prefix, past


def generate_plain(model, tokenizer, chats, prompts, stops, max_new_tokens=PLAIN_MAX_NEW_TOKENS):
    """The common script: a text-generation pipeline over the chats, in their order.

    It returns token ids (``return_tensors=True``, which only skips decoding to text) so that
    its outputs can be compared with lorasweep's token for token: each row is the batch's left
    padding, the prompt (checked to be lorasweep's), then the new tokens.
    """
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    started = time.perf_counter()
    outputs = generator(
        chats,
        batch_size=PLAIN_EVAL_BATCH,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        return_tensors=True,
    )
    seconds = time.perf_counter() - started
    new_tokens = []
    for output, prompt in zip(outputs, prompts, strict=True):
        row = list(output[0]["generated_token_ids"])
        start = next(i for i, t in enumerate(row) if t != tokenizer.pad_token_id)
        if row[start : start + len(prompt)] != prompt:
            raise RuntimeError("the pipeline read another prompt than lorasweep")
        new = row[start + len(prompt) :]
        new_tokens.append(new[: next((k for k, t in enumerate(new) if t in stops), len(new))])
    return new_tokens, seconds


def evaluate_both(name, model, resources: SweepResources, repeats: int) -> Evaluated:
    """Each side ``repeats`` times, in turn; the fastest time of each counts (timeit's rule: on
    a shared machine, slower repeats measure the other processes, not the code)."""
    tokenizer, prompts = resources.tokenizer, resources.eval_prompts
    chats = [
        [{"role": "user", "content": resources.formatter.user_message(e.input)}]
        for e in resources.eval_examples
    ]
    cap, batch_size = resources.max_new_tokens, resources.sweep.generation.batch_size
    stops = stop_token_ids(model, tokenizer)
    plain_s = generate_s = lean_s = float("inf")
    for _ in range(repeats):
        plain, seconds = generate_plain(model, tokenizer, chats, prompts, stops)
        plain_s = min(plain_s, seconds)
        started = time.perf_counter()
        generate(model, tokenizer, prompts, cap, batch_size, lean=False)
        generate_s = min(generate_s, time.perf_counter() - started)
        started = time.perf_counter()
        texts, lengths = generate(model, tokenizer, prompts, cap, batch_size)
        lean_s = min(lean_s, time.perf_counter() - started)
    return Evaluated(name, plain_s, generate_s, lean_s, plain, texts, lengths)


def sweep_models(resources: SweepResources, store: Path | None, trained):
    """The models a sweep evaluates: the base model zero-shot, then each run's adapter as the
    sweep decodes it (merged into the shared base, which is restored after); without a sweep,
    the model the training comparison trained stands in for the runs."""
    yield "zero-shot", resources.model
    if store is None:
        yield "fine-tuned (80-step baseline)", trained
        return
    runs = RunStore(store)
    for run in sorted(store.glob("runs/run-*")):
        result = runs.result(run.name)
        folder = runs.adapter_dir(result.adapter_id) / "adapter"
        with saved_adapter(resources.model, folder) as adapter, for_decoding(adapter) as model:
            yield ", ".join(result.labels), model


def bench_evaluation(resources: SweepResources, store: Path | None, trained, repeats: int):
    tokenizer = resources.tokenizer
    cap, batch_size = resources.max_new_tokens, resources.sweep.generation.batch_size
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True).strip()  # noqa: E731
    generate(resources.model, tokenizer, resources.eval_prompts[:2], 4, 2)  # warm-up, untimed
    models = sweep_models(resources, store, trained)
    evaluated = [evaluate_both(name, model, resources, repeats) for name, model in models]

    n = len(resources.eval_prompts)
    lines = [
        f"evaluation: {len(evaluated)} models x {n} examples; pipeline batch {PLAIN_EVAL_BATCH}, "
        f"max_new_tokens {PLAIN_MAX_NEW_TOKENS}; lorasweep batch {batch_size}, max_new_tokens "
        f"auto = {cap}; fastest of {repeats} runs each; 'generate' is lorasweep's batching and "
        f"cap with transformers' generate in place of lorasweep's decoder",
        f"  {'model':<34}{'pipeline':>9}{'generate':>9}{'lorasweep':>10}{'ratio':>7}"
        f"  ended < {cap}: identical   ran on: lorasweep = first {cap}",
    ]
    for e in evaluated:
        same, of, same_prefix, past = e.compared(cap, decode)
        lines.append(
            f"  {e.name[:33]:<34}{e.plain_s:8.2f}s{e.generate_s:8.2f}s{e.lean_s:9.2f}s"
            f"{e.plain_s / e.lean_s:6.1f}x  {same:>4}/{of:<4}{'':>14}{same_prefix:>4}/{past}"
        )

    def total(subset, field):
        return sum(getattr(e, field) for e in subset)

    tuned = evaluated[1:]
    counts = [e.compared(cap, decode) for e in evaluated]
    same, of = sum(c[0] for c in counts), sum(c[1] for c in counts)
    same_prefix, past = sum(c[2] for c in counts), sum(c[3] for c in counts)
    plain_s, lean_s = total(evaluated, "plain_s"), total(evaluated, "lean_s")
    ratio = plain_s / lean_s
    rows = [
        Measured(
            f"evaluation: wall time, the sweep's {len(evaluated)} models",
            f"{plain_s:.1f}s",
            f"{lean_s:.1f}s",
            f"{ratio:.2f}x",
            f">= {EVAL_SPEEDUP_TARGET:g}x",
            ratio >= EVAL_SPEEDUP_TARGET,
        ),
        Measured(
            f"  of which the {len(tuned)} fine-tuned",
            f"{total(tuned, 'plain_s'):.1f}s",
            f"{total(tuned, 'lean_s'):.1f}s",
            f"{total(tuned, 'plain_s') / total(tuned, 'lean_s'):.2f}x",
            "",
            None,
        ),
        Measured(
            "  lorasweep with transformers' generate",
            f"{plain_s:.1f}s",
            f"{total(evaluated, 'generate_s'):.1f}s",
            f"{plain_s / total(evaluated, 'generate_s'):.2f}x",
            "",
            None,
        ),
        Measured(
            f"evaluation: predictions ended within {cap} tokens identical",
            "",
            f"{same}/{of} ({same / of:.0%})" if of else "none",
            "",
            "100%",
            same == of > 0,
        ),
        Measured(
            f"evaluation: longer ones, lorasweep's = the first {cap} tokens",
            "",
            f"{same_prefix}/{past}",
            "",
            "100%",
            same_prefix == past,
        ),
    ]
    return rows, lines


# --- main -------------------------------------------------------------------------------------


def print_table(rows: list[Measured]) -> None:
    print("| measurement | plain | lorasweep | ratio | target | result |")
    print("|---|---:|---:|---:|---|---|")
    for r in rows:
        result = "" if r.passed is None else ("PASS" if r.passed else "FAIL")
        print(f"| {r.name} | {r.plain} | {r.lorasweep} | {r.ratio} | {r.target} | {result} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-steps", type=int, default=80, help="steps per training run")
    parser.add_argument("--eval-size", type=int, default=100, help="evaluation examples")
    parser.add_argument(
        "--sweep-steps", type=int, help="steps per run of the demo sweep (default: the demo's 300)"
    )
    parser.add_argument("--skip-sweep", action="store_true", help="training and evaluation only")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="evaluations timed per model and side (fastest counts)",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    print(
        f"lorasweep vs plain scripts, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), transformers "
        f"{transformers.__version__}; load average {os.getloadavg()[0]:.2f}"
    )
    started = time.perf_counter()
    rows: list[Measured] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lorasweep-bench-") as tmp:
        work = Path(tmp)
        # The sweep first, while nothing is cached in this process yet (as in `lorasweep run`).
        if not args.skip_sweep:
            measured, lines = bench_sweep(demo_config(args.sweep_steps, None), work / "sweep")
            rows, notes = rows + measured, notes + lines
        plan: Plan = build_plan(validate_sweep(demo_config(args.train_steps, args.eval_size)))
        resources = prepare(plan, Console(quiet=True))
        model, measured, lines = bench_training(resources, plan.run(plan.baseline_id), work)
        rows, notes = rows + measured, notes + lines
        # Both evaluate what the sweep evaluated: zero-shot, and each run's adapter, merged.
        store = None if args.skip_sweep else work / "sweep"
        merged = model.merge_and_unload().eval()
        measured, lines = bench_evaluation(resources, store, merged, args.repeats)
        rows, notes = rows + measured, notes + lines
    print()
    for line in notes:
        print(line)
    print()
    print_table(rows)
    print(
        f"\n{time.perf_counter() - started:.0f}s in all; load average now "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
        + " (1, 5, 15 min)"
    )
    return 0 if all(r.passed is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
