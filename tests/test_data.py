"""Data sources: the evaluation subset is exactly the shuffle idiom's rows."""

from __future__ import annotations

import datasets

from lorasweep.config.schema import DataConfig, EvaluationConfig
from lorasweep.data.sources import load_eval, load_train
from tests.conftest import SAMSUM, requires_samsum


@requires_samsum
def test_samsum_eval_subset_is_the_shuffle_idiom():
    data = DataConfig(source=str(SAMSUM))
    examples = load_eval(data, EvaluationConfig(split="validation", size=200, seed=42))
    reference = (
        datasets.load_dataset("csv", data_files=str(SAMSUM / "validation.csv"))["train"]
        .shuffle(seed=42)
        .select(range(200))
    )
    assert [e.key for e in examples] == [str(i) for i in reference["id"]]
    assert [e.input for e in examples] == reference["dialogue"]
    assert [e.target for e in examples] == reference["summary"]


@requires_samsum
def test_samsum_single_file_source_and_train_subset():
    data = DataConfig(source=str(SAMSUM / "train.csv"), train_size=50)
    assert len(load_train(data)) == 50


def test_builtin_corpus_has_the_expected_splits():
    data = DataConfig(source="builtin:dialogues")
    examples = load_eval(data, EvaluationConfig(size=20, seed=1))
    assert len(examples) == 20 and all(e.input and e.target for e in examples)
    assert len({e.key for e in examples}) == 20
    train_inputs = {e.input for e in load_train(data)}
    assert not train_inputs & {e.input for e in examples}


def test_local_jsonl_directory(dialogue_dir):
    data = DataConfig(source=str(dialogue_dir))
    assert len(load_train(data)) == 60
    first = load_eval(data, EvaluationConfig(size=5, seed=3))
    again = load_eval(data, EvaluationConfig(size=5, seed=3))
    other = load_eval(data, EvaluationConfig(size=5, seed=4))
    assert first == again and first != other


def test_several_references_train_on_the_first_and_score_best_of(tmp_path):
    rows = [
        {
            "dialogue": f"Ann: meet at {i}?\nBob: ok",
            "summary": [f"Ann and Bob meet at {i}.", f"They meet at {i}."],
        }
        for i in range(6)
    ]
    (tmp_path / "train.jsonl").write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    (tmp_path / "validation.jsonl").write_text(
        "".join(__import__("json").dumps(r) + "\n" for r in rows)
    )
    data = DataConfig(source=str(tmp_path))
    assert [e.target for e in load_train(data)][:2] == [
        "Ann and Bob meet at 0.",
        "Ann and Bob meet at 1.",
    ]
    examples = load_eval(data, EvaluationConfig(size=3, seed=0))
    assert all(isinstance(e.target, list) and len(e.target) == 2 for e in examples)

    from lorasweep.metrics.rouge import score_examples

    (row,) = score_examples(["They meet at 3."], [["Ann and Bob meet at 3.", "They meet at 3."]])
    assert row["rougeL"] == 100.0  # the best of the references
