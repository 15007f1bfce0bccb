"""Training and generation throughput of lorasweep on an accelerator, with no download.

A randomly initialised model with Llama-3.2-1B's architecture, synthetic data of SAMSum's
lengths (a prompt of about 200 tokens, a summary of about 30), bfloat16. It runs lorasweep's own
``fit`` (LoRA r=8 on q_proj and v_proj, as the reference study's baseline) and ``generate``, and
prints:

* ``train_tokens_per_s``: real (non-padding) training tokens per second, after warm-up steps;
* ``mfu``: model FLOPs utilisation, ``4 * N * train_tokens_per_s / peak_flops``. N is the
  model's parameter count (the tied embedding counted once, as the output projection), and a
  token costs 2N FLOPs forward and 2N backward for the activation gradients; LoRA's frozen
  weights need no weight gradient (the 2N that makes full fine-tuning's familiar 6N), and the
  adapter's own FLOPs (under 0.1% of N at r=8) and attention's sequence-length term (about
  1% at 230 tokens) are left out, so the figure slightly understates the work done. Padding is
  not counted as useful work. ``mfu_6n`` gives the 6N figure for comparison with full
  fine-tuning reports;
* ``peak_memory_bytes``: CUDA max allocated during training (on a CPU: peak resident set size);
* ``eval_tokens_per_s``: generated tokens per second with lorasweep's batched greedy ``generate``
  on the merged model (a random model rarely emits EOS, so nearly every sequence runs to
  ``--new-tokens``).

``--peak-flops`` defaults to 989e12, the dense bf16 peak of an H100/H200 SXM; pass your chip's.
``--tiny`` runs a 2-layer, hidden-64 model for a few steps, on CPU if there is no GPU: the check
that the script works before a GPU is rented (``tests/test_benchmarks.py`` runs it so).

Usage::

    python benchmarks/gpu_throughput.py                   # on a GPU machine
    python benchmarks/gpu_throughput.py --tiny            # anywhere, in seconds
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
sys.path.insert(0, str(Path(__file__).resolve().parent))  # peer_sides.py, run from anywhere

import torch  # noqa: E402
from peer_sides import TRL_CONFIGS, Trained, id_tokenizer, train_lorasweep, train_trl  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from lorasweep.config.schema import TrainingConfig  # noqa: E402
from lorasweep.data.prompts import IGNORE_INDEX, Encoded  # noqa: E402
from lorasweep.evaluation.generate import generate  # noqa: E402

# LoRA r=8 on q and v, the reference study's baseline (lorasweep's resolved lora section).
LORA = {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}
H100_BF16_DENSE_FLOPS = 989e12  # H100/H200 SXM, dense (no sparsity) bf16 tensor-core peak


def llama_32_1b() -> LlamaConfig:
    """Llama-3.2-1B's architecture (1.24B parameters), without its weights."""
    return LlamaConfig(
        vocab_size=128256,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        bos_token_id=128000,
        eos_token_id=128001,
        pad_token_id=128004,
    )


def tiny_llama() -> LlamaConfig:
    """The same family at a toy size, for a CPU check of the script."""
    return LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


@dataclass(frozen=True)
class Lengths:
    """Token lengths of the synthetic examples: normal, clipped to [low, high]."""

    prompt: tuple[float, float, int, int]  # mean, sd, low, high
    summary: tuple[float, float, int, int]

    def draw(self, rng: random.Random, which: str) -> int:
        mean, sd, low, high = getattr(self, which)
        return int(min(high, max(low, round(rng.gauss(mean, sd)))))


# SAMSum with Llama 3's tokenizer and the reference prompt: ~200 prompt tokens, ~30 summary.
SAMSUM = Lengths(prompt=(200, 70, 60, 480), summary=(30, 12, 6, 80))
TINY = Lengths(prompt=(40, 10, 16, 80), summary=(8, 3, 2, 16))


def synthetic_examples(
    config: LlamaConfig, lengths: Lengths, n: int, seed: int
) -> tuple[list[Encoded], list[list[int]]]:
    """Training examples (loss on the summary and EOS only) and evaluation prompts."""
    rng = random.Random(seed)
    special = {config.bos_token_id, config.eos_token_id, config.pad_token_id}
    words = [i for i in range(config.vocab_size) if i not in special]

    def tokens(k: int) -> list[int]:
        return [rng.choice(words) for _ in range(k)]

    examples, prompts = [], []
    for _ in range(n):
        prompt = [config.bos_token_id] + tokens(lengths.draw(rng, "prompt"))
        summary = tokens(lengths.draw(rng, "summary")) + [config.eos_token_id]
        examples.append(Encoded(prompt + summary, [IGNORE_INDEX] * len(prompt) + summary))
        prompts.append(prompt)
    return examples, prompts


