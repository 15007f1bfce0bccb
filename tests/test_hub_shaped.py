"""Hub-shaped models, offline: the path a hub model takes, on models shaped like real ones.

Llama 3.2 1B Instruct, Qwen2.5 0.5B Instruct and Mistral 7B Instruct v0.3 as published: their
``config.json`` and ``generation_config.json`` as data, their chat templates verbatim, and a
tokenizer with their real special tokens. Each is shrunk in depth and width only (2 layers, a
hidden size bitsandbytes' CPU path takes, the grouped-query ratio kept, the vocabulary of a small
BPE tokenizer trained on the built-in dialogues); everything else stays as published: Llama 3's
``rope_scaling``, tied embeddings, Qwen's attention bias and sliding-window fields, eos lists.
Each folder is randomly initialised and saved as a hub snapshot is (bfloat16 weights, the
published config files), then swept through the CLI: a dry run, then a run in bfloat16 and one
on a 4-bit (nf4) base.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from lorasweep.builtin.corpus import generate_dialogues
from lorasweep.cli.main import main
from lorasweep.config.load import validate_sweep
from lorasweep.data.prompts import PromptFormatter
from lorasweep.data.sources import load_eval
from lorasweep.evaluation import evaluate as evaluation
from lorasweep.evaluation import generate as generation
from lorasweep.evaluation.generate import LeanDecoder, generate, stop_token_ids
from lorasweep.store.records import Status
from lorasweep.store.store import RunStore
from lorasweep.training.adapters import is_quantized
from lorasweep.training.model import load_model
from tests.conftest import sweep_dict, write_yaml
from tests.test_adapters import requires_bnb
from tests.test_generation import one_at_a_time

# --- meta-llama/Llama-3.2-1B-Instruct ---------------------------------------------------------
# config.json and generation_config.json as published (checked against copies in public code).
LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 16,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0",
    "use_cache": True,
    "vocab_size": 128256,
}
LLAMA_GENERATION = {
    "bos_token_id": 128000,
    "do_sample": True,
    "eos_token_id": [128001, 128008, 128009],
    "temperature": 0.6,
    "top_p": 0.9,
    "transformers_version": "4.45.0.dev0",
}
# tokenizer_config.json's chat_template, verbatim: it prints today's date unless given one.
LLAMA_TEMPLATE = r"""{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

# --- Qwen/Qwen2.5-0.5B-Instruct ---------------------------------------------------------------
QWEN_CONFIG = {
    "architectures": ["Qwen2ForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "hidden_act": "silu",
    "hidden_size": 896,
    "initializer_range": 0.02,
    "intermediate_size": 4864,
    "max_position_embeddings": 32768,
    "max_window_layers": 21,
    "model_type": "qwen2",
    "num_attention_heads": 14,
    "num_hidden_layers": 24,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.43.1",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}
# As published for the Qwen2.5 Instruct models (checked against the 1.5B's): sampling settings
# and a repetition penalty that greedy evaluation must not pick up.
QWEN_GENERATION = {
    "bos_token_id": 151643,
    "do_sample": True,
    "eos_token_id": [151645, 151643],
    "pad_token_id": 151643,
    "repetition_penalty": 1.1,
    "temperature": 0.7,
    "top_k": 20,
    "top_p": 0.8,
    "transformers_version": "4.37.0",
}
# Verbatim; without a system message it writes its own ("You are Qwen, ...").
QWEN_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

# --- mistralai/Mistral-7B-Instruct-v0.3 -------------------------------------------------------
# Written from the model card's values: no public copy of this config.json was found to check.
MISTRAL_CONFIG = {
    "architectures": ["MistralForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 32768,
    "model_type": "mistral",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_theta": 1000000.0,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.42.0.dev0",
    "use_cache": True,
    "vocab_size": 32768,
}
MISTRAL_GENERATION = {
    "_from_model_config": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "transformers_version": "4.42.0.dev0",
}
# Verbatim (checked against copies in public code): roles must alternate user/assistant, and
# anything else raises.
MISTRAL_TEMPLATE = r"""{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
            {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\n\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
"""


@dataclass(frozen=True)
class HubModel:
    """One published model: its files as data, how it shrinks, and its tokenizer's tokens."""

    config: dict
    generation: dict
    template: str
    shrink: dict  # depth and width only
    real_ids: dict[int, str]  # the published token ids its config files name
    bos: str | None
    eos: str
    pad: str | None
    specials: tuple[str, ...]  # every special token, ids 0, 1, ... in this order
    user_turn: str  # what the rendered prompt shows of the user's turn
    metaspace: bool = False  # SentencePiece-style spaces ("▁") instead of byte-level BPE
    unk: str | None = None


def shrunk(heads: int, kv_heads: int, **extra) -> dict:
    """Two layers of width 128 (bitsandbytes' CPU path is fast with multiples of 64), the MLP
    twice as wide, and the published ratio of query to key-value heads."""
    return dict(num_hidden_layers=2, hidden_size=128, intermediate_size=256,
                num_attention_heads=heads, num_key_value_heads=kv_heads, **extra)  # fmt: skip


HUB = {
    "llama-3.2": HubModel(
        LLAMA_CONFIG,
        LLAMA_GENERATION,
        LLAMA_TEMPLATE,
        shrink=shrunk(heads=4, kv_heads=1, head_dim=32),  # 32 heads over 8 kv heads
        real_ids={
            128000: "<|begin_of_text|>",
            128001: "<|end_of_text|>",
            128008: "<|eom_id|>",
            128009: "<|eot_id|>",
        },
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",  # the Instruct tokenizer's; the base model's is <|end_of_text|>
        pad=None,  # none published: lorasweep pads with EOS
        specials=(
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eom_id|>",
            "<|eot_id|>",
        ),
        user_turn="<|start_header_id|>user<|end_header_id|>\n\n",
    ),
    "qwen2.5": HubModel(
        QWEN_CONFIG,
        QWEN_GENERATION,
        QWEN_TEMPLATE,
        # 14 heads over 2 kv heads, of the published size 64 (Qwen2 reads a head_dim key): no
        # width that bitsandbytes' CPU path is fast with is a multiple of 7.
        shrink=shrunk(heads=7, kv_heads=1, head_dim=64),
        real_ids={151643: "<|endoftext|>", 151645: "<|im_end|>"},
        bos=None,  # Qwen's tokenizer adds no BOS; its template starts with <|im_start|>
        eos="<|im_end|>",
        pad="<|endoftext|>",
        specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        user_turn="<|im_start|>user\n",
    ),
    "mistral-v0.3": HubModel(
        MISTRAL_CONFIG,
        MISTRAL_GENERATION,
        MISTRAL_TEMPLATE,
        shrink=shrunk(heads=4, kv_heads=1),  # 32 heads over 8 kv heads
        real_ids={1: "<s>", 2: "</s>"},
        bos="<s>",
        eos="</s>",
        pad=None,
        specials=("<unk>", "<s>", "</s>", "[INST]", "[/INST]"),
        user_turn="<s>[INST] ",
        metaspace=True,
        unk="<unk>",
    ),
}
VOCAB = 512  # BPE merges over the dialogues; the embedding shrinks to the tokenizer's size


def train_hub_tokenizer(hub: HubModel, texts: list[str]) -> PreTrainedTokenizerFast:
    """A small BPE tokenizer with the model's special tokens and its published chat template."""
    core = Tokenizer(models.BPE(unk_token=hub.unk))
    if hub.metaspace:
        core.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
        core.decoder = decoders.Metaspace(prepend_scheme="first")
        alphabet = sorted({c for text in texts for c in text.replace(" ", "▁")})
    else:
        core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        core.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=list(hub.specials),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    if hub.bos is not None:  # a plain (non-chat) prompt starts with BOS, as on the hub
        bos = (hub.bos, core.token_to_id(hub.bos))
        core.post_processor = processors.TemplateProcessing(
            single=f"{hub.bos} $A", pair=f"{hub.bos} $A $B", special_tokens=[bos]
        )
    named = {hub.bos, hub.eos, hub.pad, hub.unk}
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=hub.bos,
        eos_token=hub.eos,
        pad_token=hub.pad,
        unk_token=hub.unk,
        additional_special_tokens=[t for t in hub.specials if t not in named],
        chat_template=hub.template,
    )


def local_ids(value, hub: HubModel, tokenizer: PreTrainedTokenizerFast):
    """A published token id (or list of them) as the id of the same token in ``tokenizer``."""
    if isinstance(value, list):
        return [local_ids(v, hub, tokenizer) for v in value]
    return tokenizer.convert_tokens_to_ids(hub.real_ids[value])


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def as_published(published: dict, hub: HubModel, tokenizer, **changes) -> dict:
    """A config file with its token ids mapped to ``tokenizer``'s and ``changes`` applied."""
    ids = {k: local_ids(v, hub, tokenizer) for k, v in published.items() if k.endswith("token_id")}
    return {**published, **ids, **changes}


def build_hub_folder(hub: HubModel, out: Path) -> Path:
    """Tokenizer, random weights (bfloat16, as hub snapshots ship them) and the published files."""
    rows = generate_dialogues(300, seed=7)
    tokenizer = train_hub_tokenizer(hub, [r["dialogue"] + "\n" + r["summary"] for r in rows])
    config = as_published(hub.config, hub, tokenizer, **hub.shrink, vocab_size=len(tokenizer))
    (out / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    # Drawn wider than the published initializer_range (0.02): at that scale two random layers
    # repeat the prompt's last token whatever it reads, and decoding would be tested on nothing.
    architecture = AutoConfig.from_pretrained(out, initializer_range=0.1)
    model = AutoModelForCausalLM.from_config(architecture)
    model.to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    # save_pretrained writes today's transformers' format; a hub snapshot has the published one.
    (out / "config.json").write_text(json.dumps(config, indent=2))
    generation_config = as_published(hub.generation, hub, tokenizer)
    (out / "generation_config.json").write_text(json.dumps(generation_config, indent=2))
    return out


@pytest.fixture(scope="module", params=list(HUB))
def hub_model(request, tmp_path_factory) -> tuple[HubModel, Path]:
    hub = HUB[request.param]
    return hub, build_hub_folder(hub, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def short_chats(tmp_path_factory) -> Path:
    """train.jsonl (8 rows) and validation.jsonl (4) of built-in chats cut to three lines: on
    bitsandbytes' CPU path and in bfloat16 every forward pass is slow, and prompt-long."""
    out = tmp_path_factory.mktemp("short-chats")
    for name, n, seed in (("train", 8, 11), ("validation", 4, 12)):
        rows = [{**r, "dialogue": "\n".join(r["dialogue"].splitlines()[:3])}
                for r in generate_dialogues(n, seed)]  # fmt: skip
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def hub_sweep(folder: Path, data: Path, **model) -> dict:
    """The smallest sweep through every stage: the zero-shot base and one trained baseline."""
    raw = sweep_dict(folder, data)
    raw["model"].update(model)
    raw["baseline"]["lora"]["target_modules"] = "attention+mlp"  # names checked against each
    raw["baseline"]["training"].update(max_steps=2, batch_size=2)
    raw["evaluation"]["size"] = 4
    raw["generation"] = {"max_new_tokens": 8, "batch_size": 4}
    raw["experiments"] = []
    return raw


def test_the_folder_reads_as_the_hub_snapshot_does(hub_model, short_chats):
    """Published config files, the template's prompt and reply, every stop token."""
    hub, folder = hub_model
    on_disk = json.loads((folder / "config.json").read_text())
    assert on_disk.keys() >= hub.config.keys() and "rope_parameters" not in on_disk  # not v5's
    sweep = validate_sweep(hub_sweep(folder, short_chats))
    model, tokenizer = load_model(sweep.model, log=lambda line: None)
    tied = hub.config["tie_word_embeddings"]
    assert model.config.tie_word_embeddings == tied
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    if "rope_scaling" in hub.config:
        assert model.config.rope_parameters["rope_type"] == "llama3"
    assert LeanDecoder.unsupported(model, 1024) is None

    # Every stop token generation_config.json names ends a reply (Llama 3: <|eot_id|> too).
    published = as_list(hub.generation["eos_token_id"])
    stops = sorted({*(local_ids(i, hub, tokenizer) for i in published), tokenizer.eos_token_id})
    assert stop_token_ids(model, tokenizer) == stops
    assert tokenizer.convert_tokens_to_ids(hub.eos) in stops

    formatter = PromptFormatter(tokenizer, sweep.prompt, sweep.data.input_column)
    example = load_eval(sweep.data, sweep.evaluation)[0]
    prompt = formatter.prompt_text(example.input)
    assert hub.user_turn + "Summarize.\n" + example.input in prompt
    encoded = formatter.encode_example(example, max_length=1024)
    reply = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label >= 0]
    assert tokenizer.convert_tokens_to_ids(hub.eos) in reply  # it learns to end its turn
    if hub is HUB["llama-3.2"]:
        assert "Today Date: 26 Jul 2024" in prompt  # not today's: scores must not move daily
    if hub is HUB["qwen2.5"]:
        assert "You are Qwen, created by Alibaba Cloud." in prompt  # its default system turn


def greedy_gap(model, prompt, new, stops, max_new_tokens) -> float:
    """How far ``new`` strays from greedy decoding of ``prompt``: the largest gap between a
    step's top logit and the one of the token taken (or, where it stopped, of a stop token)."""
    with torch.inference_mode():
        logits = model(torch.tensor([prompt + new])).logits[0, len(prompt) - 1 :].float()
    gaps = [logits[step].max() - logits[step, token] for step, token in enumerate(new)]
    if len(new) < max_new_tokens:
        gaps.append(logits[len(new)].max() - logits[len(new), stops].max())
    return max(gaps).item()


@pytest.fixture
def decoding(monkeypatch) -> list[dict]:
    """What every evaluation of a run decoded: its model, prompts and stop tokens, what the lean
    decoder made of each prompt and, measured while the model is as it was evaluated (adapter
    merged or attached), how far from greedy each output is."""
    calls: list[dict] = []
    real_generate = evaluation.generate

    class Recording(LeanDecoder):
        def __call__(self, prompts):
            outputs = super().__call__(prompts)
            calls[-1]["lean"].update(zip(map(tuple, prompts), outputs, strict=True))
            return outputs

    def recording_generate(model, tokenizer, prompts, max_new_tokens, *args, **kwargs):
        stops = stop_token_ids(model, tokenizer)
        call = {"model": model, "prompts": prompts, "stops": stops, "lean": {}}
        calls.append(call)
        decoded = real_generate(model, tokenizer, prompts, max_new_tokens, *args, **kwargs)
        call["lean"] = [call["lean"].get(tuple(p)) for p in prompts]  # None: not decoded there
        if None not in call["lean"]:
            call["gaps"] = [greedy_gap(model, p, new, stops, max_new_tokens)
                            for p, new in zip(prompts, call["lean"], strict=True)]  # fmt: skip
        return decoded

    monkeypatch.setattr(generation, "LeanDecoder", Recording)
    monkeypatch.setattr(evaluation, "generate", recording_generate)
    return calls


@pytest.mark.parametrize(
    "options",
    [
        {"dtype": "bfloat16"},
        pytest.param({"quantization": "nf4", "compute_dtype": "float32"}, marks=requires_bnb),
    ],
    ids=["bf16", "nf4"],
)
def test_a_sweep_takes_the_hub_path(hub_model, short_chats, tmp_path, decoding, options):
    hub, folder = hub_model
    config = write_yaml(tmp_path / "sweep.yaml", hub_sweep(folder, short_chats, **options))
    assert main(["run", str(config), "--dry-run"]) == 0  # targets checked against config.json
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 0

    store = RunStore(tmp_path / "out")
    assert [store.result(u.run_id).status for u in store.plan().units()] == [Status.DONE] * 2
    assert len(decoding) == 2  # the zero-shot base, then the baseline with its adapter
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for call in decoding:
        model = call["model"]
        assert is_quantized(model) if "quantization" in options else model.dtype == torch.bfloat16
        for prompt in call["prompts"]:  # the chat template's rendering of the user's turn
            assert hub.user_turn + "Summarize." in tokenizer.decode(prompt)
        assert None not in call["lean"]  # the lean decoder decoded every prompt
        # It decoded greedily: in bfloat16 up to rounding (a step of these logits, about 3,
        # is 1/64), where a batch rounds differently from one prompt; nf4 layers compute in
        # float32. Token for token as transformers' generate one prompt at a time: see
        # test_both_decoders_are_greedy_whatever_generation_config_says.
        assert max(call["gaps"]) <= (2**-6 if model.dtype == torch.bfloat16 else 1e-4)


def argmax_one_at_a_time(model, prompts, max_new_tokens, stops) -> list[list[int]]:
    """Greedy decoding spelled out: each step's argmax, no generation config to consult."""
    outputs = []
    with torch.inference_mode():
        for prompt in prompts:
            step, new = model(torch.tensor([prompt])), []
            while len(new) < max_new_tokens:
                token = step.logits[0, -1].argmax().item()
                if token in stops:
                    break
                new.append(token)
                step = model(torch.tensor([[token]]), cache=step.cache)
            outputs.append(new)
    return outputs


def test_both_decoders_are_greedy_whatever_generation_config_says(hub_model, short_chats):
    """On a sweep's prompts, the lean decoder and transformers' ``generate`` (batched by
    lorasweep, and one prompt at a time) decode as argmax does. Qwen2.5's
    generation_config.json asks for sampling and repetition_penalty 1.1, which ``generate``
    applies wherever its caller leaves a setting unset; Llama 3.2's for temperature 0.6."""
    hub, folder = hub_model
    sweep = validate_sweep(hub_sweep(folder, short_chats))
    model, tokenizer = load_model(sweep.model, log=lambda line: None)
    formatter = PromptFormatter(tokenizer, sweep.prompt, sweep.data.input_column)
    prompts = [formatter.encode_prompt(e.input) for e in load_eval(sweep.data, sweep.evaluation)]
    stops = stop_token_ids(model, tokenizer)
    expected = argmax_one_at_a_time(model, prompts, 8, stops)

    assert LeanDecoder(model, prompts, 8, stops)(prompts) == expected
    texts, lengths = generate(model, tokenizer, prompts, 8, batch_size=3, lean=False)
    assert lengths == [len(e) for e in expected]  # transformers' generate, batched
    assert texts == [tokenizer.decode(e, skip_special_tokens=True).strip() for e in expected]
    assert one_at_a_time(model, prompts, 8, stops) == expected  # and one prompt at a time
