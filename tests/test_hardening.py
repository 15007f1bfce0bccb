"""Inputs a user can get wrong (issue #12): each gives exit status 2 and one line naming the field,
before anything is loaded or written, and never a traceback."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import lorasweep.paths
from lorasweep.cli.main import main
from lorasweep.config.load import MAX_VALUES, load_sweep
from lorasweep.config.schema import PromptConfig
from lorasweep.data.prompts import check_template
from lorasweep.data.sources import Example
from lorasweep.errors import ConfigError, UserError
from lorasweep.paths import check_output_dir
from tests.conftest import sweep_dict, write_yaml
from tests.test_export import PLAN

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def good(micro_model, dialogue_dir) -> dict:
    return sweep_dict(micro_model, dialogue_dir)


def one_error(argv: list[str], capsys) -> str:
    """Runs the CLI; it must exit with 2 and print exactly one error line, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("lorasweep: error: ")
    return line.removeprefix("lorasweep: error: ")


def rejected(raw: dict | str, tmp_path: Path, capsys) -> str:
    """``lorasweep run`` of a bad config: one line, and the ``--out`` folder never appears."""
    config = tmp_path / "bad.yaml"
    if isinstance(raw, str):
        config.write_text(raw)
    else:
        write_yaml(config, raw)
    out = tmp_path / "out"
    line = one_error(["run", str(config), "--out", str(out)], capsys)
    assert not out.exists()
    return line


def edit(raw: dict, path: str, value) -> dict:
    raw = copy.deepcopy(raw)
    *parents, key = path.split(".")
    node = raw
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[key] = value
    return raw


# --- 2. output paths -------------------------------------------------------------------------


def test_run_out_that_is_a_file(good, tmp_path, capsys):
    config = write_yaml(tmp_path / "ok.yaml", good)
    out = tmp_path / "taken"
    out.write_text("mine")
    line = one_error(["run", str(config), "--out", str(out)], capsys)
    assert line == f"--out: {out} is a file, not a folder"
    assert out.read_text() == "mine"


def test_run_out_under_a_file(good, tmp_path, capsys):
    config = write_yaml(tmp_path / "ok.yaml", good)
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "sweeps" / "one"
    line = one_error(["run", str(config), "--out", str(out)], capsys)
    assert line == f"--out: cannot create {out}: {tmp_path / 'file'} is a file"
    assert (tmp_path / "file").read_text() == "x"


def test_out_is_checked_before_the_model_or_data_load(good, tmp_path, capsys):
    # Model and data that do not exist: the path error comes first, so nothing was loaded.
    raw = edit(edit(good, "model.name", "/nonexistent/model"), "data.source", "/nonexistent/d")
    config = write_yaml(tmp_path / "ok.yaml", raw)
    (tmp_path / "file").write_text("x")
    for extra in ([], ["--dry-run"]):
        line = one_error(["run", str(config), "--out", str(tmp_path / "file"), *extra], capsys)
        assert line.startswith("--out: ")


def test_demo_out_that_is_a_file(tmp_path, capsys):
    out = tmp_path / "demo"
    out.write_text("x")
    assert one_error(["demo", "--out", str(out)], capsys) == f"--out: {out} is a file, not a folder"


@pytest.fixture
def sweep_folder(tmp_path) -> Path:
    from lorasweep.store.store import write_json

    write_json(tmp_path / "sweep" / "plan.json", PLAN)
    return tmp_path / "sweep"


