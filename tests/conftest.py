"""Shared fixtures: a micro Llama built in-process and a small local dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from lorasweep.builtin.corpus import generate_dialogues
from lorasweep.builtin.tiny_model import TinyRecipe, build_tiny_model

SAMSUM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "samsum"
requires_samsum = pytest.mark.skipif(
    not (SAMSUM / "validation.csv").is_file(),
    reason=f"real SAMSum CSVs not found at {SAMSUM} (license: read from ../shared, never copied)",
)


@pytest.fixture(autouse=True)
def _this_checkout_in_subprocesses(monkeypatch):
    """Subprocesses (crash tests, CLIs) import this checkout's code, like pytest itself does."""
    root = Path(__file__).resolve().parents[1]
    paths = [str(root / "src"), str(root), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache: built models go to a per-session temporary folder."""
    monkeypatch.setenv("LORASWEEP_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def micro_model(tmp_path_factory) -> Path:
    """A 2-layer Llama (hidden 32, well under 1M parameters) pretrained for a few steps."""
    out = tmp_path_factory.mktemp("micro-model")
    build_tiny_model(TinyRecipe.micro(), out, log=lambda line: None)
    return out


@pytest.fixture(scope="session")
def dialogue_dir(tmp_path_factory) -> Path:
    """train.jsonl (60 rows), validation.jsonl and test.jsonl (12 rows each) of synthetic chats."""
    out = tmp_path_factory.mktemp("dialogues")
    for name, n, seed in (("train", 60, 11), ("validation", 12, 12), ("test", 12, 13)):
        rows = generate_dialogues(n, seed)
        text = "".join(
            json.dumps({k: r[k] for k in ("id", "dialogue", "summary")}) + "\n" for r in rows
        )
        (out / f"{name}.jsonl").write_text(text)
    return out


def sweep_dict(model: Path, data: Path) -> dict:
    """A small but complete sweep: 4 unique runs (baseline shared) on the micro model."""
    return {
        "name": "micro",
        "model": {"name": str(model)},
        "data": {"source": str(data)},
        "prompt": {"instruction": "Summarize.", "template": "{instruction}\n{input}\nSummary:"},
        "baseline": {
            "lora": {"r": 4, "alpha": "2r", "dropout": 0.0, "target_modules": "qv"},
            "training": {
                "learning_rate": 5.0e-3,
                "max_steps": 6,
                "batch_size": 4,
                "max_length": 192,
                "warmup_steps": 1,
                "seed": 0,
            },
        },
        "evaluation": {"split": "validation", "size": 8, "seed": 42},
        "generation": {"max_new_tokens": 12, "batch_size": 4},
        # The micro model scores 0 everywhere, so recommendations fall back to cost, and ties in
        # cost to measured training time: a confirmation run would make the run count vary.
        # tests/test_seeds_confirmation.py turns it on and checks it.
        "confirmation": False,
        "experiments": [
            {"name": "rank", "factor": "lora.r", "values": [2, 4]},
            {"name": "targets", "factor": "lora.target_modules", "values": ["qv", "attention+mlp"]},
            {"name": "lr", "factor": "training.learning_rate", "values": [5.0e-4, 5.0e-3]},
        ],
    }


def write_yaml(path: Path, value: dict) -> Path:
    path.write_text(yaml.safe_dump(value, sort_keys=False))
    return path
