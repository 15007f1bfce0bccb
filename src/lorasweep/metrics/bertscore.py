"""BERTScore (``pip install 'lorasweep[bertscore]'``): similarity of contextual embeddings.

It takes a local model folder (any Hugging Face encoder, e.g. a downloaded ``roberta-large``),
so a sweep never downloads weights while it scores. Precision, recall and F1 in points (x100),
without baseline rescaling; with several references an example takes its best F1, as
``bert-score`` does. The model is loaded once per process, on first use.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lorasweep.metrics.base import Key, Metric


class BertScoreOptions(BaseModel):
    """Where the model is, and which of its layers gives the embeddings."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1)  # a local folder with the model and its tokenizer
    num_layers: int | None = Field(default=None, ge=1, le=1000)  # default: the model's last
    batch_size: int = Field(default=32, ge=1, le=4096)  # more: faster, more memory


class BertScore(Metric):
    """BERTScore precision, recall and F1 of each prediction against its references."""

    name = "bertscore"
    keys = (
        Key("bertscore_precision", "BERTScore P"),
        Key("bertscore_recall", "BERTScore R"),
        Key("bertscore_f1", "BERTScore F1"),
    )
    table_keys = ("bertscore_f1",)
    Options = BertScoreOptions
    keep_scores = True  # a model's forward pass per example

    def __init__(self, model: str, num_layers: int | None = None, batch_size: int = 32) -> None:
        self.model = str(Path(model).expanduser())
        if not (Path(self.model) / "config.json").is_file():
            raise ValueError(f"model: {self.model} is not a model folder (no config.json)")
        self.num_layers = num_layers or _layers(Path(self.model))
        self.batch_size = batch_size
        self._scorer = None

    @property
    def signature(self) -> str:
        return (
            f"bertscore:{Path(self.model).resolve()}:layers={self.num_layers}:"
            f"bert-score={metadata.version('bert-score')}"
        )

    def describe(self) -> str:
        return (
            f"BERTScore precision, recall and F1 in points from `bert-score` with "
            f"`{self.model}` (layer {self.num_layers}), averaged over examples"
        )

    def score(self, prediction: str, reference: str) -> dict[str, float]:
        return self.score_all([prediction], [[reference]])[0]

    def score_all(
        self, predictions: Sequence[str], references: Sequence[Sequence[str]]
    ) -> list[dict[str, float]]:
        if not predictions:
            return []
        precision, recall, f1 = self.scorer().score(
            list(predictions), [list(r) for r in references], batch_size=self.batch_size
        )
        return [
            {"bertscore_precision": 100 * float(p), "bertscore_recall": 100 * float(r),
             "bertscore_f1": 100 * float(f)}
            for p, r, f in zip(precision, recall, f1, strict=True)
        ]  # fmt: skip

    def scorer(self):
        if self._scorer is None:
            from bert_score import BERTScorer

            self._scorer = BERTScorer(model_type=self.model, num_layers=self.num_layers)
            tokenizer = self._scorer._tokenizer
            # A tokenizer saved without a length limit reports 1e30, which bert-score passes on
            # as max_length and tokenizers refuses; the model's position table is the real limit.
            if tokenizer.model_max_length > 1_000_000:
                config = self._scorer._model.config
                tokenizer.model_max_length = getattr(config, "max_position_embeddings", 512)
        return self._scorer


def _layers(folder: Path) -> int:
    """The model's number of layers, from its config.json (bert-score needs one)."""
    config = json.loads((folder / "config.json").read_text())
    for key in ("num_hidden_layers", "n_layers", "num_layers", "n_layer"):
        if isinstance(config.get(key), int):
            return config[key]
    raise ValueError(f"{folder}/config.json names no layer count; set num_layers")
