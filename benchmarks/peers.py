"""lorasweep against the peers a user would pick, at two model sizes, in one process.

At each size (the built-in tiny model, and a randomly initialised Llama of about ``--size``
million parameters built here, no download) on the built-in corpus with the demo's settings:

* training: real (non-padding) tokens per second of lorasweep's ``fit`` (packing off, the
  default, and on) against TRL's ``SFTTrainer`` (padded to each batch's longest, padding-free,
  and packing with position ids) and the transformers ``Trainer`` padded to ``max_length``.
  Every side starts from the same LoRA initialisation with the same schedule, steps, batch
  size, clipping and target-only loss. A step's rate is its real tokens over the time since
  the previous step ended. Every side trains once for the full steps, then ``--rounds`` - 1
  more times for ``--round-steps`` steps, each round in the reverse order of the one before;
  the median over every round's steps after its first counts, so that a burst of another
  process's work on this shared machine moves a few steps of several sides, not one figure. The loss
  curves must match within 1.5x the gap that batch order alone makes (lorasweep against itself
  with another seed), as in ``compare_plain.py``.
* evaluation: lorasweep's ``generate`` against transformers' ``generate`` with lorasweep's
  batch size and length sorting, greedy, the same cap, on the same prompts, alternated
  ``--repeats`` times (the median counts); the tokens must be identical, apart from near-ties
  (the top two logits within 1e-4 where the two first differ), which are counted and shown.

Targets, at the larger size: training at least 1.0x TRL's fastest configuration and at least
2x the padded Trainer; evaluation at least 2x ``generate`` with identical tokens.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/peers.py              # about 11 minutes, 2 cores
    OMP_WAIT_POLICY=PASSIVE python benchmarks/peers.py --size 200   # another size

Exit status 0 when every target is met, 1 otherwise. Needs TRL (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from statistics import fmean, median

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
sys.path.insert(0, str(Path(__file__).resolve().parent))  # compare_plain, run from anywhere

import torch  # noqa: E402
import transformers  # noqa: E402
from compare_plain import LOSS_TOLERANCE, curve_gap, demo_config, trainer_arguments  # noqa: E402
from peft import get_peft_model  # noqa: E402
from rich.console import Console  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback  # noqa: E402

from lorasweep.config.load import validate_sweep  # noqa: E402
from lorasweep.config.plan import build_plan  # noqa: E402
from lorasweep.config.schema import TrainingConfig  # noqa: E402
from lorasweep.data.prompts import Encoded  # noqa: E402
from lorasweep.evaluation.generate import generate  # noqa: E402
from lorasweep.executors.local import prepare  # noqa: E402
from lorasweep.training.adapters import peft_config  # noqa: E402
from lorasweep.training.loop import StepLog, fit  # noqa: E402

TRAIN_VS_TRL_TARGET = 1.0  # lorasweep's real tokens/s over TRL's fastest configuration
TRAIN_VS_PADDED_TARGET = 2.0  # ... over the Trainer padded to max_length
EVAL_VS_GENERATE_TARGET = 2.0  # lorasweep's evaluation wall time over transformers' generate
NEAR_TIE = 1e-4  # top-two logit gap under which a greedy choice may flip with float order
SMOOTHING = 10  # loss curves compared as trailing means over this many steps (fewer if short)


def progress(line: str) -> None:
    """A line on stderr while the benchmark runs (the results go to stdout at the end)."""
    print(f"  [{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


# --- models ------------------------------------------------------------------------------------


def llama_config(millions: float, vocab: int, pad_id: int, eos_id: int) -> LlamaConfig:
    """The shallowest Llama of at least ``millions`` parameters at Pythia's width for its size
    (512 under 100M, 768 under 300M, 1024 above), head size 64, 4 query heads per key-value
    head, SwiGLU width 8/3 of the hidden size, untied embeddings: layers are added one by one."""
    hidden = 512 if millions < 100 else 768 if millions < 300 else 1024
    heads = hidden // 64
    for layers in range(1, 129):
        config = LlamaConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=64 * round(8 * hidden / 3 / 64),
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads // 4,
            head_dim=64,
            max_position_embeddings=2048,
            tie_word_embeddings=False,
            pad_token_id=pad_id,
            eos_token_id=eos_id,
            bos_token_id=None,
        )
        if parameters(config) >= millions * 1e6:
            return config
    raise ValueError(f"--size {millions} is beyond this script's range")


def parameters(config: LlamaConfig) -> int:
    """Parameter count of a Llama config, from its shapes (meta device: nothing allocated)."""
    with torch.device("meta"):
        return sum(p.numel() for p in LlamaForCausalLM(config).parameters())


def random_llama(config: LlamaConfig) -> LlamaForCausalLM:
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    return model


def id_tokenizer(vocab_size: int, pad_id: int, eos_id: int):
    """A real (fast) tokenizer whose token ``i`` is spelled ``"i"``: what ``generate`` and TRL
    need for a model without a vocabulary of words, and decoding spells the ids, so equal texts
    are equal tokens."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(WordLevel({str(i): i for i in range(vocab_size)}, unk_token=str(pad_id)))
    words.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=words, pad_token=str(pad_id), eos_token=str(eos_id), padding_side="right"
    )


