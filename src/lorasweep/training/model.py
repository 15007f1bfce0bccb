"""Load the base model and tokenizer (hub id, local folder or built-in) and check LoRA targets."""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlparse

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
)

from lorasweep.config.schema import ALL_LINEAR, ModelConfig
from lorasweep.errors import UserError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(name: str) -> torch.dtype:
    """``auto``: bfloat16 on a GPU that has it, float32 otherwise (CPU bf16 matmuls are slow)."""
    if name != "auto":
        return _DTYPES[name]
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def model_path(config: ModelConfig, log: Callable[[str], None] = print) -> str:
    """Where ``from_pretrained`` finds the model: the built-in's cache, a folder, or a hub id."""
    if config.is_builtin:
        from lorasweep.builtin.tiny_model import BUILTIN_MODEL, builtin_model_path

        if config.name != BUILTIN_MODEL:
            raise UserError(
                f"model.name: unknown built-in model {config.name!r}; use {BUILTIN_MODEL}"
            )
        return str(builtin_model_path(log=log))
    local = Path(config.name).expanduser()
    if config.name.startswith((".", "/", "~")) and not local.is_dir():
        raise UserError(f"model.name: no such directory: {config.name}")
    return str(local) if local.is_dir() else config.name


def load_model(config: ModelConfig, log: Callable[[str], None] = print):
    """The base model (in eval mode, on the GPU when there is one) and its tokenizer.

    A 4-bit model (``model.quantization``) is quantized by bitsandbytes while it loads, and
    prepared for training once (PEFT's ``prepare_model_for_kbit_training``: unquantized layers
    in float32, every weight frozen), so every run of the process shares the same prepared base.
    """
    path = model_path(config, log)
    options = {"revision": config.revision, "trust_remote_code": config.trust_remote_code}
    quantized = {}
    if config.is_quantized:
        # On the target device as it loads: a 4-bit model cannot be moved afterwards.
        quantized = {"quantization_config": quantization_config(config),
                     "device_map": {"": device()}}  # fmt: skip
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **options)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=resolve_dtype(config.dtype), **quantized, **options
        )
    except (OSError, ValueError) as err:  # not found, gated, offline, not a causal LM
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"model.name: cannot load {config.name!r}: {reason}") from None
    if tokenizer.pad_token_id is None:
        # Padding is masked out of attention and loss, so any token serves; EOS is always there.
        tokenizer.pad_token = tokenizer.eos_token
    if config.is_quantized:
        from peft import prepare_model_for_kbit_training

        # Checkpointing is a per-run choice (training.gradient_checkpointing), not the base's.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        keep_cpu_4bit_layout(model)
        return model.eval(), tokenizer
    return model.to(device()).eval(), tokenizer


def quantization_config(config: ModelConfig):
    """bitsandbytes' 4-bit settings for ``config`` (QLoRA: nf4, double quantization)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=config.quantization,
        bnb_4bit_use_double_quant=config.double_quant,
        bnb_4bit_compute_dtype=resolve_dtype(config.compute_dtype),
    )


def keep_cpu_4bit_layout(model: torch.nn.Module) -> None:
    """Keep bitsandbytes from repacking 4-bit layers for its AVX512-BF16 CPU kernel.

    On such CPUs its first inference pass repacks each layer in place and rounds the layer's
    quantization constants to bfloat16, for good: the adapter would then be evaluated on another
    base than the one it was trained on, and the next run trained on a third. Off, every run
    trains and decodes on the base exactly as it was quantized. GPUs take no such path.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def check_quantization(config: ModelConfig) -> None:
    """A 4-bit model needs bitsandbytes; say so before anything loads.

    Raises:
        UserError: bitsandbytes is not installed.
    """
    if config.is_quantized and importlib.util.find_spec("bitsandbytes") is None:
        raise UserError(
            f"model.quantization: {config.quantization} needs bitsandbytes, which is not "
            "installed; pip install 'lorasweep[qlora]'"
        )


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """Short names of the linear layers LoRA can target (``q_proj``, ...), output head excluded."""
    output = model.get_output_embeddings() if isinstance(model, PreTrainedModel) else None
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not output
    }
    return sorted(names)


def read_architecture(config: ModelConfig) -> PretrainedConfig | None:
    """The model's config (``config.json``, no weights), or None if it cannot be reached."""
    if config.is_builtin:
        from lorasweep.builtin.tiny_model import TinyRecipe, tiny_config

        return tiny_config(TinyRecipe())
    options = {"revision": config.revision, "trust_remote_code": config.trust_remote_code}
    path = model_path(config)
    try:  # a local folder or the hub cache first: no network needed
        return AutoConfig.from_pretrained(path, local_files_only=True, **options)
    except (OSError, ValueError):
        if Path(path).is_dir() or not hub_reachable():
            return None
        try:
            return AutoConfig.from_pretrained(path, **options)
        except (OSError, ValueError):
            return None


def skeleton_module_names(architecture: PretrainedConfig, trust_remote_code: bool) -> list[str]:
    """Linear module names from the model's config alone: no memory, no weights."""
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(
            architecture, trust_remote_code=trust_remote_code
        )
    return linear_module_names(skeleton)


def context_length(architecture: PretrainedConfig) -> int | None:
    """The most positions the model was built for (``max_position_embeddings``), if it says."""
    text = architecture.get_text_config() if hasattr(architecture, "get_text_config") else None
    value = getattr(text or architecture, "max_position_embeddings", None)
    return value if isinstance(value, int) and value > 0 else None


def check_token_counts(counts: Iterable[tuple[str, int]], context: int, model: str) -> None:
    """Token counts set in the config must fit the model's context length.

    Args:
        counts: (field, tokens) pairs, e.g. ``("baseline.training.max_length", 4096)``.
        context: The model's context length.
        model: The model's name, for the error line.

    Raises:
        UserError: Naming each field whose count is larger.
    """
    problems = [
        f"{field}: {tokens} is more than {model}'s context length ({context} tokens)"
        for field, tokens in counts
        if tokens > context
    ]
    if problems:
        raise UserError(*problems)


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick connect to the hub's host, so an offline dry run answers in seconds, not after
    huggingface_hub's retries with backoff."""
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") or not host:
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_targets(targets: Iterable[tuple[str, list[str] | str]], available: list[str]) -> None:
    """Every requested module must exist in the model.

    Args:
        targets: (field, modules) pairs, the baseline's first, e.g.
            ``("experiments[2].values[1]", ["q_proj"])``.
        available: The model's linear module names.

    Raises:
        UserError: Naming each field with unknown modules and listing the modules the model has.
            A module list is reported once, against its first field: a wrong baseline is not
            repeated for every experiment value that inherits it.
    """
    problems, seen = [], set()
    for field, modules in targets:
        if modules == ALL_LINEAR or tuple(modules) in seen:
            continue
        seen.add(tuple(modules))
        missing = [m for m in modules if m not in available]
        if missing:
            problems.append(
                f"{field}: no module {', '.join(missing)} in the model; "
                f"its linear modules are {', '.join(available)}"
            )
    if problems:
        raise UserError(*problems)
