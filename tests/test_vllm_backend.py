"""The vllm generation backend on a CPU: the worker process drives a stand-in ``vllm`` package
(tests/fake_vllm) that records what it is sent; the real comparison with transformers is the
``gpu`` test at the end, skipped without CUDA and vllm."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from lorasweep.cli.main import main
from lorasweep.evaluation.vllm_backend import unservable
from tests.conftest import sweep_dict, write_yaml

FAKE = Path(__file__).with_name("fake_vllm")


@pytest.fixture
def fake_vllm(monkeypatch, tmp_path) -> Path:
    """The stand-in on the PYTHONPATH of subprocesses only; returns its log file."""
    log = tmp_path / "vllm-calls.jsonl"
    monkeypatch.setenv("FAKE_VLLM_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE), os.environ["PYTHONPATH"]]))
    return log


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _results(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("runs/*/result.json")}


def _sweep(micro_model, dialogue_dir, **generation) -> dict:
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["experiments"] = [{"name": "rank", "factor": "lora.r", "values": [2, 4]}]
    raw["generation"] = {**raw["generation"], **generation}
    return raw


def test_switching_to_vllm_evaluates_the_stored_adapters_through_one_engine(
    micro_model, dialogue_dir, tmp_path, fake_vllm
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lorasweep.evaluation.generate import stop_token_ids

    out = tmp_path / "out"
    hf = write_yaml(tmp_path / "hf.yaml", _sweep(micro_model, dialogue_dir))
    assert main(["run", str(hf), "--out", str(out)]) == 0
    adapters = {p: p.read_bytes() for p in out.glob("adapters/*/adapter.json")}
    hf_results = _results(out)
    assert len(adapters) == 2 and len(hf_results) == 3  # r=4 (baseline), r=2, zero-shot
    assert {r["generation"]["backend"] for r in hf_results.values()} == {"hf"}
    assert not _calls(fake_vllm)

    vllm = write_yaml(tmp_path / "vllm.yaml", _sweep(micro_model, dialogue_dir, backend="vllm"))
    assert main(["run", str(vllm), "--out", str(out)]) == 0
    # Re-evaluated, not retrained: the adapters' records are untouched, new evaluations beside.
    assert {p: p.read_bytes() for p in out.glob("adapters/*/adapter.json")} == adapters
    results = _results(out)
    new = {k: v for k, v in results.items() if k not in hf_results}
    assert len(new) == 3 and all(hf_results[k] == results[k] for k in hf_results)
    assert all(r["generation"]["backend"] == "vllm" for r in new.values())
    assert {r["generation"]["backend_version"] for r in new.values()} == {"0.33.0+fake"}

    calls = _calls(fake_vllm)
    engines = [c for c in calls if c["call"] == "LLM"]
    assert len(engines) == 1  # one engine for the sweep
    kwargs = engines[0]["kwargs"]
    assert kwargs["model"] == str(micro_model) and kwargs["enable_lora"] is True
    assert kwargs["max_lora_rank"] == 8 and kwargs["generation_config"] == "vllm"
    assert kwargs["dtype"] == "float32"  # model.dtype auto, as the hf backend resolved it
    assert kwargs["gpu_memory_utilization"] == 0.4  # the rest of the GPU stays for training
    generates = [c for c in calls if c["call"] == "generate"]
    assert len(generates) == 3 and {c["pid"] for c in calls} == {engines[0]["pid"]}
    model = AutoModelForCausalLM.from_pretrained(micro_model)
    tokenizer = AutoTokenizer.from_pretrained(micro_model)
    stops = stop_token_ids(model, tokenizer)
    for call in generates:
        assert call["sampling"]["temperature"] == 0 and call["sampling"]["max_tokens"] == 12
        assert call["sampling"]["stop_token_ids"] == stops
        assert len(call["prompts"]) == 8
    loras = [c["lora"] for c in generates if c["lora"]]
    stored = {str((p.parent / "adapter").resolve()) for p in adapters}
    assert {lora["path"] for lora in loras} == stored  # the saved PEFT folders, as LoRA requests
    assert sorted(lora["id"] for lora in loras) == [1, 2]
    assert sum(1 for c in generates if c["lora"] is None) == 1  # the zero-shot evaluation

    # Predictions are the engine's tokens, decoded as the hf backend decodes (stop token cut).
    zero_shot = next(c for c in generates if c["lora"] is None)
    run_id = next(k for k, v in new.items() if v["kind"] == "base")
    rows = [json.loads(line) for line in (out / "runs" / run_id / "predictions.jsonl").open()]
    replies = [p[-3:] + [stops[0]] for p in zero_shot["prompts"]]
    kept = [reply[: next(k for k, t in enumerate(reply) if t in stops)] for reply in replies]
    expected = {tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in kept}
    assert {r["prediction"] for r in rows} == expected
    assert sorted(r["generated_tokens"] for r in rows) == sorted(map(len, kept))


def test_a_sweep_trained_under_vllm_is_evaluated_from_its_saved_adapters(
    micro_model, dialogue_dir, tmp_path, fake_vllm
):
    raw = _sweep(micro_model, dialogue_dir, backend="vllm", vllm_python=sys.executable)
    raw["experiments"] = []
    out = tmp_path / "out"
    assert main(["run", str(write_yaml(tmp_path / "s.yaml", raw)), "--out", str(out)]) == 0
    generates = [c for c in _calls(fake_vllm) if c["call"] == "generate"]
    adapter = next(out.glob("adapters/*/adapter"))
    assert [c["lora"]["path"] if c["lora"] else None for c in generates] == [
        None,
        str(adapter.resolve()),
    ]
    assert all(r["status"] == "done" for r in _results(out).values())


@pytest.mark.parametrize(
    ("fail", "error"),
    [
        ("raise", "VllmError: RuntimeError: CUDA out of memory (fake)"),
        ("exit", "VllmError: the worker exited (status 3); its log is above"),
    ],
)
def test_an_engine_failure_is_a_failed_evaluation_and_a_retry_needs_no_training(
    micro_model, dialogue_dir, tmp_path, fake_vllm, monkeypatch, fail, error
):
    raw = _sweep(micro_model, dialogue_dir, backend="vllm")
    raw["experiments"] = []
    config = write_yaml(tmp_path / "s.yaml", raw)
    out = tmp_path / "out"
    monkeypatch.setenv("FAKE_VLLM_FAIL", fail)
    assert main(["run", str(config), "--out", str(out)]) == 1
    results = _results(out)
    assert [r["status"] for r in results.values()] == ["failed", "failed"]
    assert {r["error"] for r in results.values()} == {error}
    adapter = next(out.glob("adapters/*/adapter.json")).read_bytes()  # trained, then saved
    if fail == "exit":  # each evaluation started a new worker after the last one died
        assert len([c for c in _calls(fake_vllm) if c["call"] == "LLM"]) == 2
    monkeypatch.delenv("FAKE_VLLM_FAIL")
    assert main(["run", str(config), "--out", str(out), "--retry-failed"]) == 0
    assert all(r["status"] == "done" for r in _results(out).values())
    assert next(out.glob("adapters/*/adapter.json")).read_bytes() == adapter  # not retrained


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"experiments": [{"name": "dora", "factor": "lora.use_dora", "values": [False, True]}]},
            "experiments[0].values[1]: vLLM cannot serve DoRA adapters; set generation.backend: hf",
        ),
        (
            {"execution": {"executor": "ray"}},
            "generation.backend: vllm runs one engine for the sweep, with execution.executor: "
            "local; set generation.backend: hf to evaluate on ray workers",
        ),
    ],
)
def test_what_vllm_cannot_serve_is_refused_in_one_line_before_anything_runs(
    micro_model, dialogue_dir, tmp_path, fake_vllm, capsys, change, message
):
    raw = {**_sweep(micro_model, dialogue_dir, backend="vllm"), **change}
    out = tmp_path / "out"
    assert main(["run", str(write_yaml(tmp_path / "s.yaml", raw)), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"lorasweep: error: {message}"]
    assert not out.exists() and not _calls(fake_vllm)


def test_an_interpreter_without_vllm_is_one_line(micro_model, dialogue_dir, tmp_path, capsys):
    raw = _sweep(micro_model, dialogue_dir, backend="vllm", vllm_python=sys.executable)
    out = tmp_path / "out"
    assert main(["run", str(write_yaml(tmp_path / "s.yaml", raw)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and f"generation.vllm_python: {sys.executable} cannot import vllm" in err[0]
    )
    assert "ModuleNotFoundError" in err[0] and not out.exists()


def test_adapters_vllm_cannot_serve():
    assert unservable({"use_dora": False, "bias": "none", "modules_to_save": None}) is None
    assert unservable({"use_dora": True}) == "DoRA adapters"
    assert unservable({"modules_to_save": ["lm_head"]}) == "adapters with modules_to_save"
    assert unservable({"bias": "lora_only"}) == "adapters with trained biases"
    assert unservable({"lora_bias": True}) == "adapters with trained biases"


@pytest.mark.gpu
def test_vllm_agrees_with_transformers_on_20_prompts(tmp_path):
    """On a GPU with vllm: the same adapter, greedy, 20 prompts; most tokens agree and the
    ROUGE-L difference lies within its paired interval (batched vLLM is not bitwise equal)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pytest.importorskip("vllm", reason="needs vllm installed in this interpreter")
    from rouge_score import rouge_scorer

    from lorasweep.config.load import validate_sweep
    from lorasweep.config.plan import build_plan
    from lorasweep.evaluation.generate import generate
    from lorasweep.evaluation.vllm_backend import build_engine
    from lorasweep.stats.bootstrap import paired_bootstraps
    from lorasweep.training.adapters import for_decoding, new_adapter
    from lorasweep.training.resources import load_resources

    raw = {
        "model": {"name": "builtin:tiny-llama"},
        "data": {"source": "builtin:dialogues"},
        "baseline": {"lora": {"r": 8}, "training": {"max_steps": 1}},
        "evaluation": {"size": 20},
        "generation": {"max_new_tokens": 48, "backend": "vllm"},
    }
    sweep = validate_sweep(raw)
    plan = build_plan(sweep)
    resources = load_resources(sweep)
    torch.manual_seed(0)
    with new_adapter(resources.model, plan.runs[0].resolved["lora"]) as model:
        with torch.no_grad():  # a fresh adapter adds nothing (B = 0): give it an effect
            for name, weight in model.named_parameters():
                if "lora_B" in name:
                    weight.normal_(0, 0.02)
        model.save_pretrained(tmp_path / "adapter")
        with for_decoding(model) as decoder:
            hf_texts, _ = generate(decoder, resources.tokenizer, resources.eval_prompts, 48, 20)
    engine = build_engine(plan, resources)
    try:
        vllm_texts, _ = engine.generate(resources.eval_prompts, tmp_path / "adapter", 48)
    finally:
        engine.close()

    # Token agreement: the share of each output's tokens before the two first differ.
    def tokens(text: str) -> list[int]:
        return resources.tokenizer(text, add_special_tokens=False)["input_ids"]

    shares = []
    for a, b in zip(map(tokens, hf_texts), map(tokens, vllm_texts), strict=True):
        pairs = zip(a, b, strict=False)  # a shorter output ends where it ends
        same = next((k for k, (x, y) in enumerate(pairs) if x != y), min(len(a), len(b)))
        shares.append(same / max(len(a), len(b), 1))
    agreement = sum(shares) / len(shares)
    assert agreement >= 0.8, f"token agreement {agreement:.2f}"
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    refs = [e.first_target for e in resources.eval_examples]
    a = [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(hf_texts, refs, strict=True)]
    b = [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(vllm_texts, refs, strict=True)]
    delta = paired_bootstraps({"rougeL": a}, {"rougeL": b}, {"rougeL": "higher"})["rougeL"]
    assert delta.low <= 0 <= delta.high


def test_the_backend_is_in_the_evaluation_id_only_when_not_hf(micro_model, dialogue_dir):
    from lorasweep.config.load import validate_sweep
    from lorasweep.config.plan import build_plan

    def plan(**generation):
        return build_plan(validate_sweep(_sweep(micro_model, dialogue_dir, **generation)))

    default, hf = plan(), plan(backend="hf", vllm_python="/opt/vllm/bin/python")
    vllm, vllm_more_memory = plan(backend="vllm"), plan(backend="vllm", vllm_gpu_memory=0.8)
    ids = [r.run_id for r in default.runs]
    assert [r.run_id for r in hf.runs] == ids and hf.base_eval.run_id == default.base_eval.run_id
    assert not {r.run_id for r in vllm.runs} & set(ids)  # evaluated again ...
    assert [r.adapter_id for r in vllm.runs] == [r.adapter_id for r in default.runs]  # not trained
    assert [r.run_id for r in vllm_more_memory.runs] == [r.run_id for r in vllm.runs]
