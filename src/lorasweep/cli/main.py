"""The ``lorasweep`` command: run, report, status, demo, export, score, analyze.

A user's mistake (config, data, paths) prints one line per problem and exits with status 2,
without a traceback and before anything is written. A sweep with failed runs exits with 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from importlib import resources
from pathlib import Path

from rich.console import Console

from lorasweep import __version__
from lorasweep.cli import analyze, baselines, export, score
from lorasweep.errors import UserError
from lorasweep.paths import check_output_dir

EXIT_FAILED_RUNS, EXIT_USER_ERROR = 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # Pipes and CI logs get 120 columns instead of rich's 80, so plan tables do not wrap.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    _quiet_libraries()
    try:
        return args.handler(args, console)
    except UserError as err:
        for problem in err.problems:
            print(f"lorasweep: error: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("lorasweep: interrupted; finished runs are kept, rerun to go on", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lorasweep", description="Config-driven LoRA hyperparameter sweeps with evidence."
    )
    parser.add_argument("--version", action="version", version=f"lorasweep {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="validate, plan, train and evaluate a sweep, report")
    run.add_argument("config", type=Path, help="the sweep YAML file")
    run.add_argument("--out", type=Path, help="sweep folder (default: runs/<sweep name>)")
    run.add_argument("--dry-run", action="store_true", help="validate and print the plan only")
    run.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    run.add_argument(
        "--wait", action="store_true", help="queue behind another run on the same folder"
    )
    run.add_argument(
        "--executor",
        choices=("local", "ray"),
        help="where runs execute (default: the config's execution.executor, else local)",
    )
    run.add_argument(
        "--ray-address",
        help="with --executor ray: the cluster to join (auto, host:port, ray://...)",
    )
    baselines.add_refresh_flag(run)
    run.set_defaults(handler=_run)

    report = commands.add_parser("report", help="rebuild the report from a sweep folder")
    report.add_argument("sweep_dir", type=Path)
    report.add_argument(
        "--config",
        type=Path,
        help="the sweep's config with other evaluation.metrics or evaluation.primary: the "
        "stored predictions are scored with them, nothing is trained or generated",
    )
    report.add_argument(
        "--rescore",
        action="store_true",
        help="score every stored prediction again (after a custom metric's code changed)",
    )
    report.set_defaults(handler=_report)

    status = commands.add_parser("status", help="planned, done and failed runs of a sweep")
    status.add_argument("sweep_dir", type=Path)
    status.set_defaults(handler=_status)

    demo = commands.add_parser("demo", help="the built-in offline demo sweep (CPU, minutes)")
    demo.add_argument("--out", type=Path, default=Path("lorasweep-demo"))
    demo.set_defaults(handler=_demo)

    export.add_parser(commands)
    score.add_parser(commands)
    analyze.add_parser(commands)
    baselines.add_parser(commands)
    return parser


def _run(args: argparse.Namespace, console: Console) -> int:
    from lorasweep.config.load import load_sweep

    sweep = load_sweep(args.config)
    execution = {}
    if args.executor:
        execution["executor"] = args.executor
    if args.ray_address:
        execution["ray_address"] = args.ray_address
    if execution:  # the command line wins over the config; neither is part of a run's hash
        sweep = sweep.model_copy(update={"execution": sweep.execution.model_copy(update=execution)})
    out = args.out or Path("runs") / sweep.name
    return _run_sweep(
        sweep, out, console, dry_run=args.dry_run, retry_failed=args.retry_failed, wait=args.wait,
        refresh_baselines=args.refresh_baselines,
    )  # fmt: skip


def _run_sweep(
    sweep, out: Path, console: Console, dry_run: bool, retry_failed: bool, wait: bool = False,
    refresh_baselines: bool = False,
) -> int:  # fmt: skip
    from lorasweep.config.plan import build_plan
    from lorasweep.evaluation.backends import check_backend
    from lorasweep.executors.base import build_executor
    from lorasweep.executors.driver import run_sweep
    from lorasweep.preflight import check_data, check_metrics, check_model
    from lorasweep.report.markdown import check_report_dir, write_report
    from lorasweep.store.store import RunStore
    from lorasweep.tracking.factory import build_trackers

    check_output_dir(out, "--out")
    store = RunStore(out)
    store.check_format()  # a folder of another store format is refused before anything loads
    check_report_dir(store)
    plan = build_plan(sweep)
    _print_plan(plan, console)
    check_model(plan, console, dry_run)
    backend = check_backend(plan, out)  # another generation backend's own checks
    if backend:
        console.print(backend)
    examples = check_data(sweep, console, dry_run)
    check_metrics(sweep.evaluation, examples[0] if examples else None)
    api = baselines.Baselines(sweep, out, examples, refresh_baselines)  # keys, before training
    if dry_run:
        console.print("Dry run: nothing was trained or written.")
        return 0
    executor = build_executor(sweep.execution.executor, sweep.execution)
    tracker = build_trackers(sweep.tracking, out)
    outcome = run_sweep(
        plan, store, console, executor, retry_failed=retry_failed, tracker=tracker, wait=wait
    )
    api_failed = [r.name for r in api.run(console) if not r.done]
    report = write_report(store)
    tracker.end_sweep(report.parent)
    console.print(
        f"\nSweep {sweep.name}: {len(outcome.done)} run(s) done, {len(outcome.skipped)} skipped "
        f"(already in the store), {len(outcome.failed)} failed, in {outcome.seconds:.0f}s."
    )
    for run_id, error in outcome.failed.items():
        console.print(f"  failed {run_id}: {error} (details: {store.run_dir(run_id)}/result.json)")
    if outcome.failed and not retry_failed:
        console.print("Rerun with --retry-failed to run the failed runs again.")
    console.print(f"Report: {report}")
    for name in api_failed:
        console.print(f"  baseline {name} failed: see {out}/baselines/{name}/result.json")
    warn_damaged(store)
    return EXIT_FAILED_RUNS if outcome.failed or api_failed else 0


def _print_plan(plan, console: Console) -> None:
    from rich.table import Table

    from lorasweep.config.plan import format_number

    sweep = plan.sweep
    seeds = len(plan.seeds)
    runs = f"{len(plan.runs) // seeds} unique training runs" + (
        f" x {seeds} seeds" if seeds > 1 else ""
    )
    console.print(
        f"Sweep [bold]{sweep.name}[/bold]: {runs} "
        f"+ 1 zero-shot evaluation of the base model ({sweep.model.name})."
    )
    table = Table("run", "r", "alpha", "lr", "targets", "serves", box=None, pad_edge=False)
    for run in plan.runs:
        lora, training = run.resolved["lora"], run.resolved["training"]
        modules = lora["target_modules"]
        modules = (
            modules
            if isinstance(modules, str)
            else ",".join(m.removesuffix("_proj") for m in modules)
        )
        learning_rate = format_number(training["learning_rate"])
        table.add_row(
            run.run_id, str(lora["r"]), f"{lora['alpha']:g}", learning_rate, modules,
            ", ".join(run.labels),
        )  # fmt: skip
    table.add_row(plan.base_eval.run_id, "", "", "", "", "zero-shot (base model)")
    console.print(table)
    if sweep.confirmation and plan.experiments:
        console.print(
            "Then: a confirmation run of every experiment's recommended value combined "
            "(chosen from the results; no new run if it is one of the above)."
        )
    if sweep.baselines:
        names = ", ".join(f"{b.name} ({b.model})" for b in sweep.baselines)
        console.print(
            f"Then: API baselines {names}, asked the {sweep.evaluation.size} evaluation examples "
            "(what the sweep's response cache holds is not asked again)."
        )
    if sweep.search is not None:
        from lorasweep.search.study import describe_search

        console.print(describe_search(sweep.search))
    if sweep.test is not None:
        adapters = " (every seed's adapter)" if seeds > 1 else ""
        chosen = ["the baseline"]
        chosen += ["confirmation", "best configurations"] if plan.experiments else []
        chosen += ["the best search trial"] if sweep.search else []
        named = f"{', '.join(chosen[:-1])} and {chosen[-1]}" if len(chosen) > 1 else chosen[0]
        console.print(
            f"Then: {named}{adapters} re-evaluated on {sweep.test.size} examples of the "
            f"{sweep.test.split!r} split, each once."
        )


def _report(args: argparse.Namespace, console: Console) -> int:
    from lorasweep.report.markdown import write_report
    from lorasweep.store.store import open_sweep

    store = open_sweep(args.sweep_dir)
    if args.config is not None:
        _change_scoring(store, args.config, console)
    console.print(f"Report: {write_report(store, rescore=args.rescore)}")
    warn_damaged(store)
    return 0


def _change_scoring(store, path: Path, console: Console) -> None:
    """Keep ``path``'s config as the sweep's, once it is known to describe the same runs (only
    the scoring may differ: its metrics are not part of any run's identity)."""
    from lorasweep.config.load import load_sweep
    from lorasweep.config.plan import build_plan
    from lorasweep.executors.driver import lock
    from lorasweep.preflight import check_metrics
    from lorasweep.store.records import Status
    from lorasweep.store.sweep_file import write_sweep

    sweep = load_sweep(path)
    stored = store.plan()
    plan = build_plan(sweep)
    planned = {r.run_id for r in plan.runs}
    held = {r.run_id for r in stored.runs}
    confirmation = set(stored.confirmation.run_ids if stored.confirmation else ())
    trials = {r for t in stored.search.trials for r in t.run_ids} if stored.search else set()
    same = plan.base_eval.run_id == stored.base_eval
    if not (same and planned <= held and held - planned <= confirmation | trials):
        raise UserError(
            f"--config: {path} describes other runs than {store.root} holds; only "
            "evaluation.metrics and evaluation.primary may change here (run the sweep instead)"
        )
    run_id = next((r.run_id for r in stored.runs if store.status(r.run_id) is Status.DONE), None)
    sample = store.predictions(run_id)[:1] if run_id else []
    check_metrics(sweep.evaluation, sample[0] if sample else None)
    with lock(store.root):
        write_sweep(store.root, sweep)
    metrics = ", ".join(str(m) for m in sweep.evaluation.metrics)
    console.print(f"Scoring: {metrics}; primary {sweep.evaluation.primary}", soft_wrap=True)


def _status(args: argparse.Namespace, console: Console) -> int:
    from lorasweep.baselines.rows import baseline_rows
    from lorasweep.metrics.registry import scoring_for
    from lorasweep.stats.scores import ExampleScores
    from lorasweep.store.store import open_sweep
    from lorasweep.store.sweep_file import read_sweep

    store = open_sweep(args.sweep_dir)
    scores = ExampleScores(store, set(), scoring_for(read_sweep(store.root).evaluation))
    primary, label = scores.scoring.primary, scores.scoring.label(scores.scoring.primary)
    counts: dict[str, int] = {}
    for unit in store.plan().units():  # each unit once, whichever rows it serves
        result = store.result(unit.run_id)
        status = result.status.value if result else "planned"
        counts[status] = counts.get(status, 0) + 1
        detail = ""
        if result and result.done:
            detail = f"{label} {scores.run_numbers(result).get(primary, float('nan')):.2f}"
        elif result:
            detail = result.error or ""
        elif store.damage(unit.run_id):
            detail = "result.json damaged: not done"
        console.print(f"{unit.run_id}  {status:<9} {unit.label}  {detail}")
    for record, _ in baseline_rows(store.root):  # API baselines: not units, rows of the report
        detail = f"{label} {record.metrics.get(primary, float('nan')):.2f}" if record.done else ""
        console.print(f"{record.name}  {record.status.value:<9} API baseline ({record.model})  "
                      f"{detail or record.error or ''}")  # fmt: skip
    console.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    warn_damaged(store)
    return 0


def _demo(args: argparse.Namespace, console: Console) -> int:
    from lorasweep.config.load import read_yaml, validate_sweep

    config = resources.files("lorasweep.builtin").joinpath("demo.yaml")
    with resources.as_file(config) as path:
        sweep = validate_sweep(read_yaml(path), source="demo.yaml")
    return _run_sweep(sweep, args.out, console, dry_run=False, retry_failed=False)


def warn_damaged(store) -> None:
    """One line per damaged record the command met and took for work not done."""
    for error in store.damaged.values():
        print(f"lorasweep: warning: {error}", file=sys.stderr)


def _quiet_libraries() -> None:
    """lorasweep shows its own progress; library bars and info logs would only interleave."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # PEFT 0.21 calls a transformers method that transformers 5 deprecates; not the user's concern.
    warnings.filterwarnings(
        "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
    )
    import datasets
    import huggingface_hub
    import transformers

    huggingface_hub.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


if __name__ == "__main__":
    sys.exit(main())
