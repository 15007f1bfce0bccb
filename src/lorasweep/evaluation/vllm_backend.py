"""The vllm generation backend: a sweep's adapters evaluated by one vLLM engine, as LoRA requests.

The engine runs in its own process (``vllm_worker.py`` under ``generation.vllm_python``, default
this interpreter), started on the first evaluation and kept for the whole sweep. Prompts go to it
already tokenized, with the same stop tokens and cap as the hf backend, greedy; the token ids
come back and are decoded here, as the hf backend decodes them. Greedy vLLM outputs are close
to transformers', not bitwise equal (batch composition and unmerged LoRA change near-ties).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from lorasweep.config.plan import Plan
from lorasweep.config.schema import SweepConfig
from lorasweep.errors import UserError

WORKER = Path(__file__).with_name("vllm_worker.py")
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # what vLLM's max_lora_rank accepts
USE_HF = "set generation.backend: hf"


class VllmError(RuntimeError):
    """The engine failed (out of memory, a worker that died): the unit is a failed one."""


def unservable(adapter_config: dict[str, Any]) -> str | None:
    """Why vLLM cannot serve a PEFT adapter with this ``adapter_config.json``, or None."""
    if adapter_config.get("use_dora"):
        return "DoRA adapters"
    if adapter_config.get("modules_to_save"):
        return "adapters with modules_to_save"
    if adapter_config.get("bias", "none") != "none" or adapter_config.get("lora_bias"):
        return "adapters with trained biases"
    return None


def check(plan: Plan, store_root: Path) -> str:
    """Before anything runs: the sweep's adapters can be served, and vllm imports.

    Returns:
        A line for the console, with the vllm version the interpreter has.

    Raises:
        UserError: One line naming the field, saying to use the hf backend where it must.
    """
    sweep = plan.sweep
    if sweep.execution.executor != "local":
        raise UserError(
            "generation.backend: vllm runs one engine for the sweep, with execution.executor: "
            f"local; {USE_HF} to evaluate on {sweep.execution.executor} workers"
        )
    if sweep.model.is_quantized:
        raise UserError(
            f"generation.backend: vllm does not evaluate on lorasweep's 4-bit base "
            f"(model.quantization: {sweep.model.quantization}); {USE_HF}"
        )
    for field, run in _run_fields(plan):
        lora = run.resolved["lora"]
        why = unservable({"use_dora": lora.get("use_dora", False)})
        if why is None and lora["r"] > LORA_RANKS[-1]:
            why = f"ranks above {LORA_RANKS[-1]}"
        if why is None:
            config = store_root / "adapters" / run.adapter_id / "adapter" / "adapter_config.json"
            if config.is_file():
                why = unservable(json.loads(config.read_text(encoding="utf-8")))
        if why:
            raise UserError(f"{field}: vLLM cannot serve {why}; {USE_HF}")
    return f"Generation: vLLM {vllm_version(sweep)}, one engine for the sweep."


def vllm_version(sweep: SweepConfig) -> str:
    """The version of vllm that ``generation.vllm_python`` imports.

    Raises:
        UserError: The interpreter is missing, or cannot import vllm.
    """
    python = worker_python(sweep)
    field = "generation.vllm_python" if sweep.generation.vllm_python else "generation.backend"
    try:
        done = subprocess.run(
            [python, "-c", "import sys, vllm; sys.stderr.write(vllm.__version__)"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UserError(f"{field}: cannot run {python} ({type(err).__name__})") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(
            f"{field}: {python} cannot import vllm ({last}); install vllm for that interpreter "
            "(GPU only) and set generation.vllm_python to it, or set generation.backend: hf"
        )
    return done.stderr.strip().splitlines()[-1]


def worker_python(sweep: SweepConfig) -> str:
    """The interpreter that runs the worker: ``generation.vllm_python`` (``~`` expanded), else
    this one."""
    configured = sweep.generation.vllm_python
    return str(Path(configured).expanduser()) if configured else sys.executable


def _run_fields(plan: Plan):
    """(config field, run) for the baseline and every experiment value."""
    yield "baseline.lora", plan.run(plan.baseline_id)
    for i, experiment in enumerate(plan.experiments):
        for j, row in enumerate(experiment.rows):
            yield f"experiments[{i}].values[{j}]", plan.run(row.run_id)


def max_lora_rank(plan: Plan) -> int:
    """The smallest rank vLLM accepts that holds every adapter of the sweep."""
    highest = max(run.resolved["lora"]["r"] for run in plan.runs)
    return next(rank for rank in LORA_RANKS if rank >= highest)


class VllmEngine:
    """One vLLM engine for the sweep, in its own process; adapters are LoRA requests.

    Args:
        sweep: The validated sweep (model, dtype, interpreter).
        model_path: Where the base model is (a folder or a hub id).
        tokenizer: Decodes the returned token ids, as the hf backend does.
        stops: Token ids that end a reply (the hf backend's).
        lora_rank: ``max_lora_rank`` for the engine.
        dtype: The base's dtype as the hf backend loaded it (``model.dtype: auto`` resolved).
    """

    name = "vllm"

    def __init__(
        self,
        sweep: SweepConfig,
        model_path: str,
        tokenizer: PreTrainedTokenizerBase,
        stops: Sequence[int],
        lora_rank: int,
        dtype: str = "auto",
    ) -> None:
        self.sweep, self.model_path, self.tokenizer = sweep, model_path, tokenizer
        self.dtype = dtype
        self.stops = sorted(set(stops))
        self.lora_rank = lora_rank
        self.version: str | None = None
        self._process: subprocess.Popen | None = None
        self._lora_ids: dict[str, int] = {}

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "backend_version": self.version}

    def generate(
        self,
        prompts: list[list[int]],
        adapter: Path | None,
        max_new_tokens: int,
        on_batch: Callable[[int], None] = lambda n: None,
    ) -> tuple[list[str], list[int]]:
        """Greedy completions of ``prompts`` with the PEFT adapter in ``adapter`` (None: the
        base model): decoded texts and generated token counts (the stop token not counted)."""
        self._start()
        lora = None
        if adapter is not None:
            path = str(Path(adapter).resolve())
            lora_id = self._lora_ids.setdefault(path, len(self._lora_ids) + 1)  # ids from 1
            lora = {"name": Path(path).parent.name, "id": lora_id, "path": path}
        sampling = {"temperature": 0.0, "max_tokens": max_new_tokens,
                    "stop_token_ids": self.stops, "seed": 0}  # fmt: skip
        reply = self._ask({"op": "generate", "prompts": prompts, "sampling": sampling,
                           "lora": lora})  # fmt: skip
        texts, lengths = [], []
        for ids in reply["outputs"]:
            end = next((k for k, t in enumerate(ids) if t in self.stops), len(ids))
            lengths.append(end)
            texts.append(self.tokenizer.decode(ids[:end], skip_special_tokens=True).strip())
        on_batch(len(prompts))
        return texts, lengths

    def _start(self) -> None:
        if self._process is not None:
            return
        python = worker_python(self.sweep)
        _release_cached_gpu_memory()  # what torch holds but does not use, for vLLM to take
        self._process = subprocess.Popen(
            [python, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        model = self.sweep.model
        llm = {
            "model": self.model_path,
            "revision": model.revision,
            "tokenizer_revision": model.revision,
            "trust_remote_code": model.trust_remote_code,
            "dtype": self.dtype,
            "seed": 0,
            "enable_lora": True,
            "max_lora_rank": self.lora_rank,
            "max_loras": 1,  # one adapter per evaluation
            "max_cpu_loras": 2,
            "gpu_memory_utilization": self.sweep.generation.vllm_gpu_memory,
            # Else the model's generation_config.json (its own max_new_tokens, sampling) applies.
            "generation_config": "vllm",
        }
        self.version = self._ask({"op": "init", "llm": llm})["version"]

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        process = self._process
        assert process is not None and process.stdin and process.stdout
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = process.wait(timeout=60)
            self._process = None
            raise VllmError(f"the worker exited (status {code}); its log is above")
        reply = json.loads(line)
        if "error" in reply:
            raise VllmError(reply["error"])
        return reply

    def close(self) -> None:
        """End the worker process (it exits on its own when this process dies: stdin closes)."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.stdin.write(json.dumps({"op": "exit"}) + "\n")
            process.stdin.close()
            process.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()


def _release_cached_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def build_engine(plan: Plan, resources: Any) -> VllmEngine:
    """The sweep's engine (``evaluation.backends.ENGINES``); its process starts on first use."""
    from lorasweep.evaluation.generate import stop_token_ids
    from lorasweep.training.model import model_path

    sweep = plan.sweep
    stops = stop_token_ids(resources.model, resources.tokenizer)
    dtype = str(resources.model.dtype).removeprefix("torch.")
    return VllmEngine(
        sweep, model_path(sweep.model), resources.tokenizer, stops, max_lora_rank(plan), dtype
    )
