"""A metric from the user's own Python file: ``metrics: [rouge, my_metrics.py:score]``.

The function takes one prediction and the example's references and returns its scores::

    def score(prediction: str, references: list[str]) -> dict[str, float]:
        return {"label_accuracy": float(prediction.strip() == references[0].strip())}

    score.directions = {"label_accuracy": "higher"}  # optional; every key is higher by default

Its keys are the keys it returns (the same for every example); they are learned on its first
call. An exception inside it, or a value that is not a number, fails this metric for that set of
examples with a message naming the example, and never fails a run or the other metrics.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lorasweep.metrics.base import Key, Metric, MetricError

# file.py:function, the file relative to the working directory or absolute.
CUSTOM = re.compile(r"^(?P<file>.+\.py):(?P<function>[A-Za-z_][A-Za-z0-9_]*)$")


def is_custom(entry: str) -> bool:
    return bool(CUSTOM.match(entry))


def load_function(entry: str) -> Callable[..., Any]:
    """The function an entry names, imported from its file.

    Raises:
        MetricError: The file is missing, cannot be imported, or has no such function.
    """
    match = CUSTOM.match(entry)
    if match is None:
        raise MetricError(f"{entry!r} is not file.py:function")
    path, name = Path(match["file"]).expanduser(), match["function"]
    if not path.is_file():
        raise MetricError(f"{entry}: no such file {path}")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"lorasweep_metric_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[module_name]
        raise MetricError(f"{entry}: importing {path} failed: {type(err).__name__}: {err}") from err
    function = getattr(module, name, None)
    if not callable(function):
        found = "not a function" if function is not None else "not defined"
        raise MetricError(f"{entry}: {name!r} is {found} in {path}")
    return function


class FunctionMetric(Metric):
    """Wraps ``score(prediction, references) -> dict[str, float]`` from the user's file."""

    keep_scores = True  # what --rescore computed stays until the file changes again

    def __init__(self, entry: str) -> None:
        self.entry = entry
        self.name = entry
        self._function = load_function(entry)
        self._directions = dict(getattr(self._function, "directions", {}) or {})
        bad = {k: v for k, v in self._directions.items() if v not in ("higher", "lower")}
        if bad:
            raise MetricError(f"{entry}: directions must be 'higher' or 'lower', got {bad}")
        self.keys: tuple[Key, ...] = ()  # learned on the first call

    @property
    def signature(self) -> str:
        """The entry and the file's content: an edited file gives new scores."""
        path = Path(CUSTOM.match(self.entry)["file"]).expanduser()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "-"
        return f"custom:{self.entry}:{digest}"

    def describe(self) -> str:
        keys = ", ".join(k.name for k in self.keys) or "scores"
        return f"{keys} from `{self.entry}`, averaged over examples"

    def score(self, prediction: str, reference: str) -> dict[str, float]:
        return self.score_references(prediction, [reference])

    def score_references(self, prediction: str, references: Sequence[str]) -> dict[str, float]:
        return self._call(prediction, list(references), "an example")

    def score_all(
        self, predictions: Sequence[str], references: Sequence[Sequence[str]]
    ) -> list[dict[str, float]]:
        return [
            self._call(p, list(r), f"example {i + 1}")
            for i, (p, r) in enumerate(zip(predictions, references, strict=True))
        ]

    def _call(self, prediction: str, references: list[str], where: str) -> dict[str, float]:
        try:
            scores = self._function(prediction, references)
        except Exception as err:
            problem = f"{type(err).__name__}: {err}"
            raise MetricError(f"{self.entry} raised on {where}: {problem}") from err
        if not isinstance(scores, dict) or not scores:
            raise MetricError(
                f"{self.entry} returned {type(scores).__name__} for {where}; "
                "expected a non-empty dict of key -> number"
            )
        out = {}
        for key, value in scores.items():
            if not isinstance(key, str):
                raise MetricError(f"{self.entry}: {where}: key {key!r} is not a string")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise MetricError(
                    f"{self.entry}: {where}: {key!r} is {value!r}, not a number"
                ) from None
            if not math.isfinite(number):
                raise MetricError(f"{self.entry}: {where}: {key!r} is {number}, not finite")
            out[key] = number
        if not self.keys:
            self.keys = tuple(Key(k, k, self._directions.get(k, "higher")) for k in out)
        elif set(out) != {k.name for k in self.keys}:
            raise MetricError(
                f"{self.entry} returned keys {sorted(out)} for {where}, "
                f"but {sorted(k.name for k in self.keys)} before; every example needs the same"
            )
        return out
