"""How a sweep's wall time grows with its runs and its evaluation examples (built-in model).

Sweeps of 1, 2, 4 and 8 training runs (one experiment over the learning rate; each sweep also
evaluates the base model zero-shot), then sweeps of one run with 50, 100, 200 and 400
evaluation examples, each run in this process as ``lorasweep run`` does (``run_sweep`` and the
report) into a fresh store, the two series alternating. A straight line is fitted to each
series by least squares: its intercept is the fixed cost of a sweep, its slope the cost of one
more run (or one more evaluation example). A run's slope is split into its measured training
and generation time and the rest, the per-run overhead. A series counts as linear when no
point is further than ``--linear-tolerance`` (10%) of its value from the line.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/cost_growth.py        # about 5 minutes, 2 cores
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import transformers  # noqa: E402
from compare_plain import demo_config  # noqa: E402
from rich.console import Console  # noqa: E402

from lorasweep.config.load import validate_sweep  # noqa: E402
from lorasweep.config.plan import build_plan  # noqa: E402
from lorasweep.executors.driver import run_sweep  # noqa: E402
from lorasweep.report.markdown import write_report  # noqa: E402
from lorasweep.store.records import Status  # noqa: E402
from lorasweep.store.store import RunStore  # noqa: E402

RUNS = (1, 2, 4, 8)
EVAL_SIZES = (50, 100, 200, 400)
LEARNING_RATES = (5e-3, 4e-3, 3e-3, 2e-3, 1e-3, 8e-4, 6e-4, 5e-4)  # the baseline's first


def sweep_config(runs: int, eval_size: int, steps: int) -> dict:
    """The demo with ``runs`` training runs (the baseline and runs - 1 learning rates)."""
    raw = demo_config(steps, eval_size)
    raw["baseline"]["training"]["learning_rate"] = LEARNING_RATES[0]
    raw["experiments"] = (
        [{"name": "lr", "factor": "training.learning_rate", "values": list(LEARNING_RATES[:runs])}]
        if runs > 1
        else []
    )
    raw["confirmation"] = False
    return raw


@dataclass
class Timed:
    runs: int
    eval_size: int
    wall: float
    train: float  # sum of the runs' train_s
    generate: float  # sum of every unit's eval_s


def timed_sweep(runs: int, eval_size: int, steps: int, out: Path) -> Timed:
    plan = build_plan(validate_sweep(sweep_config(runs, eval_size, steps)))
    assert len(plan.runs) == runs, (len(plan.runs), runs)
    store = RunStore(out)
    started = time.perf_counter()
    run_sweep(plan, store, Console(quiet=True))
    write_report(store)
    wall = time.perf_counter() - started
    results = [r for r in (store.result(p.name) for p in store.root.glob("runs/*")) if r]
    if any(r.status is not Status.DONE for r in results):
        raise RuntimeError("a run failed")
    train = sum(r.timings.get("train_s", 0.0) for r in results)
    generate = sum(r.timings["eval_s"] for r in results)
    return Timed(runs, eval_size, wall, train, generate)


def line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares intercept and slope."""
    mx, my = fmean(xs), fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return my - slope * mx, slope


def worst_deviation(xs: list[float], ys: list[float]) -> float:
    """The largest distance of a point from the fitted line, as a share of the point."""
    a, b = line(xs, ys)
    return max(abs(y - (a + b * x)) / y for x, y in zip(xs, ys, strict=True))


