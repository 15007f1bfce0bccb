"""Checks of a sweep against its data and its model's config, made before the model's weights
load or anything is written.

``lorasweep run`` makes them before its first run, ``run --dry-run`` makes them instead of
running: a mistake found here costs seconds, not a training run.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from lorasweep.config.plan import Plan, target_fields
from lorasweep.config.schema import EvaluationConfig, SweepConfig
from lorasweep.data.prompts import check_template
from lorasweep.data.sources import Example, is_hub_source, load_eval, load_train
from lorasweep.errors import UserError
from lorasweep.metrics.registry import build_scoring
from lorasweep.training.batches import packing_refused
from lorasweep.training.model import (
    check_quantization,
    check_targets,
    check_token_counts,
    context_length,
    read_architecture,
    skeleton_module_names,
)


def check_data(sweep: SweepConfig, console: Console, dry_run: bool) -> list[Example]:
    """Read every split the sweep uses and fill the prompt template once with a real example.

    A dry run does not download a hub dataset (the run does, and checks it then).

    Returns:
        The evaluation examples (none when a dry run skips a hub dataset).

    Raises:
        UserError: A split cannot be read or used, or the template cannot be filled.
    """
    data = sweep.data
    if dry_run and is_hub_source(data.source):
        console.print(
            f"Data {data.source!r} is on the hub: a dry run does not download it; the data and "
            "the prompt are checked against it when the run starts."
        )
        return []
    load_train(data)
    examples = load_eval(data, sweep.evaluation)
    if sweep.test is not None:
        load_eval(data, sweep.test, field="test")
    check_template(sweep.prompt, data.input_column, examples[0])
    if dry_run:
        console.print(
            f"Data read; the prompt filled with a {sweep.evaluation.split!r} example: "
            f"{examples[0].key!r}."
        )
    return examples


def check_metrics(evaluation: EvaluationConfig, sample: Example | dict[str, Any] | None) -> None:
    """Build every metric and score one example with it; then the primary key must be one of
    the keys they wrote (a custom metric's keys are known only once it has scored).

    Args:
        evaluation: The validated section.
        sample: An evaluation example (or a predictions row), scored as its own prediction;
            without one, a short made-up text.

    Raises:
        UserError: A metric cannot be built or fails on the sample (naming its field), or the
            primary key is none of the metrics' keys.
    """
    scoring = build_scoring(evaluation)
    if isinstance(sample, Example):
        reference = sample.target
    elif sample is not None:
        reference = sample.get("reference", "")
    else:
        reference = "Ann and Bob meet at the cafe at 5 pm."
    first = reference if isinstance(reference, str) else (reference or [""])[0]
    scored = scoring.score([{"prediction": first, "reference": reference}])
    problems = [
        f"evaluation.metrics[{i}]: {scored.failures[metric.name]}"
        for i, metric in enumerate(scoring.metrics)
        if metric.name in scored.failures
    ]
    if problems:
        raise UserError(*problems)
    keys = scoring.names
    if evaluation.primary not in keys:
        raise UserError(
            f"evaluation.primary: {evaluation.primary!r} is not a key of the metrics; choose "
            f"one of {', '.join(keys)}"
        )


def check_model(plan: Plan, console: Console, dry_run: bool) -> None:
    """Token counts against the model's context length; in a dry run also the target modules
    (a run checks those against the loaded model).

    Only the model's config is read (the hub's copy when it is not cached), never its weights.

    Raises:
        UserError: A token count exceeds the context length, a target module is missing, or
            the 4-bit model asked for cannot be loaded (no bitsandbytes).
    """
    model = plan.sweep.model
    check_quantization(model)
    architecture = read_architecture(model)
    if architecture is None:
        if dry_run:
            console.print(
                f"Could not reach model {model.name!r} to check target module names and token "
                "counts (offline?); they are checked when the run starts."
            )
        return
    check_packing(plan, architecture.model_type)
    context = context_length(architecture)
    if context is not None:
        check_token_counts(token_counts(plan), context, model.name)
    if dry_run:
        modules = skeleton_module_names(architecture, model.trust_remote_code)
        check_targets(target_fields(plan), modules)
        lengths = f"; token counts against its context length ({context})" if context else ""
        console.print(f"Target modules checked against {model.name}'s architecture{lengths}.")


def check_packing(plan: Plan, model_type: str) -> None:
    """Refuse ``training.packing`` for a model that would let packed examples see each other."""
    why = packing_refused(model_type)
    packs = [r for r in plan.runs if r.settings.training.packing]
    if why and packs:
        field = "baseline.training.packing"
        if not plan.run(plan.baseline_id).settings.training.packing:
            field = f"training.packing (run {packs[0].run_id})"
        raise UserError(f"{field}: {why}")


def token_counts(plan: Plan) -> list[tuple[str, int]]:
    """(field, tokens) for every token count the config sets: generation's, the baseline's
    ``max_length`` and each experiment value of it."""
    sweep = plan.sweep
    counts = [("baseline.training.max_length", sweep.baseline.training.max_length)]
    if sweep.generation.max_new_tokens != "auto":
        counts.append(("generation.max_new_tokens", sweep.generation.max_new_tokens))
    for i, experiment in enumerate(plan.experiments):
        if experiment.factor == "training.max_length":
            for j, row in enumerate(experiment.rows):
                length = plan.run(row.run_id).settings.training.max_length
                counts.append((f"experiments[{i}].values[{j}] (training.max_length)", length))
    return counts
