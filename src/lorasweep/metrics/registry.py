"""Metric name -> implementation, and the ``Scoring`` a sweep's ``evaluation`` section asks for.

A config entry is a built-in name (``chrf``), a name with options (``{bertscore: {model:
./roberta-large}}``) or a function in the user's file (``my_metrics.py:score``). Built-in
metrics are imported only when named, so an optional dependency (bert-score) is needed only by
the sweeps that use it.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from lorasweep.errors import UserError
from lorasweep.metrics.base import Key, Metric, MetricError
from lorasweep.metrics.custom import FunctionMetric, is_custom
from lorasweep.metrics.scoring import FailedMetric, Scoring

if TYPE_CHECKING:
    from lorasweep.config.schema import EvaluationConfig

# Metric name (``evaluation.metrics``) -> "module:class".
METRICS = {
    "rouge": "lorasweep.metrics.rouge:Rouge",
    "chrf": "lorasweep.metrics.sacrebleu_metrics:Chrf",
    "bleu": "lorasweep.metrics.sacrebleu_metrics:Bleu",
    "exact_match": "lorasweep.metrics.squad:ExactMatch",
    "f1": "lorasweep.metrics.squad:TokenF1",
    "bertscore": "lorasweep.metrics.bertscore:BertScore",
}
# What a metric needs beyond lorasweep's own dependencies: (module, pip extra).
EXTRAS = {"bertscore": ("bert_score", "lorasweep[bertscore]")}


def metric_class(name: str) -> type[Metric]:
    module, _, cls = METRICS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def parse_entry(entry: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name, options) of a config entry: ``chrf``, ``{chrf: {word_order: 2}}``, ``f.py:fn``.

    Raises:
        ValueError: The entry names no known metric, or its options are wrong.
    """
    if isinstance(entry, dict):
        if len(entry) != 1:
            raise ValueError("a metric with options is one name: {name: {option: value}}")
        ((name, options),) = entry.items()
        options = options if options is not None else {}
        if not isinstance(options, dict):
            raise ValueError(f"{name}: options must be a mapping, got {type(options).__name__}")
    else:
        name, options = entry, {}
    if is_custom(name):
        if options:
            raise ValueError(f"{name}: a metric from a file takes no options")
        return name, {}
    if name not in METRICS:
        raise ValueError(
            f"unknown metric {name!r}; use one of {', '.join(METRICS)} or file.py:function"
        )
    return name, options


def check_options(name: str, options: dict[str, Any]) -> BaseModel | None:
    """A built-in metric's validated options (None for a custom metric).

    Raises:
        ValueError: One message per wrong option, naming it.
    """
    if is_custom(name):
        return None
    try:
        return metric_class(name).Options.model_validate(options)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            where = ".".join(str(p) for p in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            problems.append(
                f"{name}.{where}: unknown option" if error["type"] == "extra_forbidden"
                else f"{name}.{where}: {message}"
            )  # fmt: skip
        raise ValueError("; ".join(problems)) from None


def declared_keys(entries: list[str | dict[str, Any]]) -> list[Key] | None:
    """The keys the entries' built-in metrics write; None when a custom metric is among them
    (its keys are known once it has scored an example)."""
    keys: list[Key] = []
    for entry in entries:
        name, options = parse_entry(entry)
        if is_custom(name):
            return None
        cls = metric_class(name)
        keys += cls.keys_for(cls.Options.model_validate(options))
    return keys


def build_metric(name: str, options: dict[str, Any], evaluation: EvaluationConfig) -> Metric:
    """One metric, ready to score.

    Raises:
        MetricError: A custom file or function is missing, an optional package is not
            installed, or the metric's own setup fails (a model folder that is not there).
    """
    if is_custom(name):
        return FunctionMetric(name)
    if name in EXTRAS:
        module, extra = EXTRAS[name]
        if importlib.util.find_spec(module) is None:
            raise MetricError(f"{name} needs the {module} package; pip install '{extra}'")
    cls = metric_class(name)
    try:
        return cls.from_config(cls.Options.model_validate(options), evaluation)
    except ValueError as err:  # the metric's own check of its options
        raise MetricError(f"{name}: {err}") from err
    except OSError as err:
        raise MetricError(f"{name}: {type(err).__name__}: {err}") from err


def build_scoring(evaluation: EvaluationConfig, strict: bool = True) -> Scoring:
    """The ``Scoring`` of an ``evaluation`` section.

    Args:
        evaluation: The validated section (names and options are already checked).
        strict: Raise for a metric that cannot be built (before a sweep starts). Otherwise the
            metric is built as one that fails with its reason, so that only it is left out (an
            evaluation on a worker that lacks the user's metric file).

    Raises:
        UserError: With ``strict``, one line per metric that cannot be built, naming its field.
    """
    metrics, problems = [], []
    for i, entry in enumerate(evaluation.metrics):
        name, options = parse_entry(entry)
        try:
            metrics.append(build_metric(name, options, evaluation))
        except MetricError as err:
            problems.append(f"evaluation.metrics[{i}]: {err}")
            metrics.append(FailedMetric(name, str(err)))
    if strict and problems:
        raise UserError(*problems)
    return Scoring(metrics, evaluation.primary)


@lru_cache(maxsize=4)
def _cached(key: str) -> Scoring:
    from lorasweep.config.schema import EvaluationConfig

    return build_scoring(EvaluationConfig.model_validate_json(key), strict=False)


def scoring_for(evaluation: EvaluationConfig) -> Scoring:
    """``build_scoring(evaluation, strict=False)``, built once per process for the same section
    (a model-based metric loads its model once for all of a sweep's evaluations)."""
    return _cached(evaluation.model_dump_json())