def medians(points: list[Timed], key: str) -> dict[int, Timed]:
    """Per x value, the repeat with the median wall time."""
    by: dict[int, list[Timed]] = {}
    for p in points:
        by.setdefault(getattr(p, key), []).append(p)
    out = {}
    for x, group in by.items():
        group.sort(key=lambda p: p.wall)
        out[x] = group[len(group) // 2]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps per run (20)")
    parser.add_argument("--eval-size", type=int, default=100, help="examples in the runs series")
    parser.add_argument("--runs-in-eval-series", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="sweeps per point (median)")
    parser.add_argument("--linear-tolerance", type=float, default=0.10)
    args = parser.parse_args(argv)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    print(
        f"sweep cost growth on the built-in model; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); load average {os.getloadavg()[0]:.2f}"
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lorasweep-growth-") as tmp:
        timed_sweep(1, 8, 2, Path(tmp) / "warm-up")  # imports and the model cache, untimed
        by_runs, by_eval = [], []
        for k in range(args.repeats):
            for runs, size in zip(RUNS, EVAL_SIZES, strict=True):  # the two series alternate
                out = Path(tmp) / f"{k}-{runs}-{size}"
                by_runs.append(timed_sweep(runs, args.eval_size, args.steps, out / "runs"))
                by_eval.append(
                    timed_sweep(args.runs_in_eval_series, size, args.steps, out / "eval")
                )

    print(f"\nruns series ({args.steps} steps per run, {args.eval_size} evaluation examples):")
    a, b, fixed_measured, per_run_measured, verdict = series(by_runs, "runs", args)
    print(
        f"  fit: wall = {a:.1f}s + {b:.2f}s x runs; {verdict}\n"
        f"  per run: {per_run_measured:.2f}s of training and generation + "
        f"{b - per_run_measured:.2f}s overhead (set-up, saving, merging, scoring, report)\n"
        f"  per sweep: {fixed_measured:.1f}s of zero-shot generation + {a - fixed_measured:.1f}s "
        "overhead (data and model loading, tokenization cache, planning, report)"
    )
    print(f"\nevaluation series ({args.runs_in_eval_series} run + zero-shot):")
    c, d, _, gen_slope, verdict = series(by_eval, "eval_size", args)
    by = medians(by_eval, "eval_size")
    xs = [float(n) for n in sorted(by)]
    rest = [by[n].wall - by[n].train for n in sorted(by)]  # the run trains the same steps
    worst = worst_deviation(xs, rest)
    shape = "linear" if worst <= args.linear_tolerance else "NOT linear"
    print(
        f"  fit: wall = {c:.1f}s + {1000 * d:.1f}ms x examples; {verdict}\n"
        f"  wall less training (the same {args.steps} steps in every sweep of the series): "
        f"{line(xs, rest)[0]:.1f}s + {1000 * line(xs, rest)[1]:.1f}ms x examples; worst point "
        f"{worst:.1%} off the line ({shape})\n"
        f"  per example: {1000 * gen_slope:.1f}ms of training and generation "
        f"({args.runs_in_eval_series + 1} models decode it) + {1000 * (d - gen_slope):.1f}ms of "
        "scoring, storing and reporting"
    )
    spread = [max(g) / min(g) - 1 for g in _groups(by_runs, "runs") + _groups(by_eval, "eval_size")]
    print(
        f"\nrepeats: {args.repeats} sweeps per point, median shown; widest spread between "
        f"repeats {max(spread):.0%}; {time.perf_counter() - started:.0f}s in all; load average "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    return 0


def series(points: list[Timed], key: str, args) -> tuple[float, float, float, float, str]:
    """Print one series (the median repeat per point) and fit it: the wall time's intercept
    and slope, the same for the measured training + generation time, and a linearity verdict."""
    by = medians(points, key)
    print(f"  {key:>9}   wall   training  generation  other")
    for n, t in sorted(by.items()):
        other = t.wall - t.train - t.generate
        print(f"  {n:>9} {t.wall:6.1f}s {t.train:8.1f}s {t.generate:9.1f}s {other:6.1f}s")
    xs = [float(n) for n in sorted(by)]
    walls = [by[n].wall for n in sorted(by)]
    intercept, slope = line(xs, walls)
    measured = line(xs, [by[n].train + by[n].generate for n in sorted(by)])
    worst = worst_deviation(xs, walls)
    linear = "linear" if worst <= args.linear_tolerance else "NOT linear"
    return intercept, slope, *measured, f"worst point {worst:.1%} off the line ({linear})"


def _groups(points: list[Timed], key: str) -> list[list[float]]:
    by: dict[int, list[float]] = {}
    for p in points:
        by.setdefault(getattr(p, key), []).append(p.wall)
    return list(by.values())


if __name__ == "__main__":
    sys.exit(main())
