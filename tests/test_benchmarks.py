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
    for peer in ("trl_padded_batch_longest", "trl_padding_free", "trl_packing"):  # each ran
        assert found[f"{peer}_train_tokens_per_s"] > 0 and found[f"train_ratio_vs_{peer}"] > 0
    assert found["train_ratio_vs_trl_fastest"] > 0 and found["eval_ratio_vs_generate"] > 0
    assert found["generate_identical_outputs"] == 8  # the two decoders agree on every prompt
    assert "vllm: not installed" in out or "vllm_eval_tokens_per_s" in out


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


def test_gpu_benchmark_prints_each_peer_and_lorasweeps_ratio_to_it():
    gpu = load("gpu_throughput")
    peers = load("peer_sides")
    ours = peers.Trained("lorasweep", [1.0] * 3, [100, 100, 100], [1.0, 2.0, 3.0], 0.0, 4)
    slow = peers.Trained("SFTTrainer, padding_free", [1.0] * 3, [100] * 3, [2, 4, 6], 0.0, 4)
    fast = peers.Trained("SFTTrainer, packing (bfd, position ids)", [1.0] * 3, [100] * 3,
                         [0.5, 1.0, 1.5], 0.0, 4)  # fmt: skip
    assert (ours.rate, slow.rate, fast.rate) == (100, 50, 200)
    found = fields(
        "\n".join(gpu.peer_lines(ours, [slow, fast], 300, 1.5, [("generate", 3.0, 7)], 8))
    )
    assert found["train_ratio_vs_trl_padding_free"] == 2.0
    assert found["train_ratio_vs_trl_packing"] == 0.5
    assert found["train_ratio_vs_trl_fastest"] == 0.5
    assert found["eval_ratio_vs_generate"] == 2.0 and found["generate_eval_tokens_per_s"] == 100
    assert found["generate_identical_outputs"] == 7
    assert gpu.vllm_generate(None, None, [], 1).startswith(("not installed", "needs a CUDA"))


def test_step_rate_is_the_median_after_the_first_step():
    peers = load("peer_sides")
    # Steps of 10s (warm-up), 1s, 1s and 5s (a busy spell) with 100 tokens each.
    trained = peers.Trained("x", [1.0] * 4, [100] * 4, [10.0, 11.0, 12.0, 17.0], 0.0, 8)
    assert trained.rate == 100.0 and trained.seconds == 17.0


@pytest.mark.parametrize("millions", [40, 125, 250])
def test_the_larger_model_has_about_the_size_asked_for(millions):
    peers = load("peer_sides")
    config = peers.llama_config(millions, 32000, pad_id=0, eos_id=1)
    params = peers.parameters(config)
    assert millions * 1e6 <= params <= 1.1 * millions * 1e6
    assert config.num_attention_heads % config.num_key_value_heads == 0


def test_id_tokenizer_spells_ids_and_knows_its_special_tokens():
    peers = load("peer_sides")
    tokenizer = peers.id_tokenizer(100, pad_id=0, eos_id=7)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, len(tokenizer)) == (0, 7, 100)
    assert tokenizer.decode([5, 42, 7], skip_special_tokens=True) == "5 42"


def test_cost_growth_sweeps_have_the_runs_asked_for_and_the_fit_is_exact_on_a_line():
    from lorasweep.config.plan import build_plan

    growth = load("cost_growth")
    for runs in growth.RUNS:
        plan = build_plan(validate_sweep(growth.sweep_config(runs, 50, 5)))
        assert len(plan.runs) == runs and plan.sweep.evaluation.size == 50
    xs = [1.0, 2.0, 4.0, 8.0]
    assert growth.line(xs, [3 + 2 * x for x in xs]) == pytest.approx((3.0, 2.0))
    assert growth.worst_deviation(xs, [3 + 2 * x for x in xs]) == pytest.approx(0.0)
    assert growth.worst_deviation(xs, [5.0, 7.0, 11.0, 25.0]) > 0.05  # bent at the end
