"""The generation backend extension point: what decodes a sweep's evaluation prompts.

``hf`` (the default) decodes in this process with transformers (``evaluation/generate.py``),
on the base model with the adapter merged into a copy of its weights. Any other backend is an
``Engine``: built once per sweep from the loaded resources, handed a saved PEFT adapter's folder
per evaluation. Adding one means one module with a builder, named in ``ENGINES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from lorasweep.config.plan import Plan
    from lorasweep.training.resources import SweepResources


class Engine(Protocol):
    """Decodes prompts with a saved adapter, outside transformers' in-process generation."""

    def describe(self) -> dict[str, Any]:
        """``{"backend": name, "backend_version": version}``, recorded in each result."""

    def generate(
        self,
        prompts: list[list[int]],
        adapter: Path | None,
        max_new_tokens: int,
        on_batch: Callable[[int], None] = lambda n: None,
    ) -> tuple[list[str], list[int]]:
        """Greedy texts and generated token counts; ``adapter`` None: the base model."""

    def close(self) -> None:
        """Release the engine (its process, its GPU memory)."""


# generation.backend -> "module:builder(plan, resources) -> Engine"; hf needs none.
ENGINES = {"vllm": "lorasweep.evaluation.vllm_backend:build_engine"}


def build_engine(plan: Plan, resources: SweepResources) -> Engine | None:
    """The engine ``generation.backend`` names, or None for hf (generation in this process)."""
    name = plan.sweep.generation.backend
    if name not in ENGINES:
        return None
    module, _, builder = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), builder)(plan, resources)


def describe(engine: Engine | None) -> dict[str, Any]:
    """What generated a result's predictions: the backend and its version."""
    if engine is not None:
        return engine.describe()
    import transformers

    return {"backend": "hf", "backend_version": transformers.__version__}
