"""``lorasweep score``: ROUGE with 95% intervals for predictions made elsewhere.

With ``--into SWEEP_DIR`` the scores join the sweep's perspective table as external rows, paired
with the sweep's examples (by id or input text) for the significance test when they match.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lorasweep.errors import UserError
from lorasweep.external import (
    Fields,
    ScoredFile,
    add_to_sweep,
    compare_files,
    prediction_files,
    score_file,
)
from lorasweep.metrics.rouge import NAMES, ROUGE_KEYS
from lorasweep.paths import check_output_dir
from lorasweep.report.recommend import verdict_words
from lorasweep.stats.bootstrap import CONFIDENCE, RESAMPLES
from lorasweep.stats.pairing import pair_examples
from lorasweep.store.store import RunStore, open_sweep


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``score`` on the CLI's subcommands."""
    score = commands.add_parser(
        "score", help="score a JSONL file of predictions: ROUGE with 95%% intervals"
    )
    score.add_argument(
        "path", type=Path, help="a .jsonl file, or a directory of them (one row each)"
    )
    score.add_argument("--name", help="name of the row (default: the file's name without .jsonl)")
    score.add_argument(
        "--into", type=Path, metavar="SWEEP_DIR", help="add it to this sweep's perspective table"
    )
    score.add_argument("--prediction-field", default="prediction", help="default: prediction")
    score.add_argument("--reference-field", default="reference", help="default: reference")
    score.add_argument("--id-field", default="id", help="pairs examples; default: id")
    score.add_argument("--input-field", default="input", help="pairs examples without ids")
    score.add_argument(
        "--baseline",
        metavar="NAME",
        help="compare every file with this one (a name in the table, or a file): paired "
        "bootstrap of the difference, with a verdict",
    )
    score.add_argument(
        "--use-stemmer",
        action="store_true",
        help="Porter stemming (with --into the sweep's own setting applies)",
    )
    score.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console) -> int:
    files = prediction_files(args.path)
    if args.name and len(files) > 1:
        raise UserError(f"--name: {args.path} holds {len(files)} files; each is named after itself")
    store, use_stemmer = None, args.use_stemmer
    if args.into is not None:
        store = _sweep(args.into)
        use_stemmer = _sweep_stemming(store)
    fields = Fields(args.prediction_field, args.reference_field, args.id_field, args.input_field)
    # Every file is read and checked before anything is written.
    scored = [score_file(f, args.name, fields, use_stemmer) for f in files]
    baseline = _baseline(args.baseline, scored, fields, use_stemmer)
    console.print(_table(scored, use_stemmer))
    if baseline is not None:
        console.print(_comparison(baseline, scored))
    if store is None:
        return 0
    from lorasweep.report.markdown import write_report

    examples = _sweep_examples(store)
    for item in scored:
        folder = add_to_sweep(store, item, use_stemmer)
        pairing = pair_examples(examples, item.rows) if examples else None
        how = (
            f"paired by {pairing.by} with the sweep's {len(examples)} examples"
            if pairing
            else "not paired: it does not hold every one of the sweep's examples "
            "(matched by id, else by input text)"
        )
        console.print(f"Added {item.name} to {folder}: {how}.", soft_wrap=True)
    console.print(f"Report: {write_report(store)}", soft_wrap=True)
    return 0


def _baseline(
    name: str | None, scored: list[ScoredFile], fields: Fields, use_stemmer: bool
) -> ScoredFile | None:
    if name is None:
        return None
    found = next((item for item in scored if item.name == name), None)
    if found is not None:
        return found
    if Path(name).is_file():
        return score_file(Path(name), None, fields, use_stemmer)
    names = ", ".join(item.name for item in scored)
    raise UserError(f"--baseline: {name!r} is neither one of the scored files ({names}) nor a file")


def _comparison(baseline: ScoredFile, scored: list[ScoredFile]) -> Table:
    title = (
        f"Difference to {baseline.name}, paired on its {len(baseline.rows)} examples "
        f"({RESAMPLES:,} resamples); significant when the {CONFIDENCE:.0%} interval excludes 0"
    )
    table = Table("file", "metric", "Δ", f"{CONFIDENCE:.0%} interval", "P(Δ≤0)", "verdict",
                  title=title)  # fmt: skip
    for item in scored:
        if item is baseline:
            continue
        deltas = compare_files(baseline, item)
        if deltas is None:
            table.add_row(item.name, "", "", "not paired: different examples", "", "")
            continue
        for key, d in deltas.items():
            table.add_row(
                item.name, NAMES[key], f"{d.delta:+.2f}", f"[{d.low:+.2f}, {d.high:+.2f}]",
                f"{d.share_at_or_below_zero:.4f}", verdict_words(d),
            )  # fmt: skip
    return table


def _sweep(path: Path) -> RunStore:
    store = open_sweep(path, "--into")
    check_output_dir(path, "--into")
    return store


def _sweep_stemming(store: RunStore) -> bool:
    """The sweep's ROUGE setting, so the external row is scored like its runs."""
    return bool((store.sweep_config().get("evaluation") or {}).get("use_stemmer", False))


def _sweep_examples(store: RunStore) -> list[dict]:
    """The sweep's evaluation examples, from the baseline's predictions (or any run's)."""
    plan = store.plan()
    for run_id in [plan.baseline, *(r.run_id for r in plan.runs), plan.base_eval]:
        rows = store.predictions(run_id)
        if rows:
            return rows
    return []


def _table(scored: list[ScoredFile], use_stemmer: bool) -> Table:
    title = (
        f"ROUGE F-measure (points), mean [{CONFIDENCE:.0%} bootstrap interval, "
        f"{RESAMPLES:,} resamples], {'with' if use_stemmer else 'no'} stemming"
    )
    table = Table("file", "examples", *(NAMES[k] for k in ROUGE_KEYS), title=title)
    for item in scored:
        cells = [
            f"{item.intervals[k].estimate:.2f} [{item.intervals[k].low:.2f}, "
            f"{item.intervals[k].high:.2f}]"
            for k in ROUGE_KEYS
        ]
        table.add_row(item.name, str(len(item.rows)), *cells)
    return table