# --- training ----------------------------------------------------------------------------------


@dataclass
class Trained:
    """One training configuration's run: per-step losses, real tokens and end times."""

    name: str
    losses: list[float]
    tokens: list[int]  # real tokens per step
    ends: list[float]  # perf_counter at each step's end
    started: float
    examples_per_step: float
    more_rates: list[float] = field(default_factory=list)  # timed steps of later rounds

    @property
    def seconds(self) -> float:
        return self.ends[-1] - self.started

    @property
    def step_rates(self) -> list[float]:
        """Real tokens/s of each step after the first (which warms caches up)."""
        durations = [b - a for a, b in zip([self.started, *self.ends], self.ends, strict=False)]
        return [t / d for t, d in zip(self.tokens[1:], durations[1:], strict=True)]

    @property
    def rate(self) -> float:
        """Median real tokens/s over every timed step, this run's and later rounds'."""
        rates = self.step_rates + self.more_rates
        return median(rates) if rates else sum(self.tokens) / self.seconds


def with_lora(base: torch.nn.Module, lora: dict, seed: int) -> torch.nn.Module:
    """A copy of ``base`` with the demo's adapter, initialised from ``seed``: every side gets
    the same starting point and none sees another's adapter."""
    torch.manual_seed(seed)
    return get_peft_model(copy.deepcopy(base), peft_config(lora))


def train_lorasweep(base, lora, examples, config: TrainingConfig, pad_id, packing=False, seed=None):
    update = {"packing": packing} | ({"seed": seed} if seed is not None else {})
    config = config.model_copy(update=update)
    model = with_lora(base, lora, 42)
    logs: list[StepLog] = []
    ends: list[float] = []

    def on_step(log: StepLog) -> None:
        logs.append(log)
        ends.append(time.perf_counter())

    started = time.perf_counter()
    fit(model, examples, config, pad_id, on_step=on_step)
    name = f"lorasweep, packing {'on' if packing else 'off'}"
    losses, tokens = [s.loss for s in logs], [s.tokens for s in logs]
    return model, Trained(name, losses, tokens, ends, started, config.batch_size)


class StepClock(TrainerCallback):
    """Each optimizer step's end time and the Trainer's running count of real tokens."""

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.seen: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())
        self.seen.append(int(state.num_input_tokens_seen))


def run_trainer(name: str, trainer, examples_per_step: float) -> Trained:
    from transformers import PrinterCallback

    clock = StepClock()
    trainer.add_callback(clock)
    trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    tokens = [b - a for a, b in zip([0, *clock.seen], clock.seen, strict=False)]
    return Trained(name, losses, tokens, clock.ends, started, examples_per_step)


def train_padded_trainer(base, lora, examples, config, tokenizer, work: Path) -> Trained:
    """The common script: ``Trainer``, every batch padded to ``max_length``."""
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    collator = DataCollatorForSeq2Seq(
        tokenizer, padding="max_length", max_length=config.max_length, label_pad_token_id=-100
    )
    dataset = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    trainer = Trainer(
        model=with_lora(base, lora, 42),
        args=TrainingArguments(**trainer_arguments(config, work)),
        train_dataset=dataset,
        data_collator=collator,
    )
    return run_trainer("Trainer, padded to max_length", trainer, config.batch_size)


TRL_CONFIGS = {
    "SFTTrainer, padded to the batch's longest": {},
    "SFTTrainer, padding_free": {"padding_free": True},
    "SFTTrainer, packing (bfd, position ids)": {"packing": True, "packing_strategy": "bfd"},
}


