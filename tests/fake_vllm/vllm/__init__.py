"""A stand-in for vllm on a CPU machine: records what lorasweep's worker sends it.

Each call is a JSON line in ``$FAKE_VLLM_LOG``: the ``LLM(...)`` keyword arguments, and per
``generate`` the sampling parameters, the LoRA request and the prompts. A completion is the
prompt's last three tokens followed by its first stop token (which lorasweep must cut off).
``FAKE_VLLM_FAIL=raise`` makes ``generate`` raise, ``=exit`` kills the process.
"""

import json
import os
from types import SimpleNamespace

__version__ = "0.33.0+fake"


def _log(record):
    with open(os.environ["FAKE_VLLM_LOG"], "a") as log:
        log.write(json.dumps(record) + "\n")


class SamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class LLM:
    def __init__(self, **kwargs):
        if not os.path.isdir(kwargs["model"]):
            raise ValueError(f"no model at {kwargs['model']}")
        self.kwargs = kwargs
        _log({"call": "LLM", "kwargs": kwargs, "pid": os.getpid()})

    def generate(self, prompts, sampling_params, lora_request=None, use_tqdm=True):
        lora = lora_request and {
            "name": lora_request.lora_name,
            "id": lora_request.lora_int_id,
            "path": lora_request.lora_path,
        }
        if lora and not os.path.isfile(os.path.join(lora["path"], "adapter_config.json")):
            raise ValueError(f"no PEFT adapter at {lora['path']}")
        fail = os.environ.get("FAKE_VLLM_FAIL")
        if fail == "raise":
            raise RuntimeError("CUDA out of memory (fake)")
        if fail == "exit":
            os._exit(3)  # the engine process dies mid-request
        ids = [p["prompt_token_ids"] for p in prompts]
        _log(
            {
                "call": "generate",
                "sampling": sampling_params.kwargs,
                "lora": lora,
                "prompts": ids,
                "pid": os.getpid(),
            }
        )
        stop = sampling_params.kwargs["stop_token_ids"][0]
        return [
            SimpleNamespace(
                outputs=[SimpleNamespace(token_ids=p[-3:] + [stop], finish_reason="stop")]
            )
            for p in ids
        ]
