"""Peak memory of a lorasweep sweep against the plain one-run script, each in its own process.

The model is a randomly initialised Llama built here (about 256M parameters by default, no
download), saved as an ordinary model folder with a small byte-level tokenizer. Two child
processes then do the same kind of work on it:

* plain: the one-run script lorasweep replaces: load the model, add a LoRA adapter, train it
  ``--steps`` steps, generate on the evaluation prompts (transformers ``generate``);
* sweep: ``lorasweep run`` on a sweep of ``--runs`` LoRA runs (an experiment over the rank,
  r = 4, 8, 16, ...) with the same steps, batch, lengths and evaluation, plus the base model
  zero-shot and the report.

Each child's peak is its own: on CUDA ``torch.cuda.max_memory_allocated``, printed by the
child; on the CPU the peak resident set size the kernel reports for that child alone
(``os.wait4``), so the two sides never share a counter.

Usage::

    python benchmarks/memory.py                       # ~256M parameters, 3 runs
    python benchmarks/memory.py --hidden 768 --layers 12 --intermediate 2048   # another size

Exit status 0 when the sweep's peak is at most ``--target`` (1.10) times the plain script's.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import yaml  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

TARGET = 1.10
PEAK = "peak_bytes"  # the line a child prints: "peak_bytes: 123"


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--intermediate", type=int, default=2816)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--runs", type=int, default=3, help="LoRA runs in the sweep")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--eval-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--target", type=float, default=TARGET)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--child", choices=["plain", "sweep"], help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build_model(args: argparse.Namespace, folder: Path) -> int:
    """A random Llama and a byte-level tokenizer in ``folder``; returns the parameter count."""
    from lorasweep.builtin.corpus import SPLIT_SEEDS, generate_dialogues
    from lorasweep.builtin.tiny_model import train_tokenizer

    dialogues = [row["dialogue"] for row in generate_dialogues(2000, SPLIT_SEEDS["train"])]
    tokenizer = train_tokenizer(dialogues, 2048)
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def sweep_config(args: argparse.Namespace, model: Path) -> dict:
    ranks = [4 * 2**i for i in range(args.runs)]  # 4, 8, 16, ...: the baseline's r=8 among them
    return {
        "name": "memory",
        "model": {"name": str(model), "dtype": "float32"},
        "data": {"source": "builtin:dialogues", "train_size": 256},
        "prompt": {"instruction": "Summarize the conversation in one sentence."},
        "baseline": {
            # The reference study's adapter: r=8, alpha 16, dropout 0.1, q+v.
            "lora": {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": "qv"},
            "training": {
                "learning_rate": 2.0e-4,
                "max_steps": args.steps,
                "batch_size": args.batch_size,
                "max_length": args.max_length,
            },
        },  # fmt: skip
        "evaluation": {"size": args.eval_size},
        "generation": {"max_new_tokens": args.max_new_tokens, "batch_size": args.eval_size},
        "experiments": [{"name": "rank", "factor": "lora.r", "values": ranks}],
        "confirmation": False,
    }


# --- the children -----------------------------------------------------------------------------


def plain(config_path: Path) -> None:
    """The one-run script: load, add LoRA, train, generate. Only transformers and PEFT."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lorasweep.config.load import load_sweep
    from lorasweep.data.sources import load_eval, load_train

    sweep = load_sweep(config_path)
    training, lora = sweep.baseline.training, sweep.baseline.lora
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(sweep.model.name)
    model = AutoModelForCausalLM.from_pretrained(sweep.model.name, dtype=torch.float32).to(device)
    model = get_peft_model(
        model,
        LoraConfig(r=lora.r, lora_alpha=lora.lora_alpha, lora_dropout=lora.dropout,
                   target_modules=lora.modules, task_type="CAUSAL_LM"),
    )  # fmt: skip

    def prompt(text: str) -> list[int]:
        messages = [{"role": "user", "content": f"{sweep.prompt.instruction}\n\n{text}"}]
        encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        return list(encoded["input_ids"])

    train = load_train(sweep.data)[: training.max_steps * training.batch_size]
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=training.learning_rate
    )
    model.train()
    for start in range(0, len(train), training.batch_size):
        batch = train[start : start + training.batch_size]
        texts = [
            (prompt(e.input) + tokenizer(" " + e.target, add_special_tokens=False)["input_ids"])[
                : training.max_length
            ]
            for e in batch
        ]
        width = max(map(len, texts))
        ids = torch.full((len(texts), width), tokenizer.pad_token_id)
        mask = torch.zeros_like(ids)
        for row, tokens in enumerate(texts):
            ids[row, : len(tokens)], mask[row, : len(tokens)] = torch.tensor(tokens), 1
        labels = ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                     labels=labels.to(device)).loss  # fmt: skip
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    model.eval()
    examples = load_eval(sweep.data, sweep.evaluation)
    prompts = [prompt(e.input) for e in examples]
    tokenizer.padding_side = "left"
    batch = sweep.generation.batch_size
    with torch.inference_mode():
        for start in range(0, len(prompts), batch):
            chunk = tokenizer.pad({"input_ids": prompts[start : start + batch]},
                                  return_tensors="pt").to(device)  # fmt: skip
            model.generate(**chunk, max_new_tokens=sweep.generation.max_new_tokens,
                           do_sample=False, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    report_cuda_peak()


def sweep(config_path: Path) -> None:
    from lorasweep.cli.main import main

    out = config_path.parent / "store"
    status = main(["run", str(config_path), "--out", str(out)])
    if status != 0:
        raise SystemExit(f"lorasweep run exited with {status}")
    report_cuda_peak()


def report_cuda_peak() -> None:
    if torch.cuda.is_available():
        print(f"{PEAK}: {torch.cuda.max_memory_allocated()}", flush=True)


# --- the parent -------------------------------------------------------------------------------


def measure(kind: str, config_path: Path) -> tuple[int, float, str]:
    """Run one child; its own peak (CUDA allocated, or its peak RSS), seconds, and output."""
    command = [sys.executable, __file__, "--child", kind, "--config", str(config_path)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the {kind} child failed:\n{output[-3000:]}")
    printed = [line for line in output.splitlines() if line.startswith(f"{PEAK}:")]
    peak = int(printed[-1].split()[-1]) if printed else usage.ru_maxrss * 1024  # kB on Linux
    return peak, seconds, output


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.child == "plain":
        plain(args.config)
        return 0
    if args.child == "sweep":
        sweep(args.config)
        return 0
    with tempfile.TemporaryDirectory(prefix="lorasweep-memory-") as scratch:
        work = args.workdir or Path(scratch)
        model = work / "model"
        params = build_model(args, model)
        config_path = work / "sweep.yaml"
        config_path.write_text(yaml.safe_dump(sweep_config(args, model), sort_keys=False))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        counter = "torch.cuda.max_memory_allocated" if device == "cuda" else "peak RSS (wait4)"
        weights = f"{params / 1e6:.0f}M parameters, float32 ({params * 4 / 2**20:,.0f} MiB)"
        print(f"model: {weights}; device {device}; {counter}")
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"torch {torch.__version__}")  # fmt: skip
        plain_peak, plain_s, _ = measure("plain", config_path)
        sweep_peak, sweep_s, _ = measure("sweep", config_path)
    ratio = sweep_peak / plain_peak
    print(f"plain one-run script: {plain_peak / 2**30:.2f} GiB peak, {plain_s:.0f} s")
    print(f"lorasweep, {args.runs}-run sweep + zero-shot: {sweep_peak / 2**30:.2f} GiB peak, "
          f"{sweep_s:.0f} s")  # fmt: skip
    verdict = "met" if ratio <= args.target else "MISSED"
    print(f"ratio: {ratio:.3f} (target <= {args.target:.2f}: {verdict})")
    return 0 if ratio <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