def test_export_out_under_a_file_or_a_folder(sweep_folder, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    under = tmp_path / "file" / "runs.csv"
    line = one_error(["export", str(sweep_folder), "--out", str(under)], capsys)
    assert line == f"--out: cannot create {under}: {tmp_path / 'file'} is a file"
    line = one_error(["export", str(sweep_folder), "--out", str(tmp_path)], capsys)
    assert line == f"--out: {tmp_path} is a folder, not a file"
    assert sorted(p.name for p in sweep_folder.iterdir()) == ["plan.json"]


def test_score_into_an_unwritable_sweep(sweep_folder, tmp_path, capsys, monkeypatch):
    predictions = tmp_path / "p.jsonl"
    predictions.write_text('{"prediction": "a b", "reference": "a b c"}\n')

    def refuse(dir):
        raise PermissionError(13, "Permission denied")

    # Root writes anywhere, so the write probe is what says no here, as a read-only mount would.
    monkeypatch.setattr(lorasweep.paths, "tempfile", types.SimpleNamespace(TemporaryFile=refuse))
    line = one_error(["score", str(predictions), "--into", str(sweep_folder)], capsys)
    assert line == f"--into: cannot write in {sweep_folder} (Permission denied)"
    assert sorted(p.name for p in sweep_folder.iterdir()) == ["plan.json"]


@pytest.mark.skipif(AS_ROOT, reason="root may write in a read-only (mode 0500) folder")
def test_out_in_a_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(UserError, match="permission denied"):
            check_output_dir(locked / "out", "--out")
    finally:
        locked.chmod(0o700)


def test_writable_paths_pass_and_leave_nothing(tmp_path):
    check_output_dir(tmp_path / "new" / "deeper", "--out")  # created later, by the run
    check_output_dir(tmp_path, "--out")  # an existing folder (a sweep being resumed)
    assert list(tmp_path.iterdir()) == []


# --- 4. YAML that expands without bound, duplicate keys, booleans as numbers --------------------


def billion_laughs() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")
    return "\n".join(lines) + "\nmodel: {name: *i}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (billion_laughs(), f"aliases expand to more than {MAX_VALUES:,} values"),
        (
            "model: {name: x}\nbaseline: {lora: {r: 1" + "0" * 5000 + "}}\n",
            "baseline.lora.r: an integer of 5,001 digits",
        ),
    ],
    ids=["billion-laughs", "huge-integer"],
)
def test_documents_that_would_hang_or_crash_the_loader(tmp_path, text, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    # A subprocess with a timeout: a regression hangs this test, not the whole suite.
    done = subprocess.run(
        [sys.executable, "-m", "lorasweep.cli.main", "run", str(config), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"lorasweep: error: {config}: ") and expected in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "model: {name: m}\nbaseline:\n  lora:\n    r: 4\n    alpha: 8\n    r: 16\n",
            "baseline.lora.r: given twice (lines 4 and 6)",
        ),
        ("name: a\nmodel: {name: m}\nname: b\n", "name: given twice (lines 1 and 3)"),
        ("x: &x [*x]\n", "x[0]: an alias refers to a value that contains it"),
        ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ],
    ids=["duplicate-nested", "duplicate-top", "recursive-alias", "deep"],
)
def test_yaml_a_config_never_needs(tmp_path, capsys, text, expected):
    line = rejected(text, tmp_path, capsys)
    assert line.startswith(str(tmp_path / "bad.yaml")) and expected in line


def test_merge_keys_still_override(tmp_path):
    config = tmp_path / "merge.yaml"
    config.write_text(
        "defaults: &lora {r: 4, alpha: 8}\n"
        "model: {name: m}\ndata: {source: d}\n"
        "baseline:\n  lora:\n    <<: *lora\n    r: 16\n  training: {max_steps: 2}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_sweep(config)
    # Only the unknown top-level key: `r: 16` overriding the merged `r: 4` is no duplicate.
    assert caught.value.problems == [f"{config}: defaults: unknown key"]


def test_a_file_too_large_to_be_a_config(tmp_path, capsys):
    text = "model: {name: m}\n" + "#" * (1 << 20) + "\n"
    assert "bytes; a sweep config is at most 1,048,576" in rejected(text, tmp_path, capsys)


@pytest.mark.parametrize(
    "path",
    [
        "baseline.lora.r",
        "baseline.lora.alpha",
        "baseline.lora.dropout",
        "baseline.training.learning_rate",
        "baseline.training.max_steps",
        "baseline.training.batch_size",
        "baseline.training.seed",
        "evaluation.size",
        "generation.max_new_tokens",
        "data.train_size",
    ],
)
def test_booleans_are_not_numbers(good, tmp_path, capsys, path):
    line = rejected(edit(good, path, True), tmp_path, capsys)
    assert line.endswith(f"{path}: must be a number, not true or false (got True)")


def test_booleans_are_not_numbers_in_experiment_values(good, tmp_path, capsys):
    raw = edit(good, "experiments", [{"name": "r", "factor": "lora.r", "values": [4, True]}])
    line = rejected(raw, tmp_path, capsys)
    assert line.endswith(
        "experiments[0].values[1] (lora.r): must be a number, not true or false (got True)"
    )


def test_numbers_written_as_strings_are_still_numbers(good, tmp_path, capsys):
    raw = edit(good, "baseline.training.learning_rate", "2e-4")
    config = write_yaml(tmp_path / "ok.yaml", edit(raw, "baseline.lora.r", "8"))
    assert main(["run", str(config), "--dry-run", "--out", str(tmp_path / "out")]) == 0


# --- 3. prompt templates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{} {input}", "positional placeholder {}"),
        ("{0}", "positional placeholder {0}"),
        ("{input.text}", "placeholder {input.text} reads an attribute or index"),
        ("{input[0]}", "placeholder {input[0]} reads an attribute or index"),
        ("{input:>40}", "placeholder {input} has a format spec"),
        ("{input!r}", "placeholder {input} has a format spec (:...) or conversion (!...)"),
        ("Summarize {input", "unbalanced braces (expected '}' before end of string)"),
        ("{input} -> {summary}}", "unbalanced braces (single '}' encountered"),
        ("{instruction}", "never shows the model its input; put {input} (or {dialogue})"),
        ("{instruction} {{input}}", "never shows the model its input"),
        ("{dialog}", "unknown placeholder {dialog}"),
    ],
)
def test_templates_that_cannot_be_filled(good, tmp_path, capsys, template, expected):
    for dry_run in ([], ["--dry-run"]):
        config = write_yaml(tmp_path / "bad.yaml", edit(good, "prompt.template", template))
        argv = ["run", str(config), "--out", str(tmp_path / "out"), *dry_run]
        line = one_error(argv, capsys)
        assert line.startswith(f"{config}: prompt.template: ") and expected in line
        assert not (tmp_path / "out").exists()


