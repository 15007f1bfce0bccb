"""Ask each API baseline every evaluation example, through the response cache, and keep the
scored predictions as ``SWEEP_DIR/baselines/<name>/`` (``predictions.jsonl``, ``result.json``).

The prompt is the sweep's own: its template filled with the example, sent as the user message,
after ``few_shot`` training examples as user and assistant turns. A request that fails after
its retries makes the baseline a failed row, with the error; the sweep goes on. What was
answered stays in the cache, so the next run asks only the rest.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from lorasweep.baselines.cache import ResponseCache, request_key
from lorasweep.baselines.client import (
    ApiError,
    ChatClient,
    ChatReply,
    ChatRequest,
    HttpChatClient,
    cap_field,
    with_retries,
)
from lorasweep.config.baselines import ApiBaseline
from lorasweep.config.schema import SweepConfig
from lorasweep.data.prompts import fill_template
from lorasweep.data.sources import Example
from lorasweep.errors import UserError
from lorasweep.metrics.registry import scoring_for
from lorasweep.store.records import BaselineResult, Status
from lorasweep.store.store import write_json, write_jsonl

BASELINES_DIR = "baselines"

# (base_url, api key, timeout) -> client; a test passes its own.
ClientFactory = Callable[[str, str, float], ChatClient]


@dataclass(frozen=True)
class Question:
    """One example's request and its cache key."""

    example: Example
    request: ChatRequest
    key: str


def questions(
    baseline: ApiBaseline, sweep: SweepConfig, examples: Sequence[Example],
    shots: Sequence[Example],
) -> list[Question]:  # fmt: skip
    """The request for each evaluation example, in the examples' order."""

    def user(example: Example) -> str:
        return fill_template(sweep.prompt, sweep.data.input_column, example.input)

    context = []
    for shot in shots[: baseline.few_shot]:
        context += [("user", user(shot)), ("assistant", shot.first_target)]
    endpoint = endpoint_of(baseline)
    out = []
    for example in examples:
        request = ChatRequest(
            model=baseline.model,
            messages=(*context, ("user", user(example))),
            temperature=baseline.temperature,
            max_tokens=baseline.max_tokens,
            seed=baseline.seed,
            cap_field=cap_field(baseline.base_url),
        )
        out.append(Question(example, request, request_key(endpoint, request)))
    return out


def endpoint_of(baseline: ApiBaseline) -> str:
    return f"{baseline.base_url}/chat/completions"


def check_keys(
    sweep: SweepConfig, root: Path, examples: Sequence[Example], shots: Sequence[Example],
    refresh: bool = False,
) -> None:  # fmt: skip
    """Before anything runs: every baseline whose cache cannot answer all its requests needs
    its key in the environment.

    Raises:
        UserError: One line per baseline whose ``api_key_env`` is unset or empty.
    """
    cache = ResponseCache(root)
    problems = []
    for i, baseline in enumerate(sweep.baselines):
        if baseline.api_key_env is None or os.environ.get(baseline.api_key_env):
            continue
        asked = questions(baseline, sweep, examples, shots)
        unanswered = len(asked) if refresh else sum(1 for q in asked if cache.get(q.key) is None)
        if unanswered:
            problems.append(
                f"baselines[{i}].api_key_env: ${baseline.api_key_env} is not set; baseline "
                f"{baseline.name!r} needs it for {unanswered} of {len(asked)} requests not in "
                "the cache (export it, or remove the baseline)"
            )
    if problems:
        raise UserError(*problems)


