"""The samplers a search can name (``search.sampler``), each built from the config alone.

Adding one is one entry here: a function from the search config and its distributions to an
Optuna sampler. Every sampler is seeded, so the same store gives the same suggestions.
"""

from __future__ import annotations

from collections.abc import Callable

from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler

from lorasweep.config.search import SearchConfig


def startup_trials(trials: int) -> int:
    """TPE's random trials before it models the scores: a third of the budget, 2 to 10."""
    return max(2, min(10, trials // 3))


class AskAndTellGrid(GridSampler):
    """Optuna's grid, without its stop at the end of the grid: ``study.stop`` works only
    inside ``study.optimize``, and the search stops by itself after its trials (at most the
    grid)."""

    def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001
        return None


def _grid(search: SearchConfig, space: dict[str, BaseDistribution]) -> BaseSampler:
    grid = {name: list(d.choices) for name, d in space.items()
            if isinstance(d, CategoricalDistribution)}  # fmt: skip
    return AskAndTellGrid(grid, seed=search.seed)


def _random(search: SearchConfig, space: dict[str, BaseDistribution]) -> BaseSampler:
    return RandomSampler(seed=search.seed)


def _tpe(search: SearchConfig, space: dict[str, BaseDistribution]) -> BaseSampler:
    # constant_liar: a trial still running counts as the worst value seen, so a batch asked at
    # once spreads out instead of asking the same point several times.
    return TPESampler(seed=search.seed, n_startup_trials=startup_trials(search.total_trials),
                      constant_liar=True)  # fmt: skip


SAMPLERS: dict[str, Callable[[SearchConfig, dict[str, BaseDistribution]], BaseSampler]] = {
    "grid": _grid,
    "random": _random,
    "tpe": _tpe,
}


def build_sampler(search: SearchConfig, space: dict[str, BaseDistribution]) -> BaseSampler:
    """The sampler ``search.sampler`` names."""
    return SAMPLERS[search.sampler](search, space)