def test_dry_run_fills_the_template_with_a_real_example(good, tmp_path, capsys):
    raw = edit(good, "prompt.template", "{instruction}\n{dialogue}\nSummary:")
    config = write_yaml(tmp_path / "ok.yaml", raw)
    assert main(["run", str(config), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    assert "the prompt filled with a 'validation' example" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "{}",
            "prompt.template: cannot be filled with example 'e1': IndexError: Replacement index 0 out of range for positional args tuple",
        ),
        ("{input[0]}", "prompt.template: the prompt of example 'e1' does not contain its input"),
    ],
)
def test_filling_once_catches_what_validation_would_miss(template, expected):
    # model_construct skips the config's checks: this is the backstop on real data.
    prompt = PromptConfig.model_construct(instruction="", template=template, chat_template="auto")
    with pytest.raises(UserError) as caught:
        check_template(prompt, "dialogue", Example("e1", "Ann: hi", "Ann greets."))
    assert caught.value.problems == [expected]


# --- 5. upper bounds, checked before anything runs ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("generation.max_new_tokens", 1e12, "must be less than or equal to 1048576"),
        ("generation.batch_size", 10**6, "must be less than or equal to 65536"),
        ("baseline.training.learning_rate", 5, "must be less than or equal to 1"),
        ("baseline.training.max_steps", 10**12, "must be less than or equal to 10000000"),
        ("baseline.training.epochs", 1e6, "must be less than or equal to 10000"),
        ("baseline.training.warmup_steps", 10**12, "must be less than or equal to 10000000"),
        ("baseline.training.weight_decay", 100, "must be less than or equal to 10"),
        ("baseline.training.max_grad_norm", 1e9, "must be less than or equal to 1000000"),
        ("baseline.training.seed", 2**40, "must be less than or equal to 4294967295"),
        ("baseline.lora.alpha", 1e9, "must be less than or equal to 1000000"),
        ("baseline.lora.alpha", "5000r", "must be at most 1000r"),
        ("evaluation.size", 10**9, "must be less than or equal to 100000000"),
        ("data.train_size", 10**9, "must be less than or equal to 100000000"),
        ("execution", {"checkpoint_every": 10**12}, "must be less than or equal to 10000000"),
        ("seeds", [1, 2**40], "must be less than or equal to 4294967295"),
    ],
)
def test_numbers_have_upper_bounds(good, tmp_path, capsys, path, value, expected):
    line = rejected(edit(good, path, value), tmp_path, capsys)
    field = {"execution": "execution.checkpoint_every", "seeds": "seeds[1]"}.get(path, path)
    assert line.startswith(f"{tmp_path / 'bad.yaml'}: {field}: {expected}")


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("baseline.training.max_length", 1024, "baseline.training.max_length: 1024"),
        ("generation.max_new_tokens", 600, "generation.max_new_tokens: 600"),
        (
            "experiments",
            [{"name": "len", "factor": "training.max_length", "values": [128, 4096]}],
            "experiments[0].values[1] (training.max_length): 4096",
        ),
    ],
)
def test_token_counts_fit_the_models_context(
    good, micro_model, tmp_path, capsys, path, value, field
):
    # Data that does not exist: the model's limits are checked first, from its config alone.
    raw = edit(edit(good, path, value), "data.source", "/nonexistent/data")
    expected = f"{field} is more than {micro_model}'s context length (512 tokens)"
    assert rejected(raw, tmp_path, capsys) == expected
    argv = ["run", str(tmp_path / "bad.yaml"), "--dry-run", "--out", str(tmp_path / "out")]
    assert one_error(argv, capsys) == expected