def train_trl(name, base, lora, examples, config, tokenizer, work: Path) -> Trained:
    """TRL's ``SFTTrainer`` on the same encoded examples, loss on the completion only.

    Packing fills rows of ``max_length`` tokens, so a step of ``batch_size`` rows would hold
    about twice the examples; its batch is cut to keep the examples per step (and so the loss
    curve's scale) close to the others'.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    options = TRL_CONFIGS[name]
    lengths = [len(e.input_ids) for e in examples]
    batch, per_step = config.batch_size, float(config.batch_size)
    if options.get("packing"):
        per_row = max(1, config.max_length // round(fmean(lengths)))
        batch = max(1, round(config.batch_size / per_row))
        per_step = batch * per_row
    dataset = Dataset.from_dict(
        {
            "input_ids": [e.input_ids for e in examples],
            "completion_mask": [[int(t != -100) for t in e.labels] for e in examples],
        }
    )
    # TRL turns bf16 autocast on by default; lorasweep and the Trainer compute in the model's
    # dtype, so the comparison does too.
    arguments = trainer_arguments(config, work, bf16=False, **options)
    arguments["per_device_train_batch_size"] = batch
    # lorasweep's encoding already cut every example to max_length; padding-free refuses one.
    max_length = None if options.get("padding_free") else config.max_length
    sft = SFTConfig(
        **arguments, max_length=max_length, completion_only_loss=True, dataset_num_proc=None
    )
    trainer = SFTTrainer(
        model=with_lora(base, lora, 42), args=sft, train_dataset=dataset, processing_class=tokenizer
    )
    return run_trainer(name, trainer, per_step)


# --- evaluation --------------------------------------------------------------------------------


@dataclass
class EvalResult:
    name: str
    lean_s: list[float] = field(default_factory=list)
    generate_s: list[float] = field(default_factory=list)
    identical: int = 0
    near_ties: list[float] = field(default_factory=list)  # top-two gaps where they differ
    other: int = 0  # differences that are no near-tie
    generated: int = 0

    @property
    def ratio(self) -> float:
        return median(self.generate_s) / median(self.lean_s)


def top_two_gap(model, prompt: list[int], common: list[int]) -> float:
    """The gap between the two largest next-token logits after ``prompt + common``."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(torch.tensor([prompt + common], device=device)).logits[0, -1].float()
    top = logits.topk(2).values
    return float(top[0] - top[1])


def bench_eval(
    name, model, tokenizer, prompts, cap, batch_size, repeats, spelled_ids=False
) -> EvalResult:
    """Alternate the two decoders ``repeats`` times; compare their tokens. With
    ``spelled_ids`` (an :func:`id_tokenizer`) each difference is checked for a near-tie."""
    result = EvalResult(name)
    generate(model, tokenizer, prompts[:2], 2, 2)  # warm-up, untimed
    generate(model, tokenizer, prompts[:2], 2, 2, lean=False)
    progress(f"evaluating {name}: {len(prompts)} prompts x {repeats} repeats x 2 decoders")
    for _ in range(repeats):
        started = time.perf_counter()
        lean, lean_lengths = generate(model, tokenizer, prompts, cap, batch_size)
        result.lean_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        plain, _ = generate(model, tokenizer, prompts, cap, batch_size, lean=False)
        result.generate_s.append(time.perf_counter() - started)
    result.generated = sum(lean_lengths)
    for prompt, ours, theirs in zip(prompts, lean, plain, strict=True):
        if ours == theirs:
            result.identical += 1
            continue
        a, b = ours.split(), theirs.split()
        pairs = enumerate(zip(a, b, strict=False))
        k = next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))
        # Words, not ids (the built-in tokenizer): a difference counts as a real one.
        gap = top_two_gap(model, prompt, [int(t) for t in a[:k]]) if spelled_ids else float("inf")
        if gap < NEAR_TIE:
            result.near_ties.append(gap)
        else:
            result.other += 1
    return result


# --- one size ----------------------------------------------------------------------------------


@dataclass
class SizeReport:
    label: str
    params: int
    trained: list[Trained]
    tolerance: float
    gaps: dict[str, float]
    evals: list[EvalResult]
    lines: list[str]