def run_baseline(
    baseline: ApiBaseline,
    sweep: SweepConfig,
    root: Path,
    examples: Sequence[Example],
    shots: Sequence[Example],
    console: Console,
    refresh: bool = False,
    client_factory: ClientFactory = HttpChatClient,
) -> BaselineResult:
    """Ask (or read from the cache) every example's reply, score them, write the row."""
    cache = ResponseCache(root)
    asked = questions(baseline, sweep, examples, shots)
    replies: dict[str, ChatReply] = {}
    if not refresh:
        for q in asked:
            cached = cache.get(q.key)
            if cached is not None:
                replies[q.key] = cached
    todo = list({q.key: q for q in asked if q.key not in replies}.values())
    console.print(
        f"Baseline {baseline.name} ({baseline.model} at {baseline.base_url}): "
        f"{len(asked) - len(todo)} of {len(asked)} answers cached"
        + (f", asking {len(todo)} ..." if todo else "")
    )
    errors, unsent = _ask(baseline, todo, cache, replies, client_factory) if todo else ([], 0)
    folder = Path(root) / BASELINES_DIR / baseline.name
    requests = {"sent": len(todo) - unsent, "cached": len(asked) - len(todo)}
    if errors:
        error = f"{len(errors)} of {len(asked)} requests failed; first: {errors[0]}"
        if unsent:
            error += f"; {unsent} not sent after it"
        result = _record(baseline, Status.FAILED, len(asked), requests=requests, error=error)
        write_json(folder / "result.json", result.to_json())
        (folder / "predictions.jsonl").unlink(missing_ok=True)  # no half a row
        console.print(f"  baseline {baseline.name}: [red]failed[/red]: {error}")
        return result
    rows = [_row(q, replies[q.key]) for q in asked]
    scoring = scoring_for(sweep.evaluation)
    scored = scoring.score(rows).rows
    usage = {
        "prompt_tokens": sum(replies[q.key].prompt_tokens or 0 for q in asked),
        "completion_tokens": sum(replies[q.key].completion_tokens or 0 for q in asked),
    }
    result = _record(baseline, Status.DONE, len(asked), scoring.headline(scored), usage,
                     _cost(baseline, usage), requests)  # fmt: skip
    write_jsonl(folder / "predictions.jsonl", scored)
    write_json(folder / "result.json", result.to_json())  # last: the row is complete
    metrics = "  ".join(f"{k} {v:.2f}" for k, v in result.metrics.items())
    console.print(f"  baseline {baseline.name}: done: {metrics}")
    return result


def _ask(
    baseline: ApiBaseline,
    todo: list[Question],
    cache: ResponseCache,
    replies: dict[str, ChatReply],
    client_factory: ClientFactory,
) -> tuple[list[str], int]:
    """Send ``todo`` with ``concurrency`` requests in flight; each reply is cached as it comes.

    Returns the errors, one line each, and how many requests were not sent: an error no retry
    can fix (a wrong key, an unknown model) stops the requests not yet sent, which would all
    fail the same way.
    """
    key = os.environ.get(baseline.api_key_env, "") if baseline.api_key_env else ""
    client = client_factory(baseline.base_url, key, baseline.timeout)
    endpoint = endpoint_of(baseline)
    hopeless = threading.Event()
    errors: list[str] = []
    lock = threading.Lock()

    def one(question: Question) -> None:
        if hopeless.is_set():
            return
        try:
            reply, _ = with_retries(
                lambda: client.complete(question.request), baseline.max_attempts
            )
        except ApiError as err:
            with lock:
                errors.append(str(err))
            if not err.retryable:
                hopeless.set()
            return
        except Exception as err:  # a client's own bug: a failed request, never a traceback
            error = f"{type(err).__name__}: {err}"
            with lock:
                errors.append(error.replace(key, "***") if key else error)
            return
        cache.put(question.key, endpoint, question.request, reply)
        with lock:
            replies[question.key] = reply

    pool = ThreadPoolExecutor(max_workers=baseline.concurrency)
    try:
        list(pool.map(one, todo))
    except BaseException:  # Ctrl-C: send nothing more; what was answered is in the cache
        hopeless.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    unsent = len(todo) - len(replies.keys() & {q.key for q in todo}) - len(errors)
    return errors, unsent


def _row(question: Question, reply: ChatReply) -> dict[str, Any]:
    example = question.example
    row: dict[str, Any] = {"id": example.key, "input": example.input,
                           "reference": example.target, "prediction": reply.text,
                           "finish_reason": reply.finish_reason}  # fmt: skip
    if reply.completion_tokens is not None:
        row["generated_tokens"] = reply.completion_tokens
    if reply.prompt_tokens is not None:
        row["prompt_tokens"] = reply.prompt_tokens
    return row


def _cost(baseline: ApiBaseline, usage: dict[str, int]) -> float | None:
    price = baseline.price_per_million
    if price is None:
        return None
    return (usage["prompt_tokens"] * price.input + usage["completion_tokens"] * price.output) / 1e6


def _record(
    baseline: ApiBaseline,
    status: Status,
    examples: int,
    metrics: dict[str, float] | None = None,
    usage: dict[str, int] | None = None,
    cost: float | None = None,
    requests: dict[str, int] | None = None,
    error: str | None = None,
) -> BaselineResult:
    return BaselineResult(baseline.name, status, baseline.model, baseline.base_url, examples,
                          metrics or {}, usage or {}, cost, requests or {}, baseline.max_tokens,
                          error)  # fmt: skip
