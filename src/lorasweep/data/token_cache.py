"""Tokenized examples on disk, keyed by everything that decides the tokens.

A sweep tokenizes its training, evaluation and test examples once, and every run uses the same
lists. This cache makes "once" hold across processes as well: a resumed sweep, a re-run after a
config edit and any other sweep with the same tokenizer, data and prompt read the tokens back
instead of formatting and tokenizing every example again (the chat template is applied to each
one in Python, which is most of the cost).

The key is a SHA-256 over the tokenizer (its ``tokenizer.json`` and chat template), the prompt
settings, the examples' text and, for training examples, ``max_length``; plus
``FORMAT_VERSION``, bumped whenever the code that turns an example into tokens changes. Entries
live in ``<cache>/tokens/`` (``$LORASWEEP_CACHE``, else ``~/.cache/lorasweep``), one ``.npz``
file each, written atomically; deleting the folder only costs the time to rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lorasweep.data.prompts import _TEMPLATE_VARIABLES, IGNORE_INDEX, Encoded, PromptFormatter
from lorasweep.data.sources import Example

FORMAT_VERSION = 1


def tokenizer_fingerprint(formatter: PromptFormatter) -> str | None:
    """What decides how the formatter's text becomes ids; None if it cannot be read."""
    tokenizer = formatter.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None  # a slow tokenizer: no complete serialisation to hash, so no disk cache
    parts = {
        "class": type(tokenizer).__name__,
        "tokenizer.json": backend.to_str(),
        "chat_template": getattr(tokenizer, "chat_template", None),
        "template_variables": _TEMPLATE_VARIABLES,
        "prompt": formatter.prompt.model_dump(mode="json"),
        "input_column": formatter.input_column,
        "use_chat": formatter.use_chat,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class TokenCache:
    """Tokenized prompts and training examples for one formatter.

    Args:
        formatter: The tokenizer and prompt settings.
        root: The cache folder; None keeps nothing on disk (every call tokenizes).
    """

    def __init__(self, formatter: PromptFormatter, root: Path | None):
        self.formatter = formatter
        fingerprint = tokenizer_fingerprint(formatter)
        self.root = root if fingerprint is not None else None
        self._fingerprint = fingerprint or ""
        self.hits = self.misses = 0

    def prompts(self, examples: Sequence[Example]) -> list[list[int]]:
        """Each example's prompt ids, ready to generate from."""
        rows = self._cached(
            "prompts",
            examples,
            extra="",
            build=lambda: [(self.formatter.encode_prompt(e.input), 0) for e in examples],
        )
        return [ids for ids, _ in rows]

    def training(self, examples: Sequence[Example], max_length: int) -> list[Encoded]:
        """Each example's prompt and target ids cut at ``max_length``, the loss on the target."""

        def build():
            encoded = (self.formatter.encode_example(e, max_length) for e in examples)
            return [(e.input_ids, e.labels.count(IGNORE_INDEX)) for e in encoded]

        rows = self._cached("training", examples, extra=str(max_length), build=build)
        return [Encoded(ids, [IGNORE_INDEX] * n + ids[n:]) for ids, n in rows]

    def key(self, kind: str, examples: Sequence[Example], extra: str) -> str:
        digest = hashlib.sha256(f"{FORMAT_VERSION}\0{kind}\0{extra}\0".encode())
        digest.update(self._fingerprint.encode())
        for example in examples:
            target = example.target
            if not isinstance(target, str):  # several references: all of them, in order
                target = json.dumps(target, ensure_ascii=False)
            for text in (example.input, target):
                digest.update(b"\0" + text.encode())
        return digest.hexdigest()[:24]

    def _cached(
        self,
        kind: str,
        examples: Sequence[Example],
        extra: str,
        build: Callable[[], list[tuple[list[int], int]]],
    ) -> list[tuple[list[int], int]]:
        """(ids, prompt tokens) per example: read from the cache, else built and stored."""
        if self.root is None:
            return build()
        path = self.root / "tokens" / f"{kind}-{self.key(kind, examples, extra)}.npz"
        rows = _read(path, len(examples))
        if rows is not None:
            self.hits += 1
            return rows
        self.misses += 1
        rows = build()
        _write(path, rows)
        return rows


def _read(path: Path, count: int) -> list[tuple[list[int], int]] | None:
    """The entry at ``path``; None if missing, unreadable or not ``count`` rows long."""
    try:
        with np.load(path) as data:
            ids, offsets, prompt = data["ids"], data["offsets"], data["prompt_tokens"]
    except (OSError, KeyError, ValueError):
        return None
    if len(offsets) != count + 1:
        return None
    flat = ids.tolist()
    bounds = offsets.tolist()
    return [(flat[bounds[i] : bounds[i + 1]], int(n)) for i, n in enumerate(prompt.tolist())]


def _write(path: Path, rows: list[tuple[list[int], int]]) -> None:
    """Store atomically (a temporary file, then a rename); a cache that cannot be written is
    only slower, so a failure here is ignored."""
    lengths = [len(ids) for ids, _ in rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter((t for ids, _ in rows for t in ids), dtype=np.int64, count=sum(lengths))
    prompt = np.array([n for _, n in rows], dtype=np.int64)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=".npz", dir=path.parent
        )
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, ids=flat, offsets=offsets, prompt_tokens=prompt)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        pass
