"""Tests for the synthetic SAMSum-style corpus used by the offline demo."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time

import pytest

from lorasweep.builtin.corpus import (
    SCENARIOS,
    SPLIT_SEEDS,
    builtin_splits,
    generate_dialogues,
)

LINE = re.compile(r"^[A-Z][a-z]+: .+")
# Capitalized words and numbers: the facts a summary may only copy from its dialogue.
FACT = re.compile(r"\b[A-Z][A-Za-z0-9]*|\b\d+\b")
WORD = re.compile(r"[a-z0-9]+")


@pytest.fixture(scope="module")
def examples() -> list[dict[str, str]]:
    return generate_dialogues(2000, seed=0)


def test_same_arguments_give_identical_output() -> None:
    assert generate_dialogues(300, seed=5) == generate_dialogues(300, seed=5)


def test_output_is_identical_in_another_process_with_other_hash_seed() -> None:
    code = (
        "import json; from lorasweep.builtin.corpus import generate_dialogues; "
        "print(json.dumps(generate_dialogues(200, seed=9)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == generate_dialogues(200, seed=9)


def test_global_random_state_is_untouched() -> None:
    random.seed(0)
    expected = random.random()
    random.seed(0)
    generate_dialogues(100, seed=3)
    assert random.random() == expected


def test_different_seeds_give_different_corpora() -> None:
    a = {e["dialogue"] for e in generate_dialogues(500, seed=0)}
    b = {e["dialogue"] for e in generate_dialogues(500, seed=1)}
    assert len(a & b) <= 5


def test_shorter_corpus_is_a_prefix_of_longer_one() -> None:
    assert generate_dialogues(50, seed=4) == generate_dialogues(120, seed=4)[:50]


def test_negative_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="-1"):
        generate_dialogues(-1)


def test_ids_are_unique_and_name_the_seed(examples: list[dict[str, str]]) -> None:
    ids = [e["id"] for e in examples]
    assert len(set(ids)) == len(ids)
    assert ids[0] == "syn-0-000000" and ids[-1] == "syn-0-001999"
    assert all(set(e) == {"id", "dialogue", "summary", "scenario"} for e in examples)


def test_every_scenario_type_appears(examples: list[dict[str, str]]) -> None:
    assert len(SCENARIOS) >= 12
    counts = {name: 0 for name in SCENARIOS}
    for e in examples:
        counts[e["scenario"]] += 1
    assert min(counts.values()) >= 50, counts


def test_summary_facts_come_from_the_dialogue(examples: list[dict[str, str]]) -> None:
    for e in examples:
        missing = [tok for tok in FACT.findall(e["summary"]) if tok not in e["dialogue"]]
        assert not missing, (missing, e)


def test_summary_names_a_speaker(examples: list[dict[str, str]]) -> None:
    for e in examples:
        speakers = {line.split(":", 1)[0] for line in e["dialogue"].split("\n")}
        assert speakers & set(re.findall(r"[A-Z][a-z]+", e["summary"])), e


def test_summary_is_one_sentence_of_8_to_25_words(examples: list[dict[str, str]]) -> None:
    for e in examples:
        summary = e["summary"]
        assert 8 <= len(summary.split()) <= 25, summary
        assert summary[0].isupper() and summary.endswith(".") and summary.count(".") == 1
        assert "\n" not in summary and "{" not in summary


def test_summary_mostly_reuses_dialogue_words(examples: list[dict[str, str]]) -> None:
    overlaps = []
    for e in examples:
        dialogue_words = set(WORD.findall(e["dialogue"].lower()))
        summary_words = WORD.findall(e["summary"].lower())
        overlaps.append(sum(w in dialogue_words for w in summary_words) / len(summary_words))
    assert min(overlaps) >= 0.3
    assert sum(overlaps) / len(overlaps) >= 0.6


def test_dialogue_format_and_length(examples: list[dict[str, str]]) -> None:
    word_counts = []
    for e in examples:
        lines = e["dialogue"].split("\n")
        assert 4 <= len(lines) <= 10, e["dialogue"]
        assert all(LINE.match(line) for line in lines), e["dialogue"]
        assert 2 <= len({line.split(":", 1)[0] for line in lines}) <= 3, e["dialogue"]
        assert "{" not in e["dialogue"] and "  " not in e["dialogue"]
        word_counts.append(len(e["dialogue"].split()))
    assert min(word_counts) >= 20 and max(word_counts) <= 120
    assert sum(n >= 25 for n in word_counts) >= 0.99 * len(word_counts)


def test_surface_variety(examples: list[dict[str, str]]) -> None:
    dialogues = [e["dialogue"] for e in examples]
    assert len(set(dialogues)) >= 0.9 * len(dialogues)
    first_utterances = {d.split("\n")[0].split(": ", 1)[1] for d in dialogues}
    assert len(first_utterances) >= 300
    speakers = {line.split(":", 1)[0] for d in dialogues for line in d.split("\n")}
    assert len(speakers) >= 60
    three_way = sum(len({line.split(":", 1)[0] for line in d.split("\n")}) == 3 for d in dialogues)
    assert three_way >= 0.05 * len(dialogues)
    turn_counts = {d.count("\n") + 1 for d in dialogues}
    assert turn_counts >= {4, 6, 8, 10}


def test_builtin_splits_have_default_sizes_and_share_no_dialogue() -> None:
    splits = builtin_splits()
    assert {name: len(rows) for name, rows in splits.items()} == {
        "train": 4000,
        "validation": 500,
        "test": 500,
    }
    train = {e["dialogue"] for e in splits["train"]}
    for name in ("validation", "test"):
        assert not train & {e["dialogue"] for e in splits[name]}, name
    assert splits["validation"][0]["id"] == f"syn-{SPLIT_SEEDS['validation']}-000000"


def test_builtin_splits_custom_sizes_and_unknown_name() -> None:
    splits = builtin_splits({"train": 20, "test": 5})
    assert list(splits) == ["train", "test"]
    assert splits["test"] == generate_dialogues(5, SPLIT_SEEDS["test"])
    with pytest.raises(ValueError, match="dev"):
        builtin_splits({"dev": 10})


def test_ten_thousand_examples_are_fast() -> None:
    start = time.perf_counter()
    generate_dialogues(10_000, seed=0)
    # ~0.25 s on a laptop core; the bound leaves room for slow CI machines.
    assert time.perf_counter() - start < 3.0