def build_model(config: LlamaConfig, dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
    """Random weights, made directly in ``dtype`` on ``device`` (no float32 copy first)."""
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.pad_token_id = config.pad_token_id
    return model.eval()


def peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="toy model, a few steps; runs on CPU")
    parser.add_argument("--steps", type=int, help="measured training steps (30; tiny: 3)")
    parser.add_argument("--warmup-steps", type=int, help="untimed first steps (3; tiny: 1)")
    parser.add_argument("--batch-size", type=int, help="examples per step (8; tiny: 4)")
    parser.add_argument("--eval-prompts", type=int, help="prompts to generate for (128; tiny: 8)")
    parser.add_argument("--eval-batch-size", type=int, help="generation batch (64; tiny: 4)")
    parser.add_argument("--new-tokens", type=int, help="tokens generated per prompt (48; tiny: 8)")
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    parser.add_argument(
        "--peak-flops",
        type=float,
        default=H100_BF16_DENSE_FLOPS,
        help="the chip's peak FLOP/s in --dtype (default: H100/H200 dense bf16)",
    )
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    parser.add_argument(
        "--no-peers", dest="peers", action="store_false", help="lorasweep only: no TRL, generate"
    )
    args = parser.parse_args(argv)
    tiny = args.tiny
    steps = args.steps or (3 if tiny else 30)
    warmup = args.warmup_steps if args.warmup_steps is not None else (1 if tiny else 3)
    batch_size = args.batch_size or (4 if tiny else 8)
    eval_prompts = args.eval_prompts or (8 if tiny else 128)
    eval_batch = args.eval_batch_size or (4 if tiny else 64)
    new_tokens = args.new_tokens or (8 if tiny else 48)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype)

    config = tiny_llama() if tiny else llama_32_1b()
    base = build_model(config, dtype, device)
    params = sum(p.numel() for p in base.parameters())  # the tied embedding counted once
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"model: {'tiny llama' if tiny else 'Llama-3.2-1B architecture'}, random weights, "
        f"{params:,} parameters, {args.dtype}, on {name}; torch {torch.__version__}"
    )

    examples, prompts = synthetic_examples(
        config, TINY if tiny else SAMSUM, max(batch_size * (steps + warmup), eval_prompts), 1
    )
    training = TrainingConfig(
        learning_rate=2e-4,
        max_steps=steps + warmup,
        batch_size=batch_size,
        max_length=512,
        lr_scheduler="constant",
        seed=42,
    )
    tokenizer = id_tokenizer(config.vocab_size, config.pad_token_id, config.eos_token_id)

    # The peers first, each on its own copy of the base: TRL's SFTTrainer in each configuration.
    peers = []
    if args.peers:
        import datasets

        datasets.disable_progress_bars()
        with tempfile.TemporaryDirectory(prefix="gpu-peers-") as work:
            for k, peer in enumerate(TRL_CONFIGS):
                peers.append(train_trl(peer, base, LORA, examples, training, tokenizer,
                                       Path(work) / str(k)))  # fmt: skip
                synchronize(device)

    # lorasweep's own loop, LoRA r=8 on q and v (the reference study's baseline).
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    model, ours = train_lorasweep(base, LORA, examples, training, config.pad_token_id)
    memory = peak_memory(device)  # fit reads the loss each step: the GPU is in sync at its end
    begin = ours.ends[warmup - 1] if warmup else ours.started
    seconds = ours.ends[-1] - begin
    tokens = sum(ours.tokens[warmup:])
    measured = ours.tokens[warmup:]
    tokens_per_s = tokens / seconds
    mfu = 4 * params * tokens_per_s / args.peak_flops

    # Generate with the adapter merged, as a sweep's evaluation does; then the peers.
    merged = model.merge_and_unload().eval()
    eval_set = prompts[:eval_prompts]
    generate(merged, tokenizer, eval_set[:2], 2, 2)  # warm-up, untimed
    synchronize(device)
    started = time.perf_counter()
    texts, lengths = generate(merged, tokenizer, eval_set, new_tokens, eval_batch)
    synchronize(device)
    eval_seconds = time.perf_counter() - started
    eval_peers: list[tuple[str, float, int]] = []  # name, seconds, identical outputs
    if args.peers:
        generate(merged, tokenizer, eval_set[:2], 2, 2, lean=False)
        synchronize(device)
        started = time.perf_counter()
        plain, _ = generate(merged, tokenizer, eval_set, new_tokens, eval_batch, lean=False)
        synchronize(device)
        same = sum(a == b for a, b in zip(texts, plain, strict=True))
        eval_peers.append(("generate", time.perf_counter() - started, same))
        vllm = vllm_generate(merged, tokenizer, eval_set, new_tokens)
        if isinstance(vllm, str):
            print(f"vllm: {vllm}")
        else:
            outputs, vllm_seconds = vllm
            same = sum(a == b for a, b in zip(texts, outputs, strict=True))
            eval_peers.append(("vllm", vllm_seconds, same))

    print(
        f"training: {len(measured)} timed steps (after {warmup} warm-up) of {batch_size} "
        f"examples, {tokens:,} real tokens in {seconds:.2f}s"
    )
    print(
        f"generation: {len(eval_set)} prompts, batch {eval_batch}, up to {new_tokens} new "
        f"tokens, {sum(lengths):,} generated in {eval_seconds:.2f}s"
    )
    print(f"train_tokens_per_s: {tokens_per_s:.1f}")
    print(f"mfu: {mfu:.4g}  (4 * {params:,} params * tokens/s / {args.peak_flops:.3g} FLOP/s)")
    print(f"mfu_6n: {6 * params * tokens_per_s / args.peak_flops:.4g}")
    print(f"peak_memory_bytes: {memory}  ({memory / 2**30:.2f} GiB)")
    print(f"eval_tokens_per_s: {sum(lengths) / eval_seconds:.1f}")
    for line in peer_lines(ours, peers, sum(lengths), eval_seconds, eval_peers, len(eval_set)):
        print(line)
    return 0


