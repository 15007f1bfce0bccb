"""``lorasweep analyze STUDY.yaml``: the sweep report for runs trained elsewhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from lorasweep.paths import check_output_dir


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``analyze`` on the CLI's subcommands."""
    analyze = commands.add_parser(
        "analyze",
        help="the sweep report (intervals, verdicts, recommendation) from prediction files "
        "made by any tool, one per configuration, mapped by a study file",
    )
    analyze.add_argument("study", type=Path, help="the study YAML (paths relative to it)")
    analyze.add_argument(
        "--out",
        type=Path,
        help="the analysis folder, replaced as a whole (default: <study name>-analysis beside "
        "the study file)",
    )
    analyze.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from lorasweep.analysis.build import analyze
    from lorasweep.analysis.study import load_study

    study = load_study(args.study)
    out = args.out or args.study.parent / f"{study.name}-analysis"
    check_output_dir(out, "--out")
    with console.status(f"Scoring {len(study.files())} prediction files ..."):
        report = analyze(study, args.study, out)
    console.print(f"Report: {report}")
    return 0
