"""``lorasweep export SWEEP_DIR --format csv|json``: the sweep's run table for other tools."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register the ``export`` subcommand on the CLI's subparsers."""
    parser = commands.add_parser("export", help="write the sweep's run table as CSV or JSON")
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--format", choices=("csv", "json"), default="csv", help="default: csv")
    parser.add_argument(
        "--out", type=Path, help="the file to write (default: SWEEP_DIR/runs.FORMAT)"
    )
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace, console: Console) -> int:
    from lorasweep.cli.main import warn_damaged
    from lorasweep.export import export_runs
    from lorasweep.store.store import open_sweep

    store = open_sweep(args.sweep_dir)
    # Only the path, unstyled: scripts capture it (rich would wrap a long path).
    print(export_runs(store, args.format, args.out))
    warn_damaged(store)
    return 0
