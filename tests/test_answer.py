"""The report's opening answer, read against the tables it summarises (hand-made stores)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lorasweep.report.markdown import write_report
from lorasweep.report.tables import build_tables
from lorasweep.stats.power import Z
from tests.test_report import (
    BASE,
    WIGGLE,
    make_store,
    parse_delta,
    predictions,
    section,
    table_rows,
    write_run,
)


def answer_of(text: str) -> str:
    return section(text, "## The answer")


def test_one_change_is_answered_with_its_own_run_and_intervals(tmp_path):
    text = write_report(make_store(tmp_path)).read_text()
    assert text.index("## The answer") < text.index("Model `tiny`")  # the answer comes first
    answer = answer_of(text)
    bullet = next(line for line in answer.splitlines() if "Recommended" in line)
    assert "**Recommended: the baseline with `lora.r` = 16** (measured as 16)" in bullet
    rank = table_rows(section(text, "## Experiment: rank"))
    # The same numbers as the experiment table: the mean and the Holm-corrected delta.
    assert f"ROUGE-L {rank['16'][2].strip('*')} [" in bullet
    assert f"{rank['16'][3]} against the baseline (Holm-corrected; significant gain)" in bullet
    # Against the zero-shot base model (BASE - 20, scores clipped at 0): about +25.
    zero_shot = bullet.split(" and ")[-1]
    expected = np.mean(np.clip(BASE + 6 + WIGGLE, 0, 100) - np.clip(BASE - 20, 0, 100))
    assert parse_delta(zero_shot.split(" against")[0])[0] == pytest.approx(expected, abs=0.006)
    assert "against the base model zero-shot (significant gain)" in zero_shot
    # rank (16 gains) and lr (5e-4 loses) mattered; target modules did not.
    significant = next(line for line in answer.splitlines() if "Significant" in line)
    assert "`lora.r` (16: +6.00 [+5.10, +6.90] gain)" in significant
    assert "`training.learning_rate` (5e-4: -7.99" in significant  # clipped at 0
    within = next(line for line in answer.splitlines() if "Within noise" in line)
    assert "`lora.target_modules` (largest: attention, +0.50" in within


def test_the_largest_caveat_is_the_comparison_the_examples_could_not_decide(tmp_path):
    answer = answer_of(write_report(make_store(tmp_path)).read_text())
    caveat = next(line for line in answer.splitlines() if "Largest caveat" in line)
    sd = float(np.std(WIGGLE + 0.5, ddof=1))  # attention's paired differences: +0.5 + noise
    mde = Z * sd / math.sqrt(len(BASE))
    needed = math.ceil((Z * sd / 0.5) ** 2)
    assert f"detects differences of about ±{mde:.2f}" in caveat
    assert "`lora.target_modules` = attention differs from the baseline by +0.50" in caveat
    assert f"would need ~{needed:,} examples" in caveat


def test_a_health_flag_on_the_recommended_run_is_the_largest_caveat(tmp_path):
    store = make_store(tmp_path)
    write_run(tmp_path, "run-r16", ["rank=16"], predictions(BASE + 6 + WIGGLE, tokens=16), 2000)
    caveat = answer_of(write_report(store).read_text()).split("Largest caveat:**")[1]
    assert caveat.startswith(" generation health flags rank=16 (`run-r16`): 100% hit")


def two_changes(tmp_path):
    store = make_store(tmp_path)
    # lr 1e-4 now significantly best as well: two experiments change the baseline.
    write_run(tmp_path, "run-lr1", ["lr=1e-4"], predictions(BASE + 5 + WIGGLE), 1000, 12.0)
    return store


def test_a_combination_never_run_is_not_presented_as_measured(tmp_path):
    answer = answer_of(write_report(two_changes(tmp_path)).read_text())
    bullet = next(line for line in answer.splitlines() if "Recommended" in line)
    assert "`lora.r` = 16 and `training.learning_rate` = 1e-4" in bullet
    assert "never run as one configuration" in bullet and "train it to confirm" in bullet
    assert "ROUGE-L" not in bullet and "[" not in bullet  # no number claims to measure it


def test_a_matching_confirmation_run_measures_the_combination(tmp_path):
    store = two_changes(tmp_path)
    plan = json.loads((tmp_path / "plan.json").read_text())
    write_run(tmp_path, "run-combo", ["confirmation"], predictions(BASE + 9 + WIGGLE))
    label = "rank=16 + lr=1e-4 + targets=qv"
    plan["confirmation"] = {"run_ids": ["run-combo"], "label": label}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    answer = answer_of(write_report(store).read_text())
    bullet = next(line for line in answer.splitlines() if "Recommended" in line)
    assert "(measured by the confirmation run): ROUGE-L" in bullet
    assert "+9.00 [" in bullet and "against the baseline (significant gain)" in bullet
    assert f"**Confirmation:** the combination ({label}) measured ROUGE-L" in answer
    assert build_tables(store).answer.source == "confirmation"


def test_a_confirmation_that_is_the_baseline_says_so(tmp_path):
    store = make_store(tmp_path)
    plan = json.loads((tmp_path / "plan.json").read_text())
    plan["experiments"] = plan["experiments"][1:]  # lr and targets: both keep the baseline
    plan["confirmation"] = {"run_ids": ["run-base"], "label": "lr=2e-4 + targets=qv"}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    text = write_report(store).read_text()
    answer = answer_of(text)
    assert "**Recommended: keep the baseline**" in answer
    assert "is the baseline itself, so there is nothing to confirm" in answer
    confirmation = section(text, "## Confirmation run")
    assert "is the baseline itself" in confirmation and "+0.00 [+0.00, +0.00]" not in confirmation
