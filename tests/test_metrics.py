"""The metric registry: each built-in metric against its reference implementation, several
references, custom metrics from a file (and their failures), BERTScore on a tiny model."""

from __future__ import annotations

import collections
import re
import string
from pathlib import Path

import pytest
import sacrebleu
from sacrebleu.metrics import BLEU

from lorasweep.builtin.corpus import generate_dialogues
from lorasweep.config.schema import EvaluationConfig
from lorasweep.errors import UserError
from lorasweep.evaluation.extractive import first_utterances
from lorasweep.metrics.base import Key, Metric
from lorasweep.metrics.registry import METRICS, build_scoring
from lorasweep.metrics.rouge import score_examples
from lorasweep.preflight import check_metrics


def scoring(*metrics, primary: str | None = None, **evaluation):
    keys = {"rouge": "rougeL", "chrf": "chrf", "bleu": "bleu", "exact_match": "exact_match"}
    first = metrics[0] if isinstance(metrics[0], str) else next(iter(metrics[0]))
    primary = primary or keys.get(first, "f1")
    return build_scoring(EvaluationConfig(metrics=list(metrics), primary=primary, **evaluation))


def rows(predictions, references):
    return [{"prediction": p, "reference": r} for p, r in zip(predictions, references, strict=True)]


@pytest.fixture(scope="module")
def corpus():
    """(predictions, references): extractive summaries of synthetic chats, scores spread."""
    chats = generate_dialogues(40, 21)
    return [first_utterances(c["dialogue"], 2) for c in chats], [c["summary"] for c in chats]


def test_chrf_and_bleu_are_sacrebleus_own_numbers(corpus):
    predictions, references = corpus
    metrics = scoring("chrf", "bleu")
    scored = metrics.score(rows(predictions, references)).rows
    for row, p, r in zip(scored, predictions, references, strict=True):
        assert row["chrf"] == pytest.approx(sacrebleu.sentence_chrf(p, [r]).score)
        assert row["bleu"] == pytest.approx(BLEU(effective_order=True).sentence_score(p, [r]).score)
    headline = metrics.headline(scored)
    # The table's number is the corpus score, not the mean of the sentence scores.
    assert headline["chrf"] == pytest.approx(sacrebleu.corpus_chrf(predictions, [references]).score)
    assert headline["bleu"] == pytest.approx(sacrebleu.corpus_bleu(predictions, [references]).score)
    assert headline["chrf"] != pytest.approx(sum(r["chrf"] for r in scored) / len(scored))


def test_chrf_with_several_references_scores_them_together_like_sacrebleu():
    predictions = ["Ann meets Bob at 5.", "Bob buys milk."]
    references = [["Ann and Bob meet at 5 pm.", "They meet at five."], ["Bob will buy milk."]]
    scored = scoring("chrf").score(rows(predictions, references)).rows
    assert scored[0]["chrf"] == pytest.approx(
        sacrebleu.sentence_chrf(predictions[0], references[0]).score
    )
    streams = [[r[0] for r in references], [references[0][1], None]]  # one stream per position
    expected = sacrebleu.corpus_chrf(predictions, streams).score
    assert scoring("chrf").headline(scored)["chrf"] == pytest.approx(expected)


