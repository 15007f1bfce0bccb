"""Load training and evaluation examples from the hub, local files, or the built-in corpus.

The evaluation subset is exactly ``split.shuffle(seed=S).select(range(N))`` of Hugging Face
``datasets``, so its numbers are comparable with the many scripts that use that idiom.
"""

from __future__ import annotations

import codecs
import csv
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import datasets

from lorasweep.config.schema import BUILTIN_PREFIX, DataConfig, EvaluationConfig, TestSplitConfig
from lorasweep.errors import UserError

LOCAL_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json"}
BUILTIN_DATA = "builtin:dialogues"
TEXT_TYPES = ("string", "large_string", "null")  # null: a column of missing values only
# Several references per example: datasets 4+ calls the feature List, older ones Sequence.
LIST_FEATURES = tuple(
    f for f in (getattr(datasets, n, None) for n in ("List", "LargeList", "Sequence"))
    if isinstance(f, type)
)  # fmt: skip
# Empty references score 0 whatever the prediction: a few (dataset noise) shift the mean a
# little, more make the scores meaningless. Above this share the evaluation set is refused.
MAX_EMPTY_REFERENCES = 0.05


@dataclass(frozen=True)
class Example:
    """One input/reference pair; ``key`` identifies it across runs (the row id when present)."""

    key: str
    input: str
    target: str | list[str]  # several references: scored best-of, trained on the first

    @property
    def first_target(self) -> str:
        return self.target if isinstance(self.target, str) else (self.target or [""])[0]


def load_train(data: DataConfig) -> list[Example]:
    """The training examples: the first ``train_size`` rows with a non-empty input and target."""
    split = _checked_split(data, data.train_split, "data.train_split")
    examples = [
        Example(e.key, e.input, e.first_target)  # one reference to learn from: the first
        for e in _examples(split, data)
        if e.input.strip() and e.first_target.strip()
    ]
    if data.train_size != "all":
        examples = examples[: data.train_size]
    if not examples:
        raise UserError(f"data.source: split {data.train_split!r} has no usable rows")
    return examples


def load_eval(
    data: DataConfig, evaluation: EvaluationConfig | TestSplitConfig, field: str = "evaluation"
) -> list[Example]:
    """The fixed evaluation (or test) subset, in the order the shuffle idiom gives."""
    split = _checked_split(data, evaluation.split, f"{field}.split")
    if evaluation.size > len(split):
        raise UserError(
            f"{field}.size: {evaluation.size} is larger than the {evaluation.split!r} split "
            f"({len(split)} rows)"
        )
    subset = split.shuffle(seed=evaluation.seed).select(range(evaluation.size))
    examples = _examples(subset, data)
    empty = sum(1 for e in examples if not any(t.strip() for t in _references(e)))
    if empty > MAX_EMPTY_REFERENCES * len(examples):
        columns = ", ".join(repr(c) for c in data.target_columns)
        raise UserError(
            f"{field}.split: {empty} of the {len(examples)} references drawn from "
            f"{evaluation.split!r} (column {columns}) are empty; ROUGE scores them 0 "
            f"whatever the prediction, and at most {MAX_EMPTY_REFERENCES:.0%} may be"
        )
    return examples


def _references(example: Example) -> list[str]:
    return [example.target] if isinstance(example.target, str) else example.target


def _examples(split: datasets.Dataset, data: DataConfig) -> list[Example]:
    ids = split["id"] if "id" in split.column_names else None
    inputs = split[data.input_column]
    if isinstance(data.target_column, str):
        targets = [_target(t) for t in split[data.target_column]]
    else:  # one reference per column: a list per example, in the columns' order
        columns = [split[c] for c in reference_columns(data, split)]
        targets = [_target([column[i] for column in columns]) for i in range(len(inputs))]
    return [
        Example(str(ids[i]) if ids is not None else str(i), inputs[i] or "", targets[i])
        for i in range(len(inputs))
    ]


def _target(value: str | list[str | None] | None) -> str | list[str]:
    """A text, or the non-empty texts of a list (``[""]`` when none is)."""
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v.strip()] or [""]
    return value or ""


def _checked_split(data: DataConfig, name: str, field: str) -> datasets.Dataset:
    split = load_split(data.source, name, field)
    if len(split) == 0:
        raise UserError(f"{field}: split {name!r} of {data.source} is empty")
    present = ", ".join(split.column_names)
    columns = [("data.input_column", data.input_column)]
    if isinstance(data.target_column, str):
        columns.append(("data.target_column", data.target_column))
    elif not reference_columns(data, split):
        listed = ", ".join(repr(c) for c in data.target_columns)
        raise UserError(f"data.target_column: none of {listed} is in {name!r}; columns: {present}")
    for field_name, column in columns:
        if column not in split.column_names:
            raise UserError(f"{field_name}: no column {column!r} in {name!r}; columns: {present}")
    _check_text(split, name, "data.input_column", data.input_column, lists=False)
    for column in reference_columns(data, split):
        # A column of lists only as the one reference column: a list of columns names texts.
        lists = isinstance(data.target_column, str)
        _check_text(split, name, "data.target_column", column, lists=lists)
    return split


def reference_columns(data: DataConfig, split: datasets.Dataset) -> list[str]:
    """The reference columns ``split`` has. A list of columns may name some a split lacks
    (DialogSum: ``summary`` in train, ``summary1``-``summary3`` in test): each split uses the
    ones it has, at least one."""
    if isinstance(data.target_column, str):
        return [data.target_column]
    return [c for c in data.target_columns if c in split.column_names]


