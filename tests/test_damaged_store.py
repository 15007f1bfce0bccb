"""A damaged run store (issue #12, item 7): records cut short, emptied or of the wrong shape, and a
file where the report folder goes. ``report``, ``status`` and ``export`` name the file and what to
do in one line; a damaged result or adapter record is work not done, which ``run`` computes again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lorasweep.cli.main import main
from lorasweep.store.store import RunStore
from tests.conftest import sweep_dict, write_yaml
from tests.test_report import make_store, section, table_rows

READERS = (["report"], ["status"], ["export"])


def cut_short(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def drop_status(path: Path) -> None:
    record = json.loads(path.read_text())
    del record["status"]
    path.write_text(json.dumps(record))


PLAN_DAMAGE = {
    "truncated": cut_short,
    "empty": lambda path: path.write_text(""),
    "a list": lambda path: path.write_text("[]"),
    "no fields": lambda path: path.write_text("{}"),
    "no runs": lambda path: path.write_text('{"format": 2, "name": "x"}'),
}
PLAN_PROBLEMS = {
    "truncated": "damaged (not valid JSON, perhaps cut short)",
    "empty": "damaged (empty)",
    "a list": "damaged (not a JSON object)",
    "no fields": "damaged (no 'format')",
    "no runs": "damaged (no 'runs')",
}
RESULT_DAMAGE = {
    "truncated": cut_short,
    "missing status": drop_status,
    "mistyped metrics": lambda path: path.write_text(
        json.dumps({**json.loads(path.read_text()), "metrics": [1, 2]})
    ),
}
RESULT_ADVICE = "that run is not done: rerun `lorasweep run` to compute it again"


def flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def files(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*")}


def cli(argv: list[str], capsys) -> tuple[int, str, list[str]]:
    """Exit status, stdout and the stderr lines of one command; never a traceback."""
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err.strip().splitlines()


# --- report, status, export on a hand-made store (no model) ---------------------------------


@pytest.fixture
def store(tmp_path) -> RunStore:
    return make_store(tmp_path / "sweep")


@pytest.mark.parametrize("damage", PLAN_DAMAGE)
@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_a_damaged_plan_is_one_line_and_nothing_is_written(store, damage, command, capsys):
    plan = store.root / "plan.json"
    PLAN_DAMAGE[damage](plan)
    before = files(store.root)
    code, _, err = cli([*command, str(store.root)], capsys)
    assert code == 2
    assert err == [
        f"lorasweep: error: {plan}: {PLAN_PROBLEMS[damage]}; rerun `lorasweep run` with the "
        "sweep's config to write it again"
    ]
    assert files(store.root) == before


@pytest.mark.parametrize("damage", RESULT_DAMAGE)
def test_a_damaged_result_is_a_run_not_done_with_a_warning(store, damage, capsys):
    path = store.run_dir("run-r16") / "result.json"
    RESULT_DAMAGE[damage](path)
    warning = f"lorasweep: warning: {path}: damaged ("

    code, _, err = cli(["report", str(store.root)], capsys)
    assert code == 0
    (line,) = err
    assert line.startswith(warning) and line.endswith(RESULT_ADVICE)
    rank = table_rows(section((store.report_dir / "report.md").read_text(), "## Experiment: rank"))
    assert rank["16"][:4] == ["planned"] * 3 + [""]  # not done: no scores, no delta

    code, out, err = cli(["status", str(store.root)], capsys)
    assert code == 0 and err == [line]
    (row,) = [r for r in out.splitlines() if r.startswith("run-r16")]
    assert "planned" in row and "result.json damaged: not done" in row
    assert out.strip().splitlines()[-1] == "6 done, 1 planned"

    code, out, err = cli(["export", str(store.root), "--format", "json"], capsys)
    assert code == 0 and err == [line]
    rows = {r["run_id"]: r for r in json.loads(Path(out.strip()).read_text())}
    assert rows["run-r16"]["status"] == "planned" and "rougeL" not in rows["run-r16"]
    assert rows["run-r16"]["error"].startswith(f"{path}: damaged (")
    assert rows["run-r4"]["status"] == "done"


def test_a_damaged_adapter_record_does_not_stop_the_readers(store, capsys):
    """The readers never need an adapter's record; only a run trains it again."""
    record = store.adapter_dir("adapter-x") / "adapter.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"adapter_id": "adapter-x", "con')
    for command in READERS:
        code, _, err = cli([*command, str(store.root)], capsys)
        assert (code, err) == (0, [])


def test_a_file_where_the_report_folder_goes(store, capsys):
    report = store.root / "report"
    report.write_text("my notes")
    before = files(store.root)
    code, _, err = cli(["report", str(store.root)], capsys)
    assert code == 2
    assert err == [
        f"lorasweep: error: {report} is a file where the report folder goes; "
        "move or delete it, then rerun"
    ]
    assert files(store.root) == before and report.read_text() == "my notes"
    for command in (["status"], ["export"]):  # they do not write the report
        assert cli([*command, str(store.root)], capsys)[0] == 0
    assert report.read_text() == "my notes"


