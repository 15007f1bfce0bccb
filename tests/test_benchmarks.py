"""The benchmark scripts work before anyone waits on them: the GPU script in its tiny CPU mode,
and the pieces of the plain-script comparison that decide its verdicts. No timing is asserted
here; the targets are checked by ``benchmarks/compare_plain.py`` itself."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lorasweep.config.load import validate_sweep
from lorasweep.config.schema import PromptConfig
from lorasweep.data.prompts import PromptFormatter
from lorasweep.evaluation.generate import generate, stop_token_ids

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def fields(text: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"^(\w+): ([-+0-9.e]+)", text, re.MULTILINE)}


def test_gpu_benchmark_runs_tiny_on_cpu_and_prints_every_figure(capsys):
    gpu = load("gpu_throughput")
    assert gpu.main(["--tiny", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    found = fields(out)
    for key in ("train_tokens_per_s", "mfu", "mfu_6n", "peak_memory_bytes", "eval_tokens_per_s"):
        assert found.get(key, 0) > 0, (key, out)
    assert found["mfu_6n"] == pytest.approx(1.5 * found["mfu"], rel=1e-3)
    assert "tiny llama" in out and "bfloat16" in out


def test_gpu_benchmark_has_llama_3_2_1b_shape():
    from transformers import LlamaForCausalLM

    gpu = load("gpu_throughput")
    config = gpu.llama_32_1b()
    with torch.device("meta"):  # shapes only
        params = sum(p.numel() for p in LlamaForCausalLM(config).parameters())
    assert params == 1_235_814_400  # Llama-3.2-1B, tied embeddings counted once
    assert config.rope_parameters["rope_theta"] == 500000.0


def test_loss_curve_gap_is_zero_for_equal_curves_and_grows_with_a_shift():
    plain = load("compare_plain")
    curve = [3.0 - 0.01 * i for i in range(40)]
    assert plain.curve_gap(curve, curve) == 0
    assert plain.curve_gap(curve, [x + 0.2 for x in curve]) == pytest.approx(0.2)
    assert plain.smoothed([1.0, 3.0, 5.0], window=2) == [1.0, 2.0, 4.0]


def test_shortened_demo_config_is_valid():
    plain = load("compare_plain")
    sweep = validate_sweep(plain.demo_config(steps=10, eval_size=5))
    assert sweep.baseline.training.max_steps == 10
    assert sweep.baseline.training.warmup_steps <= 2 and sweep.evaluation.size == 5


def test_plain_pipeline_tokens_equal_lorasweep_generation(micro_model):
    """The comparison's own logic: the pipeline's new tokens, read back from its padded rows."""
    plain = load("compare_plain")
    tokenizer = AutoTokenizer.from_pretrained(micro_model)
    model = AutoModelForCausalLM.from_pretrained(micro_model).eval()
    formatter = PromptFormatter(
        tokenizer, PromptConfig(template="{instruction}\n{input}\nSummary:"), "dialogue"
    )
    inputs = ["Ann: hi\nBob: hello, see you at 5", "Tom: late again?", "Eve: bus", "Al: ok"]
    chats = [[{"role": "user", "content": formatter.user_message(x)}] for x in inputs]
    prompts = [formatter.encode_prompt(x) for x in inputs]

    # The micro model never emits EOS; make the first token it generates a stop token too.
    first = model.generate(torch.tensor([prompts[0]]), max_new_tokens=1, do_sample=False)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, int(first[0, -1])]
    stops = stop_token_ids(model, tokenizer)
    tokens, seconds = plain.generate_plain(model, tokenizer, chats, prompts, stops, 24)
    texts, lengths = generate(model, tokenizer, prompts, 24, 3)
    assert seconds > 0 and tokens[0] == [] and lengths[0] == 0
    assert [len(t) for t in tokens] == lengths
    assert [tokenizer.decode(t, skip_special_tokens=True).strip() for t in tokens] == texts


def test_predictions_are_compared_in_full_below_the_cap_and_as_a_prefix_above():
    plain = load("compare_plain")
    decode = lambda ids: " ".join(map(str, ids))  # noqa: E731
    pipeline_tokens = [[1, 2], [1, 2, 3, 4, 5], [7, 8], [1, 2, 3, 4]]
    ours = [[1, 2], [1, 2, 3], [7, 9], [1, 2, 4]]  # the cap is 3: the 2nd and 4th ran on
    evaluated = plain.Evaluated(
        "m", 1.0, 1.0, 1.0, pipeline_tokens, [decode(t) for t in ours], [len(t) for t in ours]
    )
    assert evaluated.compared(cap=3, decode=decode) == (1, 2, 1, 2)


def test_memory_benchmark_measures_both_sides_in_their_own_processes(capsys):
    memory = load("memory")
    tiny = ["--hidden", "64", "--layers", "1", "--intermediate", "128", "--heads", "2",
            "--kv-heads", "1", "--vocab", "2048", "--runs", "2", "--steps", "1",
            "--eval-size", "4", "--max-new-tokens", "4", "--target", "100"]  # fmt: skip
    assert memory.main(tiny) == 0
    out = capsys.readouterr().out
    peaks = [float(p) for p in re.findall(r"([0-9.]+) GiB peak", out)]
    assert len(peaks) == 2 and all(p > 0.1 for p in peaks)  # a Python with torch is > 100 MiB
    assert re.search(r"ratio: [0-9.]+ \(target <= 100.00: met\)", out)