# --- 6. data read wrongly without a word -------------------------------------------------------


def data_with(tmp_path: Path, dialogue_dir: Path, **files: str) -> str:
    """A data folder: the fixture's splits, with some replaced (``train_csv="..."``)."""
    folder = tmp_path / "data"
    folder.mkdir()
    replaced = {name.rsplit("_", 1)[0] for name in files}
    for split in dialogue_dir.iterdir():
        if split.stem not in replaced:
            (folder / split.name).write_text(split.read_text())
    for name, text in files.items():
        (folder / name.replace("_", ".")).write_text(text)
    return str(folder)


def csv_rows(n: int) -> list[str]:
    return [f'"A: meet at {i}?\nB: ok",A and B meet at {i}.' for i in range(n)]


@pytest.mark.parametrize(
    ("row", "broken", "expected"),
    [
        (5, '"A: hi" there,A greets.', "line 12: malformed CSV (',' expected after '\"')"),
        (39, '"A: hi,A greets.', "line 80: malformed CSV (unexpected end of data)"),
        (5, "A: hi, B: yo,A greets.", "line 12: 3 fields where the header has 2"),
    ],
    ids=["text-after-quote", "unclosed-quote", "unquoted-comma"],
)
def test_broken_csv_names_file_and_line(
    good, dialogue_dir, tmp_path, capsys, row, broken, expected
):
    rows = csv_rows(40)  # a header line, then two lines per row
    rows[row] = broken
    source = data_with(
        tmp_path, dialogue_dir, train_csv="dialogue,summary\n" + "\n".join(rows) + "\n"
    )
    line = rejected(edit(good, "data.source", source), tmp_path, capsys)
    assert line.startswith(f"data.source: {source}/train.csv {expected}")


def test_well_formed_csv_keeps_its_rows(dialogue_dir, tmp_path):
    from lorasweep.config.schema import DataConfig
    from lorasweep.data.sources import load_train

    source = data_with(
        tmp_path, dialogue_dir, train_csv="dialogue,summary\n" + "\n".join(csv_rows(40)) + "\n\n"
    )
    assert len(load_train(DataConfig(source=source))) == 40


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"train_jsonl": '{"dialogue": "A: hi", "summary": 5}\n' * 3},
            "data.target_column: column 'summary' of split 'train' holds numbers, not text",
        ),
        (
            {"train_csv": "dialogue,summary\n" + "A: hi,12\n" * 3},
            "data.target_column: column 'summary' of split 'train' holds numbers, not text",
        ),
        (
            {"train_jsonl": '{"dialogue": 7, "summary": "x"}\n' * 3},
            "data.input_column: column 'dialogue' of split 'train' holds numbers, not text",
        ),
        (
            {"train_jsonl": '{"dialogue": ["A: hi"], "summary": "x"}\n' * 3},
            "data.input_column: column 'dialogue' of split 'train' holds List values, not text",
        ),
    ],
    ids=["jsonl-numbers", "csv-numbers", "numeric-inputs", "list-inputs"],
)
def test_columns_that_are_not_text(good, dialogue_dir, tmp_path, capsys, files, expected):
    source = data_with(tmp_path, dialogue_dir, **files)
    assert rejected(edit(good, "data.source", source), tmp_path, capsys).startswith(expected)


