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


# generation.backend -> the module that implements it, with two functions:
# ``check(plan, store_root) -> str`` (before anything runs: raises UserError, returns a note for
# the console) and ``build_engine(plan, resources) -> Engine``. hf needs neither.
ENGINES = {"vllm": "lorasweep.evaluation.vllm_backend"}


def check_backend(plan: Plan, store_root: Path) -> str | None:
    """The backend's own checks of the plan, before anything runs; a note to print, or None.

    Raises:
        UserError: What the backend cannot do, in one line naming the field.
    """
    module = _module(plan)
    return module.check(plan, store_root) if module else None


def build_engine(plan: Plan, resources: SweepResources) -> Engine | None:
    """The engine ``generation.backend`` names, or None for hf (generation in this process)."""
    module = _module(plan)
    return module.build_engine(plan, resources) if module else None


def _module(plan: Plan) -> Any:
    name = plan.sweep.generation.backend
    return importlib.import_module(ENGINES[name]) if name in ENGINES else None


def describe(engine: Engine | None) -> dict[str, Any]:
    """What generated a result's predictions: the backend and its version."""
    if engine is not None:
        return engine.describe()
    import transformers

    return {"backend": "hf", "backend_version": transformers.__version__}