def peer_lines(
    ours: Trained,
    trained: list[Trained],
    generated: int,
    eval_seconds: float,
    evaluated: list[tuple[str, float, int]],
    prompts: int,
) -> list[str]:
    """The peers' figures and lorasweep's ratio to each: training compared by the median
    per-step rate of real tokens (the first step left out), evaluation by wall time on the same
    prompts (each peer's tokens per second counts lorasweep's generated tokens)."""
    lines = []
    for t in trained:
        key = field_name(t.name)
        lines.append(f"{key}_train_tokens_per_s: {t.rate:.1f}  ({t.name})")
        lines.append(f"train_ratio_vs_{key}: {ours.rate / t.rate:.3f}")
    if trained:
        fastest = max(trained, key=lambda t: t.rate)
        lines.append(
            f"train_ratio_vs_trl_fastest: {ours.rate / fastest.rate:.3f}  ({fastest.name})"
        )
    for name, seconds, same in evaluated:
        lines.append(f"{name}_eval_tokens_per_s: {generated / seconds:.1f}")
        lines.append(f"eval_ratio_vs_{name}: {seconds / eval_seconds:.3f}")
        lines.append(f"{name}_identical_outputs: {same}  (of {prompts})")
    return lines


def field_name(peer: str) -> str:
    """A printable key for a peer: 'SFTTrainer, padding_free' -> 'trl_padding_free'."""
    detail = peer.split(",", 1)[1].split("(")[0] if "," in peer else peer
    words = [w for w in "".join(c if c.isalnum() else " " for c in detail.lower()).split()]
    return "trl_" + "_".join(w for w in words if w not in {"to", "the", "s"})


def vllm_generate(model, tokenizer, prompts: list[list[int]], new_tokens: int):
    """vLLM's greedy outputs and wall time on the merged model, or why it did not run.

    The model is saved to a temporary folder for vLLM to load; its generation config is
    ignored (``generation_config="vllm"``), as lorasweep's decoders ignore it.
    """
    if importlib.util.find_spec("vllm") is None:
        return "not installed (pip install vllm on a CUDA machine, in its own environment)"
    if not torch.cuda.is_available():
        return "needs a CUDA device"
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    with tempfile.TemporaryDirectory(prefix="gpu-vllm-") as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        llm = LLM(model=folder, dtype="bfloat16", generation_config="vllm", seed=0)
        params = SamplingParams(
            temperature=0, max_tokens=new_tokens, stop_token_ids=[tokenizer.eos_token_id]
        )
        inputs = [TokensPrompt(prompt_token_ids=p) for p in prompts]
        llm.generate(inputs[:2], params, use_tqdm=False)  # warm-up, untimed
        started = time.perf_counter()
        outputs = llm.generate(inputs, params, use_tqdm=False)
        seconds = time.perf_counter() - started
    texts = [tokenizer.decode(list(o.outputs[0].token_ids), skip_special_tokens=True).strip()
             for o in outputs]  # fmt: skip
    return texts, seconds


if __name__ == "__main__":
    sys.exit(main())