def squad_normalize(s):
    """The official SQuAD evaluation script's normalisation, as the reference here."""

    def remove_articles(text):
        return re.sub(re.compile(r"\b(a|an|the)\b", re.UNICODE), " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def squad_f1(gold, pred):
    gold_toks = squad_normalize(gold).split() if gold else []
    pred_toks = squad_normalize(pred).split() if pred else []
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision, recall = num_same / len(pred_toks), num_same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


CASES = [
    ("The Eiffel Tower", ["eiffel tower"]),
    ("an apple, a pear.", ["Apple pear"]),
    ("Paris, France", ["Paris", "France, Europe"]),
    ("in 1998", ["1998", "the year 1998"]),
    ("restaurant", ["borrow_item"]),
    ("borrow item", ["borrow_item"]),
    ("", [""]),
    ("", ["something"]),
    ("the the cat", ["cat cat dog"]),
    ("Élan vital!", ["élan   VITAL"]),
]


@pytest.mark.parametrize(("prediction", "answers"), CASES)
def test_exact_match_and_f1_equal_the_squad_scripts(prediction, answers):
    (row,) = scoring("exact_match", "f1").score(rows([prediction], [answers])).rows
    expected_em = max(int(squad_normalize(a) == squad_normalize(prediction)) for a in answers)
    expected_f1 = max(squad_f1(a, prediction) for a in answers)
    assert row["exact_match"] == 100 * expected_em
    assert row["f1"] == pytest.approx(100 * expected_f1)


def test_several_references_take_the_best_per_key_in_its_direction():
    class Distance(Metric):
        name = "distance"
        keys = (Key("chars_off", "chars off", "lower"), Key("same_start", "same start"))

        def score(self, prediction, reference):
            return {"chars_off": abs(len(prediction) - len(reference)),
                    "same_start": float(prediction[:1] == reference[:1])}  # fmt: skip

    scores = Distance().score_references("abc", ["a", "xbcd", "abcdefg"])
    assert scores == {"chars_off": 1, "same_start": 1.0}  # min for lower, max for higher


def test_rouge_numbers_are_unchanged_through_the_registry():
    predictions = ["Ann and Bob meet at the park.", "Bob buys milk."]
    references = [["Bob buys milk.", "Ann and Bob will meet at the park at 5 pm."], "Bob buys."]
    scored = scoring("rouge").score(rows(predictions, references)).rows
    direct = score_examples(predictions, references)
    for row, expected in zip(scored, direct, strict=True):
        assert {k: row[k] for k in expected} == expected


def test_stored_scores_are_used_and_rescore_computes_them_again():
    row = {"prediction": "a b", "reference": "a b", "rouge1": 12.5, "rouge2": 1.0,
           "rougeL": 3.0, "rougeLsum": 3.0}  # fmt: skip
    metrics = scoring("rouge", "exact_match")
    (kept,) = metrics.score([row]).rows
    assert kept["rouge1"] == 12.5 and kept["exact_match"] == 100.0  # the missing metric scores
    (again,) = metrics.score([row], rescore=True).rows
    assert again["rouge1"] == 100.0


CUSTOM = """
def score(prediction, references):
    return {"starts_alike": float(prediction[:3] == references[0][:3]), "length": len(prediction)}

score.directions = {"length": "lower"}


def broken(prediction, references):
    if "boom" in prediction:
        raise ValueError("cannot parse " + prediction)
    return {"ok": 1.0}


def not_a_dict(prediction, references):
    return [1.0]


constant = 3
"""


@pytest.fixture
def metric_file(tmp_path) -> Path:
    path = tmp_path / "my_metrics.py"
    path.write_text(CUSTOM)
    return path


def test_a_custom_metric_from_a_file_scores_and_declares_directions(metric_file):
    entry = f"{metric_file}:score"
    metrics = scoring("rouge", entry, primary="starts_alike")
    scored = metrics.score(rows(["Ann is here", "Bob"], ["Ann arrives", "Carl"]))
    assert not scored.failures
    assert [r["starts_alike"] for r in scored.rows] == [1.0, 0.0]
    assert (
        metrics.directions["length"] == "lower" and metrics.directions["starts_alike"] == "higher"
    )
    assert metrics.headline(scored.rows)["length"] == pytest.approx(7.0)


def test_a_failing_custom_metric_is_left_out_and_the_others_go_on(metric_file):
    metrics = scoring("rouge", f"{metric_file}:broken", primary="rougeL")
    scored = metrics.score(rows(["fine", "boom here"], ["fine", "x"]))
    (reason,) = scored.failures.values()
    assert "raised on example 2: ValueError: cannot parse boom here" in reason
    assert all("rougeL" in r and "ok" not in r for r in scored.rows)
    metrics = scoring("rouge", f"{metric_file}:not_a_dict", primary="rougeL")
    (reason,) = metrics.score(rows(["a"], ["a"])).failures.values()
    assert "returned list for example 1; expected a non-empty dict" in reason


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("missing.py:score", "evaluation.metrics[1]: {path}:score: no such file {path}"),
        (
            "my_metrics.py:nothing",
            "evaluation.metrics[1]: {path}:nothing: 'nothing' is not defined",
        ),
        ("my_metrics.py:constant", "'constant' is not a function"),
    ],
)
def test_a_custom_file_or_function_that_is_not_there_is_one_line(
    metric_file, monkeypatch, entry, expected
):
    monkeypatch.chdir(metric_file.parent)  # a relative file is found from the working directory
    evaluation = EvaluationConfig(metrics=["rouge", entry], primary="rougeL")
    with pytest.raises(UserError) as caught:
        build_scoring(evaluation)
    (line,) = caught.value.problems
    path = str(metric_file.parent / entry.split(":")[0])
    assert expected.format(path=path) in line


