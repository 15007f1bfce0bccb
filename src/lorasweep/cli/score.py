"""``lorasweep score``: metrics with 95% intervals for predictions made elsewhere.

``--metrics`` names the metrics as a sweep config does (default: ROUGE). With ``--into
SWEEP_DIR`` the sweep's own metrics apply, and the scores join its perspective table as external
rows, paired with the sweep's examples (by id or input text) for the significance test when they
match.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from lorasweep.config.schema import EvaluationConfig
from lorasweep.errors import UserError
from lorasweep.external import (
    Fields,
    ScoredFile,
    add_to_sweep,
    compare_files,
    prediction_files,
    score_file,
)
from lorasweep.metrics.registry import build_scoring, declared_keys, parse_entry
from lorasweep.metrics.scoring import Scoring
from lorasweep.paths import check_output_dir
from lorasweep.report.recommend import power_words, verdict_words
from lorasweep.stats.bootstrap import CONFIDENCE, RESAMPLES
from lorasweep.stats.pairing import pair_examples
from lorasweep.store.store import RunStore, open_sweep
from lorasweep.store.sweep_file import read_sweep


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``score`` on the CLI's subcommands."""
    score = commands.add_parser(
        "score", help="score a JSONL file of predictions: metrics with 95%% intervals"
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
        "--metrics",
        default="rouge",
        help="comma-separated, as evaluation.metrics names them: rouge, chrf, bleu, "
        "exact_match, f1, file.py:function (default: rouge; with --into the sweep's apply)",
    )
    score.add_argument(
        "--use-stemmer",
        action="store_true",
        help="Porter stemming for ROUGE (with --into the sweep's own setting applies)",
    )
    score.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console) -> int:
    files = prediction_files(args.path)
    if args.name and len(files) > 1:
        raise UserError(f"--name: {args.path} holds {len(files)} files; each is named after itself")
    store = _sweep(args.into) if args.into is not None else None
    evaluation = read_sweep(store.root).evaluation if store else _evaluation(args)
    use_stemmer = evaluation.use_stemmer
    scoring = build_scoring(evaluation)
    fields = Fields(args.prediction_field, args.reference_field, args.id_field, args.input_field)
    # Every file is read and checked before anything is written.
    scored = [score_file(f, args.name, fields, scoring) for f in files]
    baseline = _baseline(args.baseline, scored, fields, scoring)
    console.print(_table(scored, scoring))
    for item in scored:
        for name, reason in item.failures.items():
            console.print(f"{item.name}: metric {name} is left out: {reason}", soft_wrap=True)
    if baseline is not None:
        console.print(_comparison(baseline, scored, scoring))
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


def _evaluation(args: argparse.Namespace) -> EvaluationConfig:
    """The metrics ``--metrics`` names, as a sweep's evaluation section would."""
    entries = [entry.strip() for entry in args.metrics.split(",") if entry.strip()]
    try:
        keys = declared_keys([parse_entry(entry)[0] for entry in entries]) if entries else []
        primary = keys[0].name if keys else "-"  # any key: score reports every one
        return EvaluationConfig(metrics=entries, primary=primary, use_stemmer=args.use_stemmer)
    except ValueError as err:  # pydantic's ValidationError is one
        lines = (
            [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()]
            if isinstance(err, ValidationError)
            else [str(err)]
        )
        raise UserError(*[f"--metrics: {line.removeprefix('metrics')}" for line in lines]) from None


def _baseline(
    name: str | None, scored: list[ScoredFile], fields: Fields, scoring: Scoring
) -> ScoredFile | None:
    if name is None:
        return None
    found = next((item for item in scored if item.name == name), None)
    if found is not None:
        return found
    if Path(name).is_file():
        return score_file(Path(name), None, fields, scoring)
    names = ", ".join(item.name for item in scored)
    raise UserError(f"--baseline: {name!r} is neither one of the scored files ({names}) nor a file")


def _comparison(baseline: ScoredFile, scored: list[ScoredFile], scoring: Scoring) -> Table:
    title = (
        f"Difference to {baseline.name}, paired on its {len(baseline.rows)} examples "
        f"({RESAMPLES:,} resamples); significant when the {CONFIDENCE:.0%} interval excludes 0"
    )
    table = Table("file", "metric", "Δ", f"{CONFIDENCE:.0%} interval", "P(Δ≤0)", "verdict",
                  "detectable Δ (80% power)", title=title)  # fmt: skip
    for item in scored:
        if item is baseline:
            continue
        deltas = compare_files(baseline, item, scoring)
        if deltas is None:
            table.add_row(item.name, "", "", "not paired: different examples", "", "", "")
            continue
        for key, d in deltas.items():
            table.add_row(
                item.name, scoring.label(key), f"{d.delta:+.2f}", f"[{d.low:+.2f}, {d.high:+.2f}]",
                f"{d.share_at_or_below_zero:.4f}", verdict_words(d), power_words(d),
            )  # fmt: skip
    return table


def _sweep(path: Path) -> RunStore:
    store = open_sweep(path, "--into")
    check_output_dir(path, "--into")
    return store


def _sweep_examples(store: RunStore) -> list[dict]:
    """The sweep's evaluation examples, from the baseline's predictions (or any run's)."""
    plan = store.plan()
    for run_id in [plan.baseline, *(r.run_id for r in plan.runs), plan.base_eval]:
        rows = store.predictions(run_id)
        if rows:
            return rows
    return []


def _table(scored: list[ScoredFile], scoring: Scoring) -> Table:
    title = (
        f"Scores: {'; '.join(m.describe() for m in scoring.metrics)}. "
        f"[{CONFIDENCE:.0%} bootstrap interval of the mean, {RESAMPLES:,} resamples]"
    )
    keys = [k for k in scoring.names if any(k in item.intervals for item in scored)]
    table = Table("file", "examples", *(scoring.label(k) for k in keys), title=title)
    for item in scored:
        cells = []
        for key in keys:
            if key not in item.intervals:
                cells.append("—")
                continue
            interval = item.intervals[key]
            cells.append(f"{item.metrics[key]:.2f} [{interval.low:.2f}, {interval.high:.2f}]")
        table.add_row(item.name, str(len(item.rows)), *cells)
    return table