def bench_size(
    label, base, resources, config, lora, args, work, floors, repeats, ids=None
) -> SizeReport:
    """Every training side in turn, then the evaluation comparison, on ``base``; ``ids`` is the
    tokenizer for a model whose vocabulary is not the built-in tokenizer's (the same ids)."""
    tokenizer = ids or resources.tokenizer
    examples: list[Encoded] = resources.train_encoded(config.max_length)
    pad_id = tokenizer.pad_token_id
    params = sum(p.numel() for p in base.parameters())
    names = list(TRL_CONFIGS)

    def sides(cfg: TrainingConfig) -> list[Callable[[], Trained]]:
        """Every training side at ``cfg``'s steps, lorasweep's default first."""

        def trl(k: int) -> Trained:
            return train_trl(names[k], base, lora, examples, cfg, tokenizer, work / f"trl-{k}")

        return [
            lambda: train_lorasweep(base, lora, examples, cfg, pad_id)[1],
            lambda: trl(0),
            lambda: train_lorasweep(base, lora, examples, cfg, pad_id, packing=True)[1],
            lambda: trl(1),
            lambda: train_padded_trainer(base, lora, examples, cfg, tokenizer, work / "trainer"),
            lambda: trl(2),
        ]

    # Round 1 trains every side for the full steps (the loss curves); each later round trains
    # every side again for a few steps, in the reverse order of the round before, so that a
    # slow spell of this shared machine falls on several sides, and adds its timed steps.
    model, ours = train_lorasweep(base, lora, examples, config, pad_id)
    trained = [ours]
    for side in sides(config)[1:]:
        trained.append(side())
        progress(f"{label[:24]}: {trained[-1].name}, {trained[-1].seconds:.0f}s")
    short = config.model_copy(update={"max_steps": min(config.max_steps, args.round_steps)})
    for k in range(1, args.rounds):
        order = list(enumerate(sides(short)))
        for i, side in order[::-1] if k % 2 else order:
            trained[i].more_rates += side().step_rates
        progress(f"{label[:24]}: timing round {k + 1} of {args.rounds}")
    window = min(SMOOTHING, max(1, config.max_steps // 3))
    reordered = [
        train_lorasweep(base, lora, examples, config, pad_id, seed=s)[1]
        for s in range(43, 43 + floors)
    ]
    noise = [curve_gap(ours.losses, t.losses, window) for t in reordered]
    tolerance = LOSS_TOLERANCE * fmean(noise)
    gaps = {t.name: curve_gap(ours.losses, t.losses, window) for t in trained[1:]}

    prompts = resources.eval_prompts[: args.eval_size]
    cap, batch_size = resources.max_new_tokens, resources.sweep.generation.batch_size
    merged = model.merge_and_unload().eval()
    # A random model never emits EOS zero-shot (every output runs to the cap), and a few steps
    # of fine-tuning may teach it to stop at once: both are shown.
    models = [("zero-shot", base), ("fine-tuned", merged)]
    evals = [
        bench_eval(name, m, tokenizer, prompts, cap, batch_size, repeats, ids is not None)
        for name, m in models
    ]
    lines = [
        f"{label}: {params:,} parameters; {config.max_steps} steps of {config.batch_size} "
        f"examples (TRL packing: rows of {config.max_length} tokens); loss smoothed over "
        f"{window} steps; batch-order noise {', '.join(f'{n:.3f}' for n in noise)}, "
        f"tolerance {LOSS_TOLERANCE:g} x mean = {tolerance:.3f}",
        f"  {'training side':<44}{'tokens/s':>10}{'wall':>8}{'ex/step':>8}{'loss gap':>9}"
        f"{'lorasweep x':>12}",
    ]
    for t in trained:
        gap = f"{gaps[t.name]:.3f}" if t.name in gaps else "-"
        lines.append(
            f"  {t.name:<44}{t.rate:>10,.0f}{t.seconds:>7.1f}s{t.examples_per_step:>8.1f}"
            f"{gap:>9}{ours.rate / t.rate:>11.2f}x"
        )
    lines.append(
        f"  evaluation: {len(prompts)} prompts, batch {batch_size}, cap {cap} new tokens, greedy, "
        f"median of {repeats}"
    )
    for e in evals:
        lines.append(
            f"    {e.name:<12} lorasweep {median(e.lean_s):6.2f}s  "
            f"generate {median(e.generate_s):6.2f}s"
            f"  {e.ratio:5.2f}x  identical {e.identical}/{len(prompts)}, near-ties "
            f"{len(e.near_ties)}, other differences {e.other}; {e.generated:,} tokens generated"
        )
    return SizeReport(label, params, trained, tolerance, gaps, evals, lines)


def verdicts(report: SizeReport) -> list[tuple[str, str, bool]]:
    ours = report.trained[0]
    trl = [t for t in report.trained if t.name.startswith("SFTTrainer")]
    fastest = max(trl, key=lambda t: t.rate)
    padded = next(t for t in report.trained if t.name.startswith("Trainer"))
    lean = sum(median(e.lean_s) for e in report.evals)
    plain = sum(median(e.generate_s) for e in report.evals)
    same = all(e.other == 0 for e in report.evals)
    curves = all(g <= report.tolerance for g in report.gaps.values())
    return [
        (f"training vs TRL's fastest ({fastest.name})", f"{ours.rate / fastest.rate:.2f}x",
         ours.rate / fastest.rate >= TRAIN_VS_TRL_TARGET),
        ("training vs the padded Trainer", f"{ours.rate / padded.rate:.2f}x",
         ours.rate / padded.rate >= TRAIN_VS_PADDED_TARGET),
        ("loss curves within tolerance", f"max gap {max(report.gaps.values()):.3f} <= "
         f"{report.tolerance:.3f}", curves),
        ("evaluation vs generate", f"{plain / lean:.2f}x", plain / lean >= EVAL_VS_GENERATE_TARGET),
        ("evaluation tokens identical (near-ties apart)", "yes" if same else "no", same),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=100, help="millions of parameters (100)")
    parser.add_argument("--steps", type=int, default=40, help="training steps, built-in model")
    parser.add_argument("--large-steps", type=int, default=6, help="training steps, large model")
    parser.add_argument("--eval-size", type=int, default=50, help="evaluation prompts")
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations per decoder")
    parser.add_argument("--large-repeats", type=int, default=2, help="the same, large model")
    parser.add_argument("--rounds", type=int, default=2, help="training rounds per side (2)")
    parser.add_argument("--round-steps", type=int, default=3, help="steps of each later round")
    parser.add_argument("--vocab", type=int, default=32000, help="large model's vocabulary")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--skip-builtin", action="store_true", help="the large model only")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    import datasets
    import trl

    datasets.disable_progress_bars()

    print(
        f"lorasweep vs TRL and generate, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"transformers {transformers.__version__}, trl {trl.__version__}; load average "
        f"{os.getloadavg()[0]:.2f}"
    )
    started = time.perf_counter()
    plan = build_plan(validate_sweep(demo_config(args.steps, args.eval_size)))
    resources = prepare(plan, Console(quiet=True))
    spec = plan.run(plan.baseline_id)
    config, lora = spec.settings.training, spec.resolved["lora"]
    tokenizer = resources.tokenizer
    tokenizer.padding_side = "right"
    reports = []
    with tempfile.TemporaryDirectory(prefix="lorasweep-peers-") as tmp:
        if not args.skip_builtin:
            builtin = (resources.model, resources, config, lora, args, Path(tmp) / "builtin")
            reports.append(bench_size("built-in tiny model", *builtin, 2, args.repeats))
        large = llama_config(args.size, args.vocab, tokenizer.pad_token_id, tokenizer.eos_token_id)
        ids = id_tokenizer(large.vocab_size, tokenizer.pad_token_id, tokenizer.eos_token_id)
        steps = args.large_steps
        warmup = min(config.warmup_steps, steps // 5)
        large_config = config.model_copy(update={"max_steps": steps, "warmup_steps": warmup})
        label = (
            f"random Llama, hidden {large.hidden_size}, {large.num_hidden_layers} layers, "
            f"vocabulary {large.vocab_size:,}"
        )
        sized = (random_llama(large), resources, large_config, lora, args, Path(tmp) / "large")
        reports.append(bench_size(label, *sized, 2, args.large_repeats, ids=ids))
    print()
    for report in reports:
        print("\n".join(report.lines))
        print()
    print("| size | measurement | lorasweep | target | result |")
    print("|---|---|---:|---|---|")
    targets = {
        "training vs TRL's": f">= {TRAIN_VS_TRL_TARGET:g}x",
        "training vs the padded": f">= {TRAIN_VS_PADDED_TARGET:g}x",
        "evaluation vs": f">= {EVAL_VS_GENERATE_TARGET:g}x",
    }
    passed = True
    for report in reports:
        deciding = report is reports[-1]  # the targets are set at the larger size
        for name, value, ok in verdicts(report):
            target = next((t for k, t in targets.items() if name.startswith(k)), "")
            result = ("PASS" if ok else "FAIL") if deciding else ("met" if ok else "not met")
            passed &= ok or not deciding
            print(f"| {report.params / 1e6:.1f}M | {name} | {value} | {target} | {result} |")
    print(
        f"\n{time.perf_counter() - started:.0f}s in all; load average now "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
