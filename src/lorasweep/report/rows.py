"""A configuration's row: its seeds' mean scores, their spread, its cost and its paired deltas.

Every table of the report is made of these: one row per configuration, standing for its run
ids (one per training seed), built from the run store's records and per-example scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from statistics import fmean, stdev

from lorasweep.stats.bootstrap import Delta, Interval
from lorasweep.stats.multiplicity import corrected_deltas
from lorasweep.stats.scores import ExampleScores
from lorasweep.store.records import RunResult, Status


@dataclass(frozen=True)
class Cost:
    """What a configuration costs, averaged over its finished seeds (None when not recorded).

    Attributes:
        trainable_params: Adapter parameters trained.
        train_s: Training wall time.
        train_tokens: Real (non-padding) tokens trained: a property of the configuration.
        adapter_bytes: The saved adapter's size on disk.
        train_tokens_per_s: Real (non-padding) training tokens per second.
        peak_memory_bytes: CUDA max allocated on a GPU, peak resident set size on the CPU.
        eval_s: Generation wall time on the evaluation examples.
        eval_tokens_per_s: Generated tokens per second.
    """

    trainable_params: float | None = None
    train_s: float | None = None
    train_tokens: float | None = None
    adapter_bytes: float | None = None
    train_tokens_per_s: float | None = None
    peak_memory_bytes: float | None = None
    eval_s: float | None = None
    eval_tokens_per_s: float | None = None


@dataclass(frozen=True)
class Row:
    """One configuration of a table: one run per seed.

    Attributes:
        label: The value as the config writes it (``16``), or a name (``rank=16``).
        run_ids: One run id per seed, in seed order.
        status: ``done`` when at least one seed finished, else the first seed's status.
        metrics: Mean over the finished seeds of each run's numbers (the mean over examples,
            or the corpus-level score of a metric that reports one).
        spread: Standard deviation across finished seeds (empty with fewer than two).
        done_ids: The finished runs.
        vs_baseline: Metric -> paired delta against the baseline (empty for the baseline).
        is_baseline: The row is the baseline's configuration.
        is_best: Metric -> the best value of its table.
        cost: Trainable parameters and training seconds.
        intervals: Key -> 95% bootstrap interval of its mean per-example score.
        primary: The key ``delta`` and ``interval`` are about.
    """

    label: str
    run_ids: tuple[str, ...]
    status: str
    metrics: dict[str, float]
    spread: dict[str, float]
    done_ids: tuple[str, ...]
    vs_baseline: dict[str, Delta]
    is_baseline: bool
    is_best: dict[str, bool] = field(default_factory=dict)
    cost: Cost = Cost()
    intervals: dict[str, Interval] = field(default_factory=dict)
    primary: str = "rougeL"

    @property
    def run_id(self) -> str:
        return self.run_ids[0]

    @property
    def delta(self) -> Delta | None:
        """The paired delta of the primary key against the baseline."""
        return self.vs_baseline.get(self.primary)

    @property
    def interval(self) -> Interval | None:
        """The 95% interval of the primary key's mean (None without predictions)."""
        return self.intervals.get(self.primary)

    @property
    def scored(self) -> bool:
        """Finished, with a number for the primary key (which a failed metric lacks)."""
        return self.primary in self.metrics


def configuration_row(
    label: str,
    run_ids: tuple[str, ...],
    is_baseline: bool,
    results: dict[str, RunResult],
    scores: ExampleScores,
    reference: tuple[str, ...],
) -> Row:
    """One configuration's row: its seeds' mean scores and spread, its cost, and its paired
    deltas against ``reference`` (the baseline's runs), uncorrected."""
    finished = [results[r] for r in run_ids if r in results and results[r].done]
    done_ids = tuple(r.run_id for r in finished)
    primary = scores.scoring.primary
    if not finished:
        statuses = [results[r].status.value for r in run_ids if r in results]
        return Row(label, run_ids, statuses[0] if statuses else "planned", {}, {}, (), {},
                   is_baseline, primary=primary)  # fmt: skip
    numbers = [scores.run_numbers(r) for r in finished]
    keys = [k for k in scores.scoring.names if all(k in n for n in numbers)]
    metrics = {k: fmean(n[k] for n in numbers) for k in keys}
    spread = {k: stdev(n[k] for n in numbers) for k in keys} if len(finished) > 1 else {}
    vs_baseline = {} if is_baseline else scores.compare(reference, run_ids)
    return Row(
        label,
        run_ids,
        Status.DONE.value,
        metrics,
        spread,
        done_ids,
        vs_baseline,
        is_baseline,
        cost=cost_of(finished),
        intervals=scores.intervals(done_ids),
        primary=primary,
    )


def holm_corrected(rows: list[Row], scores: ExampleScores, reference: tuple[str, ...]) -> list[Row]:
    """The rows' deltas against the baseline with Holm's correction over the experiment's
    comparisons, each key its own family (``stats.multiplicity``)."""
    corrected = [dict(r.vs_baseline) for r in rows]
    for key in dict.fromkeys(k for r in rows for k in r.vs_baseline):
        family = {i: r.vs_baseline[key] for i, r in enumerate(rows) if key in r.vs_baseline}

        def widen(i: int, level: float, key: str = key) -> Delta | None:
            return scores.compare(reference, rows[i].run_ids, level).get(key)

        for i, delta in corrected_deltas(family, widen).items():
            corrected[i][key] = delta
    return [replace(r, vs_baseline=c) for r, c in zip(rows, corrected, strict=True)]


def cost_of(finished: list[RunResult]) -> Cost:
    def mean(section: str, key: str) -> float | None:
        values = [getattr(r, section).get(key) for r in finished]
        return fmean(values) if values and None not in values else None

    return Cost(
        trainable_params=mean("efficiency", "trainable_params"),
        train_s=mean("timings", "train_s"),
        train_tokens=mean("efficiency", "train_tokens"),
        adapter_bytes=mean("efficiency", "adapter_bytes"),
        train_tokens_per_s=mean("efficiency", "train_tokens_per_s"),
        peak_memory_bytes=mean("efficiency", "peak_memory_bytes"),
        eval_s=mean("timings", "eval_s"),
        eval_tokens_per_s=mean("efficiency", "eval_tokens_per_s"),
    )
