"""Ask and tell, batch by batch, with the run store as the only state.

The study lives in memory and is rebuilt on every ``lorasweep run`` by replaying the search
from its first trial: the same seed asks the same suggestions, and a suggestion whose runs are
done in the store is answered from the store at no cost (the driver skips done units). So a
search killed at any moment resumes to exactly the trials an uninterrupted one asks, and a rerun
of a finished search trains nothing. (Adding the stored trials to a fresh study would not do
this: the sampler's random state would not have advanced past them.)

Trials are asked ``batch`` at a time and run together (in parallel on Ray); each is told its
value when the batch is over, in order, so the history every later suggestion rests on does not
depend on which run finished first.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lorasweep.errors import UserError
from lorasweep.faults import fault_point
from lorasweep.metrics.registry import scoring_for
from lorasweep.stats.scores import ExampleScores
from lorasweep.store.records import PlannedSearch, PlannedTrial, PlanRecord, Status
from lorasweep.store.store import RunStore

if TYPE_CHECKING:
    from lorasweep.config.plan import Plan, Unit
    from lorasweep.config.search import SearchConfig


def import_optuna() -> Any:
    """The optuna module, or a one-line user error naming the extra that provides it."""
    try:
        import optuna
    except ImportError:
        raise UserError(
            "search: needs the optuna package; pip install 'lorasweep[search]'"
        ) from None
    optuna.logging.set_verbosity(logging.WARNING)  # lorasweep prints its own progress
    return optuna


def run_search(
    plan: Plan,
    store: RunStore,
    run_units: Callable[[Sequence[Unit]], None],
    save_plan: Callable[[], None],
    parallelism: int = 1,
    log: Callable[[str], None] = print,
) -> PlannedSearch:
    """Ask, run and tell every trial of ``plan.sweep.search``; trials join the plan as asked.

    Args:
        plan: The sweep's plan; each trial's runs are added to it.
        store: Where done runs answer their trials.
        run_units: Computes the units not done yet (the driver's).
        save_plan: Writes the plan with the trials asked so far, before they run.
        parallelism: How many runs the executor computes at once: the default batch.
        log: Where progress lines go.

    Returns:
        The search's trials, as recorded in the plan.
    """
    from lorasweep.search.samplers import build_sampler
    from lorasweep.search.space import parameters, settings

    optuna = import_optuna()
    from optuna.distributions import distribution_to_json
    from optuna.trial import TrialState

    search = plan.sweep.search
    params = parameters(search, plan.sweep.baseline)
    space = {p.name: p.distribution for p in params}
    scoring = scoring_for(plan.sweep.evaluation)
    direction = "maximize" if scoring.direction(scoring.primary) == "higher" else "minimize"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(direction=direction, sampler=build_sampler(search, space))
    scores = ExampleScores(store, set(), scoring)
    target, batch = search.total_trials, search.batch or max(1, parallelism)
    distributions = {name: distribution_to_json(d) for name, d in space.items()}
    planned = PlannedSearch(search.sampler, search.seed, target, distributions)
    log(f"Search: {target} trials ({search.sampler}, seed {search.seed}), {batch} at a time.")
    while len(planned.trials) < target:
        asked = [study.ask(space) for _ in range(min(batch, target - len(planned.trials)))]
        new = []
        for trial in asked:
            values = {p.name: p.value(trial.params[p.name]) for p in params}
            number = trial.number + 1
            run_ids = plan.add_runs(settings(plan.sweep.baseline, values), f"trial {number}")
            new.append(PlannedTrial(number, values, run_ids))
        planned = replace(planned, trials=(*planned.trials, *new))
        plan.search = planned
        save_plan()
        run_units([plan.unit(r) for r in dict.fromkeys(r for t in new for r in t.run_ids)])
        for trial, done in zip(asked, new, strict=True):
            value = objective(store, scores, done.run_ids)
            if value is None:
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, value)
        fault_point("search-batch")
    return planned


def describe_search(search: SearchConfig) -> str:
    """The search in one line, for the printed plan."""
    batch = (
        f"{search.batch} at a time" if search.batch else "as many at a time as the executor runs"
    )
    return (
        f"Then: a {search.sampler} search (seed {search.seed}) of {search.total_trials} trials "
        f"over {', '.join(search.space)}, {batch}; each trial joins the plan as it is asked, "
        "and one that repeats a configuration already done costs nothing."
    )


def objective(store: RunStore, scores: ExampleScores, run_ids: Sequence[str]) -> float | None:
    """A trial's value: the primary key's mean over its finished seeds (None: none finished)."""
    values = []
    for run_id in run_ids:
        result = store.result(run_id)
        if result is not None and result.status is Status.DONE:
            number = scores.run_numbers(result).get(scores.scoring.primary)
            if number is not None:
                values.append(number)
    return sum(values) / len(values) if values else None


def best_trial(plan: PlanRecord, store: RunStore) -> PlannedTrial | None:
    """The finished trial with the best primary score; the first asked of equal ones."""
    if plan.search is None:
        return None
    from lorasweep.store.sweep_file import read_sweep

    scoring = scoring_for(read_sweep(store.root).evaluation)
    scores = ExampleScores(store, set(), scoring)
    sign = 1 if scoring.direction(scoring.primary) == "higher" else -1
    best, best_value = None, None
    for trial in plan.search.trials:
        value = objective(store, scores, trial.run_ids)
        if value is not None and (best_value is None or sign * value > sign * best_value):
            best, best_value = trial, value
    return best
