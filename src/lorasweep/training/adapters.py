"""One base model per process, shared by every run: a run adds its adapter and removes it after.

No run copies the base weights. Training adds a fresh adapter to the shared base; evaluation
decodes with the adapter merged into the base weights in place (as fast as the base model
alone), then writes the adapted layers' original weights back, bit for bit, from a copy of
those layers only, kept in host memory. A 4-bit base cannot take a merge without a lossy
requantization, so it decodes through the unmerged adapter (with DoRA's weight norms cached).
Whatever happens inside, the base leaves these context managers as it came in: no adapter
layer, the same weights, in eval mode, with no checkpointing hooks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from peft.tuners.tuners_utils import BaseTunerLayer
from transformers import PreTrainedModel


def peft_config(lora: dict[str, Any]) -> PeftLoraConfig:
    """PEFT's config for a resolved ``lora`` section (``use_rslora``/``use_dora`` when on)."""
    return PeftLoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=lora["target_modules"],
        use_rslora=lora.get("use_rslora", False),
        use_dora=lora.get("use_dora", False),
        task_type="CAUSAL_LM",
    )


@contextmanager
def new_adapter(base: PreTrainedModel, lora: dict[str, Any]) -> Iterator[PeftModel]:
    """``base`` with a freshly initialised adapter (seed the RNG first), removed on exit."""
    try:
        yield get_peft_model(base, peft_config(lora))
    finally:
        remove_adapters(base)


@contextmanager
def saved_adapter(base: PreTrainedModel, folder: Path) -> Iterator[PeftModel]:
    """``base`` with the PEFT adapter saved in ``folder``, removed on exit."""
    if not folder.is_dir():
        raise FileNotFoundError(f"the adapter is missing from {folder.parent}")
    try:
        yield PeftModel.from_pretrained(base, folder)
    finally:
        remove_adapters(base)


@contextmanager
def for_decoding(model: PeftModel) -> Iterator[torch.nn.Module]:
    """The adapted model, ready to decode fast; its base weights are the originals on exit.

    Merged in place on a full-precision base: the adapted layers' weights are copied to host
    memory first and written back afterwards, so no rounding of an unmerge ever reaches the
    base. On a 4-bit base the adapter stays unmerged.
    """
    if is_quantized(model):
        from peft.helpers import DoraCaching

        model.eval()
        with DoraCaching():  # DoRA's weight norms once per layer, not once per forward pass
            yield model
        return
    weights = [layer.get_base_layer().weight for layer in _lora_layers(model)]
    originals = [w.detach().to("cpu", copy=True) for w in weights]
    merged = model.merge_and_unload()
    try:
        yield merged.eval()
    finally:
        with torch.no_grad():
            for weight, original in zip(weights, originals, strict=True):
                weight.copy_(original)


@contextmanager
def checkpointing(base: PreTrainedModel, enabled: bool) -> Iterator[None]:
    """Gradient (activation) checkpointing on ``base`` while inside, when ``enabled``."""
    if not enabled:
        yield
        return
    # transformers 5.x renamed gradient_checkpointing_* to activation_checkpointing_*.
    enable = getattr(base, "activation_checkpointing_enable", None)
    disable = getattr(base, "activation_checkpointing_disable", None)
    if enable is None:
        enable, disable = base.gradient_checkpointing_enable, base.gradient_checkpointing_disable
    # Non-reentrant: recomputes with the same RNG state (dropout masks), so the gradients are
    # the same, and needs no gradient on the inputs.
    enable({"use_reentrant": False})
    try:
        yield
    finally:
        disable()
        base.disable_input_require_grads()  # the hook enabling installs


def remove_adapters(base: torch.nn.Module) -> None:
    """Put every adapted layer's original module back into ``base`` and drop PEFT's config:
    afterwards ``base`` is the model it was before any adapter was added (or half added)."""
    for name, module in list(base.named_modules()):
        if isinstance(module, BaseTunerLayer):
            parent, _, child = name.rpartition(".")
            setattr(base.get_submodule(parent), child, module.get_base_layer())
    if hasattr(base, "peft_config"):
        del base.peft_config
    base.eval()


def has_adapter(model: torch.nn.Module) -> bool:
    return any(isinstance(m, BaseTunerLayer) for m in model.modules())


def is_quantized(model: torch.nn.Module) -> bool:
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    return bool(getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_quantized", False))


def _lora_layers(model: torch.nn.Module) -> list[LoraLayer]:
    return [m for m in model.modules() if isinstance(m, LoraLayer)]