def describe_references(data: DataConfig, splits: dict[str, str]) -> str:
    """``references: summary (train); summary1, summary2, summary3 (test)``, for a list of
    columns: which of them each split's examples use."""
    if isinstance(data.target_column, str):
        return ""
    by_columns: dict[str, list[str]] = {}
    for name in dict.fromkeys(splits.values()):
        columns = ", ".join(reference_columns(data, load_split(data.source, name)))
        by_columns.setdefault(columns, []).append(name)
    return "references: " + "; ".join(f"{c} ({', '.join(n)})" for c, n in by_columns.items())


def _check_text(split: datasets.Dataset, name: str, field: str, column: str, lists: bool) -> None:
    """The column holds text (or, for references, lists of texts): numbers are refused, not
    turned into text, because the CSV reader has already rewritten them (``007`` is ``7``)."""
    feature = split.features[column]
    inner = feature.feature if lists and isinstance(feature, LIST_FEATURES) else feature
    if isinstance(inner, datasets.Value) and inner.dtype in TEXT_TYPES:
        return
    dtype = getattr(inner, "dtype", None)
    numeric = isinstance(dtype, str) and dtype.startswith(("int", "uint", "float", "decimal"))
    kind = "numbers" if numeric else f"{dtype or type(inner).__name__} values"
    raise UserError(
        f"{field}: column {column!r} of split {name!r} holds {kind}, not text"
        + ("; quote them in the file if they are meant as text" if numeric else "")
    )


@lru_cache(maxsize=8)
def load_split(source: str, name: str, field: str = "data.source") -> datasets.Dataset:
    """One split of a data source.

    A local directory holds one file per split (``train.csv``, ``validation.jsonl``, ...); a
    single local file is one split named after its stem; anything else is a hub dataset id.
    """
    if source.startswith(BUILTIN_PREFIX):
        if source != BUILTIN_DATA:
            raise UserError(f"data.source: unknown built-in data {source!r}; use {BUILTIN_DATA}")
        from lorasweep.builtin.corpus import builtin_splits

        splits = builtin_splits()
        _require(name in splits, field, name, source, splits)
        return datasets.Dataset.from_list(splits[name])
    if not is_hub_source(source):
        path = Path(source).expanduser()
        if not path.exists():
            raise UserError(f"data.source: no such file or directory: {source}")
        files = _split_files(path)
        _require(name in files, field, name, source, files)
        return _read_file(files[name])
    try:
        return datasets.load_dataset(source, split=name)
    except Exception as err:  # offline, unknown id, gated, unknown split: the user's to resolve
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(
            f"data.source: cannot load split {name!r} of {source!r}: {reason}"
        ) from None


def is_hub_source(source: str) -> bool:
    """A hub dataset id, not the built-in corpus or a local path (existing or path-like)."""
    if source.startswith(BUILTIN_PREFIX) or Path(source).expanduser().exists():
        return False
    return not (source.startswith((".", "/", "~")) or Path(source).suffix in LOCAL_FORMATS)


def _require(ok: bool, field: str, name: str, source: str, splits: dict) -> None:
    if not ok:
        raise UserError(f"{field}: no split {name!r} in {source}; splits: {', '.join(splits)}")


def _split_files(path: Path) -> dict[str, Path]:
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    files = [f for f in files if f.suffix in LOCAL_FORMATS and f.is_file()]
    if not files:
        raise UserError(f"data.source: no {', '.join(LOCAL_FORMATS)} files in {path}")
    return {f.stem: f for f in files}


def _read_file(file: Path) -> datasets.Dataset:
    _check_utf8(file)
    if file.suffix == ".csv":
        _check_csv(file)
    # datasets logs (and for some malformed files fails to format) its own error before raising;
    # the exception below becomes the one line the user sees.
    logger = logging.getLogger("datasets")
    level, logger.level = logger.level, logging.CRITICAL + 1
    try:
        # The common scripts' call, so shuffle(seed).select(range(n)) picks the same rows.
        return datasets.load_dataset(LOCAL_FORMATS[file.suffix], data_files=str(file))["train"]
    except Exception as err:  # datasets raises many types for a malformed file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"data.source: cannot read {file}: {reason}") from None
    finally:
        logger.setLevel(level)


def _check_utf8(file: Path) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with file.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                raise UserError(
                    f"data.source: {file} is not UTF-8 text (byte {offset + err.start})"
                ) from None
            offset += len(chunk)


def _check_csv(file: Path) -> None:
    """Every row has the header's number of fields and well-formed quoting.

    pandas (under ``datasets``) reads a broken quote or an unquoted comma as extra, shifted or
    merged rows without a word; the same file read strictly stops at the first bad row.
    """
    limit = csv.field_size_limit(1 << 30)  # long dialogues are fine; the default is 128 KiB
    try:
        with file.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, strict=True)
            header, line = None, 1
            while True:
                line = reader.line_num + 1  # where the next row starts (a field may span lines)
                row = next(reader, None)
                if row is None:
                    return
                if not row:  # a blank line: pandas skips it too
                    continue
                if header is None:
                    header = row
                elif len(row) != len(header):
                    raise UserError(
                        f"data.source: {file} line {line}: {len(row)} fields where the header has "
                        f"{len(header)} (an unquoted comma or a broken quote?)"
                    )
    except csv.Error as err:
        raise UserError(f"data.source: {file} line {line}: malformed CSV ({err})") from None
    finally:
        csv.field_size_limit(limit)
