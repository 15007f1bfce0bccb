"""``lorasweep baselines SWEEP.yaml``: ask only the sweep's API baselines, then the report.

``lorasweep run`` asks them too, after its own runs; both check the keys first.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from lorasweep.errors import UserError

EXIT_FAILED = 1


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "baselines", help="ask the sweep's API baselines (cached) and rebuild the report"
    )
    parser.add_argument("config", type=Path, help="the sweep YAML file")
    parser.add_argument("--out", type=Path, help="sweep folder (default: runs/<sweep name>)")
    add_refresh_flag(parser)
    parser.set_defaults(handler=_baselines)


def add_refresh_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--refresh-baselines",
        action="store_true",
        help="ask the API baselines again instead of answering from the response cache",
    )


class Baselines:
    """The sweep's API baselines, checked before anything runs and asked afterwards.

    Args:
        sweep: The validated sweep.
        root: The sweep folder (where the response cache lives).
        examples: The evaluation examples.
        refresh: Ask again what the cache holds.
    """

    def __init__(self, sweep, root: Path, examples, refresh: bool = False) -> None:
        from lorasweep.baselines.run import check_keys
        from lorasweep.data.sources import load_train

        self.sweep, self.root, self.examples, self.refresh = sweep, root, examples, refresh
        shots = max((b.few_shot for b in sweep.baselines), default=0)
        # No examples: a dry run that did not download hub data; the run checks the keys.
        self.shots = load_train(sweep.data)[:shots] if shots and examples else []
        if sweep.baselines and examples:
            check_keys(sweep, root, examples, self.shots, refresh)

    def run(self, console: Console) -> list:
        """Ask every baseline; returns their records (a failed one says why)."""
        from lorasweep.baselines.run import run_baseline
        from lorasweep.executors.driver import lock

        if not self.sweep.baselines:
            return []
        with lock(self.root):  # one after another; a failed one does not stop the rest
            return [
                run_baseline(b, self.sweep, self.root, self.examples, self.shots, console,
                             self.refresh)
                for b in self.sweep.baselines
            ]  # fmt: skip


def _baselines(args: argparse.Namespace, console: Console) -> int:
    from lorasweep.config.load import load_sweep
    from lorasweep.config.plan import build_plan
    from lorasweep.data.sources import load_eval
    from lorasweep.executors.driver import lock
    from lorasweep.paths import check_output_dir
    from lorasweep.report.markdown import check_report_dir, write_report
    from lorasweep.store.store import RunStore

    sweep = load_sweep(args.config)
    if not sweep.baselines:
        raise UserError(f"baselines: {args.config} lists no baselines; add one (see the README)")
    out = args.out or Path("runs") / sweep.name
    check_output_dir(out, "--out")
    store = RunStore(out)
    store.check_format()
    check_report_dir(store)
    examples = load_eval(sweep.data, sweep.evaluation)
    baselines = Baselines(sweep, out, examples, args.refresh_baselines)
    with lock(out):  # a folder asked before any run still reports: it gets the sweep's plan
        if not (out / "plan.json").is_file():
            store.write_sweep_config(sweep.model_dump(mode="json"))
            store.write_plan(build_plan(sweep).record())
    results = baselines.run(console)
    console.print(f"Report: {write_report(store)}")
    return EXIT_FAILED if any(not r.done for r in results) else 0
