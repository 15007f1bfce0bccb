"""Typed config of API baselines: external chat models asked the sweep's own prompts.

Each entry of ``baselines:`` names an OpenAI-compatible chat-completions endpoint and model.
Its predictions are scored on the sweep's evaluation examples and paired with the LoRA baseline
in the perspective table. None of it is part of any run's identity: a baseline is not trained.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from lorasweep.config.schema import MAX_SEED, MAX_TOKENS, Number, SafeName, Section

OPENAI_URL = "https://api.openai.com/v1"


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


class PricePerMillion(Section):
    """US dollars per million tokens, as providers publish them: the report's cost column."""

    input: Annotated[float, Number, Field(ge=0, le=1_000_000)]
    output: Annotated[float, Number, Field(ge=0, le=1_000_000)]


class ApiBaseline(Section):
    """One external chat model, asked every evaluation example once (greedy by default).

    ``few_shot: k`` puts the first k training examples before each question, as user and
    assistant turns. Retries cover 429, 5xx and timeouts, honouring ``Retry-After``; after
    ``max_attempts`` the example's request fails, and the baseline is a failed row.
    """

    name: SafeName  # names the row and its folder, baselines/<name>/
    kind: Literal["openai-chat"] = "openai-chat"
    model: str = Field(min_length=1)
    base_url: Annotated[str, AfterValidator(_http_url)] = OPENAI_URL
    # The environment variable holding the key; the key itself is never written anywhere.
    # null: a server that needs no key (a local vLLM or llama.cpp server started without one).
    api_key_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = (
        "OPENAI_API_KEY"
    )
    # 0: greedy, as the sweep's own models decode; always sent (servers default otherwise).
    temperature: Annotated[float, Number, Field(ge=0, le=2)] = 0
    max_tokens: Annotated[int, Number, Field(gt=0, le=MAX_TOKENS)] = 256  # reply cap
    seed: Annotated[int, Number, Field(ge=0, le=MAX_SEED)] | None = 42
    concurrency: Annotated[int, Number, Field(gt=0, le=256)] = 4  # requests in flight
    few_shot: Annotated[int, Number, Field(ge=0, le=64)] = 0
    timeout: Annotated[float, Number, Field(gt=0, le=3600)] = 60  # seconds per request
    max_attempts: Annotated[int, Number, Field(gt=0, le=20)] = 5  # per request, first included
    price_per_million: PricePerMillion | None = None

    @field_validator("api_key_env", mode="before")
    @classmethod
    def _a_name(cls, value: object) -> object:
        if isinstance(value, str) and (value.startswith("sk-") or len(value) > 64):
            raise ValueError("name the environment variable holding the key, not the key itself")
        return value
