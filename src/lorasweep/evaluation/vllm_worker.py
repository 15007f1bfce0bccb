"""The vLLM side of the vllm backend: one engine, driven over stdin/stdout, one JSON per line.

It runs as a script (``python vllm_worker.py``) under any interpreter that has vllm, and imports
nothing but the standard library and vllm: the vLLM wheel pins torch and transformers versions
lorasweep's own environment does not use. vLLM's logs go to stderr; stdout carries only replies.

Requests and replies:

* ``{"op": "init", "llm": {...LLM kwargs}}`` -> ``{"version": "0.33.0"}``
* ``{"op": "generate", "prompts": [[ids]], "sampling": {...}, "lora": {"name", "id", "path"}
  or null}`` -> ``{"outputs": [[ids]], "finish_reasons": [...]}``
* ``{"op": "exit"}`` -> the process ends.

Any exception is a reply ``{"error": "Type: message"}``; the worker goes on.
"""

import json
import os
import sys


def main() -> None:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything vLLM prints goes to stderr; the protocol keeps the real stdout
    sys.stdout = sys.stderr
    engine = None
    for line in sys.stdin:
        request = json.loads(line)
        op = request.get("op")
        if op == "exit":
            break
        try:
            if op == "init":
                import vllm

                engine = vllm.LLM(**request["llm"])
                reply = {"version": getattr(vllm, "__version__", "unknown")}
            elif op == "generate":
                reply = generate(engine, request)
            else:
                reply = {"error": f"unknown op {op!r}"}
        except Exception as err:  # the parent records it as the unit's error
            reply = {"error": f"{type(err).__name__}: {err}".splitlines()[0]}
        replies.write(json.dumps(reply) + "\n")


def generate(engine, request: dict) -> dict:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.lora.request import LoRARequest

    if engine is None:
        raise RuntimeError("generate before init")
    lora = request.get("lora")
    lora_request = LoRARequest(lora["name"], lora["id"], lora["path"]) if lora else None
    outputs = engine.generate(
        [TokensPrompt(prompt_token_ids=ids) for ids in request["prompts"]],
        SamplingParams(**request["sampling"]),
        lora_request=lora_request,
        use_tqdm=False,
    )
    return {
        "outputs": [list(o.outputs[0].token_ids) for o in outputs],
        "finish_reasons": [o.outputs[0].finish_reason for o in outputs],
    }


if __name__ == "__main__":
    main()