@pytest.mark.parametrize(
    ("summaries", "refused"),
    [(["" for _ in range(12)], True), ([[""]] * 12, True), ([f"s{i}" for i in range(12)], False)],
    ids=["all-empty", "empty-lists", "none-empty"],
)
def test_empty_references(good, dialogue_dir, tmp_path, capsys, summaries, refused):
    rows = "".join(
        json.dumps({"id": f"v{i}", "dialogue": f"A: hi {i}", "summary": s}) + "\n"
        for i, s in enumerate(summaries)
    )
    raw = edit(good, "data.source", data_with(tmp_path, dialogue_dir, validation_jsonl=rows))
    if refused:
        line = rejected(raw, tmp_path, capsys)
        assert line.startswith("evaluation.split: 8 of the 8 references drawn from 'validation'")
    else:
        config = write_yaml(tmp_path / "ok.yaml", raw)
        assert main(["run", str(config), "--dry-run", "--out", str(tmp_path / "out")]) == 0


def test_a_few_empty_references_are_tolerated(dialogue_dir, tmp_path):
    from lorasweep.config.schema import DataConfig, EvaluationConfig
    from lorasweep.data.sources import load_eval

    def source(empty: int) -> DataConfig:
        rows = "".join(
            json.dumps(
                {"id": f"v{i}", "dialogue": f"A: hi {i}", "summary": "" if i < empty else "s"}
            )
            + "\n"
            for i in range(20)
        )
        (tmp_path / str(empty)).mkdir()
        return DataConfig(
            source=data_with(tmp_path / str(empty), dialogue_dir, validation_jsonl=rows)
        )

    assert len(load_eval(source(1), EvaluationConfig(size=20))) == 20  # 1 in 20: the 5% limit
    with pytest.raises(UserError, match="^evaluation.split: 2 of the 20 references"):
        load_eval(source(2), EvaluationConfig(size=20))


# --- 8. did-you-mean at the right place; a wrong target reported once --------------------------


@pytest.mark.parametrize(
    ("path", "hint"),
    [
        ("baseline.training.lr", "; did you mean 'learning_rate'?"),  # not lora's 'r'
        ("baseline.training.lerning_rate", "; did you mean 'learning_rate'?"),
        ("baseline.training.dropout", "; did you mean baseline.lora.dropout?"),
        ("evaluation.max_new_tokens", "; did you mean generation.max_new_tokens?"),
        ("baseline.lora.seed", "; did you mean baseline.training.seed or evaluation.seed?"),
        ("training", "; did you mean baseline.training?"),  # not 'tracking'
        ("generation.batchsize", "; did you mean 'batch_size'?"),
        ("baseline.lora.rank", ""),  # nothing valid is close: no guess
    ],
)
def test_unknown_keys_suggest_keys_valid_at_that_place(good, tmp_path, capsys, path, hint):
    raw = edit(good, path, 1) if "." in path else {**good, path: {}}
    line = rejected(raw, tmp_path, capsys)
    assert line == f"{tmp_path / 'bad.yaml'}: {path}: unknown key{hint}"


def test_a_wrong_baseline_target_is_reported_once(good, micro_model, tmp_path, capsys):
    raw = edit(good, "baseline.lora.target_modules", ["q_proj", "qkv"])
    for dry_run in ([], ["--dry-run"]):
        config = write_yaml(tmp_path / "bad.yaml", raw)
        # rank=2/4 and lr=5e-4/5e-3 inherit the baseline's modules; targets=qv/attention+mlp don't.
        line = one_error(["run", str(config), "--out", str(tmp_path / "out"), *dry_run], capsys)
        assert line.startswith("baseline.lora.target_modules: no module qkv in the model")
        assert not (tmp_path / "out").exists()


# --- 10. report staging folders of killed builds -----------------------------------------------


def test_report_removes_staging_folders_of_dead_builds(tmp_path, capsys):
    from tests.test_report import make_store

    store = make_store(tmp_path / "sweep")
    killed = [
        store.root / ".report-q1w2e3",
        store.root / ".report-99999999-abc",
    ]  # old name; no such pid
    running = store.root / f".report-{os.getppid()}-def"  # a live process: its build goes on
    for folder in [*killed, running]:
        folder.mkdir()
        (folder / "report.md").write_text("half")
    assert main(["report", str(store.root)]) == 0
    assert [p.name for p in store.root.glob(".report-*")] == [running.name]
    assert (store.report_dir / "report.md").read_text().startswith("# LoRA sweep report")


def test_a_failed_report_build_leaves_no_staging_folder(tmp_path, monkeypatch):
    import lorasweep.report.markdown as markdown
    from tests.test_report import make_store

    store = make_store(tmp_path / "sweep")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(markdown, "render", broken)
    with pytest.raises(RuntimeError):
        markdown.write_report(store)
    assert list(store.root.glob(".report-*")) == []
