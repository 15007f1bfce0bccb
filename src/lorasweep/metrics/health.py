"""Generation health: signs that a run's outputs are broken, whatever their ROUGE.

A run can reach a plausible mean ROUGE while many outputs are empty, cut off at the token cap,
far too long or short, or copies of the prompt. These checks read ``predictions.jsonl`` alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from statistics import fmean
from typing import Any

# A run is flagged when a share (or the ratio) crosses its threshold. Shares are of examples.
MAX_EMPTY_SHARE = 0.02  # any more than a stray empty output means generation stops too early
MAX_HIT_LIMIT_SHARE = 0.10  # outputs cut at max_new_tokens: rambling, or the cap is too low
LENGTH_RATIO_RANGE = (0.5, 2.0)  # mean words(prediction) / words(reference), outside: off-style
MAX_REPEAT_SHARE = 0.10  # outputs that copy the prompt instead of summarising it
# An output repeats the prompt when it shares a run of REPEAT_NGRAM words with the input, or
# when its first START_WORDS words are the input's first words. Summaries rarely quote 10 words
# in a row; copying the first utterance is the common failure of an untuned model.
REPEAT_NGRAM = 10
START_WORDS = 6

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Health:
    """Generation health of one run's predictions."""

    examples: int
    empty: int
    hit_limit: int | None  # None when token counts or the cap are unknown (external files)
    length_ratio: float | None  # None when no reference has words
    repeats_prompt: int | None  # None when the inputs are unknown
    flags: tuple[str, ...]  # one short sentence per abnormal measure, thresholds included


def words(text: str) -> list[str]:
    """Lowercased alphanumeric words, as rouge-score's tokenizer sees them (no stemming)."""
    return _WORD.findall(text.lower())


def repeats_prompt(prediction: str, prompt_input: str) -> bool:
    """Whether ``prediction`` copies the input: a long shared word run, or the same opening."""
    out, source = words(prediction), words(prompt_input)
    if not out or not source:
        return False
    if len(out) >= START_WORDS and out[:START_WORDS] == source[:START_WORDS]:
        return True
    if len(out) < REPEAT_NGRAM:
        return False
    grams = {tuple(source[i : i + REPEAT_NGRAM]) for i in range(len(source) - REPEAT_NGRAM + 1)}
    return any(
        tuple(out[i : i + REPEAT_NGRAM]) in grams for i in range(len(out) - REPEAT_NGRAM + 1)
    )


def generation_health(rows: list[dict[str, Any]], max_new_tokens: int | None = None) -> Health:
    """Health of one run from its ``predictions.jsonl`` rows.

    Args:
        rows: Rows with ``prediction`` and ``reference`` (a text or a list of texts), and
            ``input``, ``generated_tokens`` and an API's ``finish_reason`` when known
            (``length``: cut at the cap, counted as hitting it).
        max_new_tokens: The run's generation cap; without it the cap check is skipped.
    """
    n = len(rows)
    empty = sum(1 for r in rows if not str(r.get("prediction", "")).strip())
    hit_limit = None
    if max_new_tokens is not None and rows and all("generated_tokens" in r for r in rows):
        hit_limit = sum(1 for r in rows if r["generated_tokens"] >= max_new_tokens)
    if rows and all("finish_reason" in r for r in rows):  # an API's reply says it was cut
        hit_limit = sum(
            1
            for r in rows
            if r["finish_reason"] == "length"
            or (max_new_tokens is not None and r.get("generated_tokens", 0) >= max_new_tokens)
        )
    ratios = []
    for row in rows:
        reference = row.get("reference", "")
        references = reference if isinstance(reference, list) else [reference]
        reference_words = fmean(len(words(str(t))) for t in references) if references else 0
        if reference_words:
            ratios.append(len(words(str(row.get("prediction", "")))) / reference_words)
    repeats = None
    if rows and all("input" in r for r in rows):
        repeats = sum(1 for r in rows if repeats_prompt(str(r["prediction"]), str(r["input"])))
    ratio = fmean(ratios) if ratios else None
    return Health(n, empty, hit_limit, ratio, repeats, _flags(n, empty, hit_limit, ratio, repeats))


def _flags(
    n: int, empty: int, hit_limit: int | None, ratio: float | None, repeats: int | None
) -> tuple[str, ...]:
    if not n:
        return ()
    flags = []
    if empty / n > MAX_EMPTY_SHARE:
        flags.append(f"{empty / n:.0%} empty outputs (> {MAX_EMPTY_SHARE:.0%})")
    if hit_limit is not None and hit_limit / n > MAX_HIT_LIMIT_SHARE:
        flags.append(f"{hit_limit / n:.0%} hit max_new_tokens (> {MAX_HIT_LIMIT_SHARE:.0%})")
    low, high = LENGTH_RATIO_RANGE
    if ratio is not None and not low <= ratio <= high:
        flags.append(f"length ratio {ratio:.2f} (outside {low:g}-{high:g})")
    if repeats is not None and repeats / n > MAX_REPEAT_SHARE:
        flags.append(f"{repeats / n:.0%} repeat the prompt (> {MAX_REPEAT_SHARE:.0%})")
    return tuple(flags)