def test_damaged_predictions_and_sweep_config_are_one_line(store, capsys):
    predictions = store.run_dir("run-r16") / "predictions.jsonl"
    predictions.write_text(predictions.read_text()[:-40])
    code, _, err = cli(["report", str(store.root)], capsys)
    assert code == 2
    assert err == [
        f"lorasweep: error: {predictions}, line 60: damaged (not a JSON object); delete "
        "runs/run-r16/result.json and rerun `lorasweep run` to compute it again"
    ]
    (store.root / "sweep.yaml").write_text("[1, 2")
    code, _, err = cli(["report", str(store.root)], capsys)
    assert code == 2 and err[0].startswith(f"lorasweep: error: {store.root / 'sweep.yaml'}: dam")


# --- run: damaged records are computed again, from a real finished sweep --------------------


@pytest.fixture(scope="module")
def finished(micro_model, dialogue_dir, tmp_path_factory):
    """The baseline and the zero-shot evaluation, done; and what a run wrote for them."""
    root = tmp_path_factory.mktemp("damaged")
    raw = sweep_dict(micro_model, dialogue_dir) | {"experiments": []}
    config = write_yaml(root / "s.yaml", raw)
    out = root / "sweep"
    assert main(["run", str(config), "--out", str(out)]) == 0
    return config, out, records(out)


MEASURED = ("train_tokens_per_s", "eval_tokens_per_s", "peak_memory_bytes")


def records(out: Path) -> dict[str, str]:
    """Every record and output of the store, as text; all but the measured times and memory
    repeat exactly when computed again."""
    texts = {}
    for path in sorted(out.glob("*/*/*.json*")):
        text = path.read_text()
        if path.name in ("result.json", "adapter.json"):
            record = json.loads(text)
            del record["timings"]
            for key in MEASURED:
                record["efficiency"].pop(key, None)
            text = json.dumps(record, sort_keys=True)
        texts[path.relative_to(out).as_posix()] = text
    return texts


def copy_of(finished, tmp_path) -> Path:
    out = tmp_path / "sweep"
    shutil.copytree(finished[1], out)
    return out


def intact(out: Path) -> None:
    """Nothing damaged or half-written is left: every record reads, no temporary file."""
    store = RunStore(out)
    plan = store.plan()
    assert all(store.result(u.run_id).done for u in plan.units())
    assert all(store.adapter(u.adapter_id) for u in plan.runs)
    assert store.damaged == {}
    assert not [p for p in out.rglob(".*") if p.name != ".lock"]


@pytest.mark.parametrize("damage", PLAN_DAMAGE)
def test_run_writes_a_damaged_plan_again_and_recomputes_nothing(finished, tmp_path, damage, capsys):
    config, _, expected = finished
    out = copy_of(finished, tmp_path)
    PLAN_DAMAGE[damage](out / "plan.json")
    before = {p: t for p, t in files(out).items() if p.parent.parent.name in ("runs", "adapters")}
    code, stdout, err = cli(["run", str(config), "--out", str(out)], capsys)
    assert (code, err) == (0, [])
    assert f"plan.json: {PLAN_PROBLEMS[damage]}: written again from the config" in flat(stdout)
    assert "0 run(s) done, 2 skipped" in stdout
    assert {p: files(out)[p] for p in before} == before
    assert records(out) == expected
    intact(out)


@pytest.mark.parametrize(
    ("unit", "damage"),
    [("baseline", "truncated"), ("zero-shot", "missing status"), ("baseline", "mistyped metrics")],
)
def test_run_computes_a_damaged_result_again(finished, tmp_path, unit, damage, capsys):
    config, _, expected = finished
    out = copy_of(finished, tmp_path)
    plan = RunStore(out).plan()
    run_id = plan.baseline if unit == "baseline" else plan.base_eval
    path = out / "runs" / run_id / "result.json"
    RESULT_DAMAGE[damage](path)
    code, stdout, err = cli(["run", str(config), "--out", str(out)], capsys)
    assert (code, err) == (0, [])
    assert f"{path}: damaged (" in flat(stdout) and f": computing {run_id} again" in flat(stdout)
    assert "1 run(s) done, 1 skipped" in stdout
    assert records(out) == expected  # the same numbers and predictions as before the damage
    intact(out)


def test_run_trains_an_adapter_with_a_damaged_record_again(finished, tmp_path, capsys):
    config, _, expected = finished
    out = copy_of(finished, tmp_path)
    (record,) = out.glob("adapters/*/adapter.json")
    cut_short(record)
    code, stdout, err = cli(["run", str(config), "--out", str(out)], capsys)
    assert (code, err) == (0, [])
    assert f"{record}: damaged (not valid JSON, perhaps cut short): computing" in flat(stdout)
    assert json.loads(record.read_text())["train_steps"] == 6
    assert records(out) == expected  # retrained to the same adapter, the same losses
    intact(out)


def test_run_refuses_a_file_where_the_report_goes_before_computing(finished, tmp_path, capsys):
    config, _, _ = finished
    out = copy_of(finished, tmp_path)
    shutil.rmtree(out / "report")
    (out / "report").write_text("my notes")
    path = out / "runs" / RunStore(out).plan().baseline / "result.json"
    cut_short(path)
    before = files(out)
    code, stdout, err = cli(["run", str(config), "--out", str(out)], capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"lorasweep: error: {out / 'report'} is a file where the report")
    assert files(out) == before and "Data:" not in stdout  # refused before the model loads