def test_preflight_checks_the_primary_against_a_custom_metrics_keys(metric_file):
    evaluation = EvaluationConfig(metrics=[f"{metric_file}:score"], primary="accuracy")
    with pytest.raises(UserError, match=r"^evaluation.primary: 'accuracy' is not a key"):
        check_metrics(evaluation, None)
    broken = EvaluationConfig(metrics=["rouge", f"{metric_file}:broken"], primary="rougeL")
    check_metrics(broken, {"reference": "fine"})  # the sample scores: fine
    with pytest.raises(UserError, match=r"^evaluation.metrics\[1\]: .*cannot parse boom"):
        check_metrics(broken, {"reference": "boom"})


def test_every_registered_metric_declares_its_keys_and_their_directions():
    from lorasweep.metrics.registry import metric_class

    for name in METRICS:
        cls = metric_class(name)
        assert cls.name == name and cls.keys
        assert all(k.direction in ("higher", "lower") for k in cls.keys)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer BERT with random weights and a word-level vocabulary, built here."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = sorted({w for c in generate_dialogues(30, 4) for w in c["summary"].lower().split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.ascii_lowercase, *words]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)  # no length limit saved
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(set(vocab)), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)  # fmt: skip
    BertModel(config).save_pretrained(folder)
    return folder


def test_bertscore_with_a_local_model_equals_bert_scores_own(tiny_bert):
    from bert_score import BERTScorer

    predictions = ["ann and bob meet at the cafe.", "bob buys milk.", "nothing alike"]
    references = [["ann meets bob at the cafe."], ["bob will buy milk.", "milk"], ["ann"]]
    metrics = scoring({"bertscore": {"model": str(tiny_bert)}}, primary="bertscore_f1")
    scored = metrics.score(rows(predictions, references))
    assert not scored.failures
    direct = BERTScorer(model_type=str(tiny_bert), num_layers=2)
    direct._tokenizer.model_max_length = 128
    _, _, f1 = direct.score(predictions, references)
    for row, expected in zip(scored.rows, f1, strict=True):
        assert row["bertscore_f1"] == pytest.approx(100 * float(expected), abs=1e-4)
    (same,) = metrics.score(rows(["bob buys milk."], ["bob buys milk."])).rows
    assert same["bertscore_f1"] == pytest.approx(100, abs=1e-3)


def test_bertscore_without_its_model_folder_is_one_line(tmp_path):
    evaluation = EvaluationConfig(
        metrics=["rouge", {"bertscore": {"model": str(tmp_path / "nope")}}], primary="rougeL"
    )
    with pytest.raises(
        UserError, match=r"^evaluation.metrics\[1\]: bertscore: model: .*nope is not a model folder"
    ):
        build_scoring(evaluation)
