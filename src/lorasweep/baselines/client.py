"""The chat-completions HTTP API, as OpenAI defines it and compatible servers (vLLM, llama.cpp,
TGI, Ollama) speak it: one request, one reply, and retries with backoff.

The client is the standard library's ``urllib``: no SDK to install, and every status code and
``Retry-After`` header stays in view. ``ChatClient`` is the seam a test or another protocol
plugs in at.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lorasweep import __version__
from lorasweep.config.baselines import OPENAI_URL

RETRY_AFTER_CAP_S = 300.0  # a server asking for more is waited on this long at most
BACKOFF_S = 1.0  # first retry's delay without Retry-After; doubles each attempt, with jitter
BACKOFF_CAP_S = 60.0
_ERROR_TEXT = 300  # characters of a server's error body kept in a message


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completions request, without the key (which never enters a record)."""

    model: str
    messages: tuple[tuple[str, str], ...]  # (role, content)
    temperature: float
    max_tokens: int
    seed: int | None
    cap_field: str = "max_tokens"  # OpenAI's own API wants max_completion_tokens

    def body(self) -> dict[str, Any]:
        """The JSON body, as sent; also what the response cache hashes."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": role, "content": content} for role, content in self.messages],
            # Always sent: without it vLLM's server falls back to the model's own sampling.
            "temperature": self.temperature,
            self.cap_field: self.max_tokens,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        return body


@dataclass(frozen=True)
class ChatReply:
    """What a reply holds that the report uses."""

    text: str
    finish_reason: str | None  # "length": cut at max_tokens
    prompt_tokens: int | None
    completion_tokens: int | None

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "finish_reason": self.finish_reason,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChatReply:
        return cls(data["text"], data.get("finish_reason"), data.get("prompt_tokens"),
                   data.get("completion_tokens"))  # fmt: skip


class ApiError(Exception):
    """A request that did not produce a reply.

    Args:
        message: One line, without the key.
        retryable: 429, 5xx, a timeout, a dropped connection or a garbled reply: worth asking
            again. Anything else (401, 400, 404) will fail the same way every time.
        retry_after: Seconds the server asked to wait (``Retry-After``), if it said.
    """

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class ChatClient(Protocol):
    """Sends one request and returns its reply, or raises ``ApiError``."""

    def complete(self, request: ChatRequest) -> ChatReply: ...


def cap_field(base_url: str) -> str:
    """OpenAI's API refuses ``max_tokens`` for its newer models; other servers know only it."""
    return "max_completion_tokens" if base_url == OPENAI_URL else "max_tokens"


class HttpChatClient:
    """POSTs to ``{base_url}/chat/completions`` with a bearer key.

    Args:
        base_url: The API root, e.g. ``https://api.openai.com/v1``.
        api_key: The key; only ever placed in the Authorization header, and removed from any
            error message a server echoes it in. Empty: no Authorization header.
        timeout: Seconds to wait for a reply.
    """

    def __init__(self, base_url: str, api_key: str, timeout: float) -> None:
        self.endpoint = f"{base_url.rstrip('/')}/chat/completions"
        self._key = api_key.strip()
        self.timeout = timeout
        # A server on this machine is asked directly, whatever http_proxy says.
        host = urllib.parse.urlsplit(self.endpoint).hostname or ""
        local = host in ("localhost", "127.0.0.1", "::1")
        self._opener = urllib.request.build_opener(
            *([urllib.request.ProxyHandler({})] if local else [])
        )

    def complete(self, request: ChatRequest) -> ChatReply:
        headers = {"Content-Type": "application/json", "User-Agent": f"lorasweep/{__version__}"}
        if self._key:  # a server without authentication gets no header
            headers["Authorization"] = f"Bearer {self._key}"
        data = json.dumps(request.body()).encode("utf-8")
        try:
            http = urllib.request.Request(self.endpoint, data, headers, method="POST")
            with self._opener.open(http, timeout=self.timeout) as response:
                raw = response.read()
        except ValueError:  # http.client refuses a header value (a key with a newline in it)
            message = "the key is not a valid HTTP header value (a stray newline?)"
            raise ApiError(message, False) from None
        except urllib.error.HTTPError as err:
            raise self._http_error(err) from None
        except TimeoutError:
            raise ApiError(f"no reply within {self.timeout:g}s (timeout)", True) from None
        except urllib.error.URLError as err:
            reason = err.reason
            if isinstance(reason, TimeoutError):
                raise ApiError(f"no reply within {self.timeout:g}s (timeout)", True) from None
            raise ApiError(f"cannot reach {self.endpoint}: {reason}", True) from None
        except (ConnectionError, OSError) as err:  # reset mid-reply, ...
            raise ApiError(f"connection to {self.endpoint} failed: {err}", True) from None
        return parse_reply(raw)

    def _http_error(self, err: urllib.error.HTTPError) -> ApiError:
        try:
            body = err.read().decode("utf-8", "replace")
        except OSError:
            body = ""
        detail = _error_detail(body).replace(self._key, "***") if self._key else _error_detail(body)
        status = err.code
        message = f"HTTP {status} from {self.endpoint}" + (f": {detail}" if detail else "")
        if status in (401, 403):
            message += " (check the key)"
        elif status == 404:
            message += " (is base_url the API root, such as http://host:8000/v1?)"
        retryable = status in (408, 409, 429) or status >= 500
        return ApiError(message, retryable, retry_after(err.headers.get("Retry-After")))


def parse_reply(raw: bytes) -> ChatReply:
    """The first choice of a chat-completions reply.

    Raises:
        ApiError: The reply is not the protocol's JSON (retryable: a proxy's page, a cut reply).
    """
    try:
        data = json.loads(raw.decode("utf-8"))
        choice = data["choices"][0]
        text = choice["message"]["content"]
        usage = data.get("usage") or {}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, IndexError, TypeError) as err:
        kind = "not JSON" if isinstance(err, (UnicodeDecodeError, ValueError)) else "no choices[0]"
        excerpt = raw[:80].decode("utf-8", "replace")
        raise ApiError(f"malformed reply ({kind}): {excerpt!r}", True) from None
    if text is not None and not isinstance(text, str):
        raise ApiError("malformed reply (message content is not text)", True)
    return ChatReply(
        text=(text or "").strip(),  # a refusal or tool call has no text: an empty prediction
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
    )


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def with_retries(
    call: Callable[[], ChatReply],
    attempts: int,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> tuple[ChatReply, int]:
    """``call()``, asked again after a retryable error, at most ``attempts`` times in all.

    The wait is the server's ``Retry-After`` when it gives one (capped), else an exponential
    backoff with full jitter: spread retries of concurrent requests apart.

    Returns:
        The reply and the number of attempts it took.

    Raises:
        ApiError: The last error, when it is not retryable or the attempts are spent.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call(), attempt
        except ApiError as err:
            if not err.retryable or attempt == attempts:
                if attempt > 1:
                    err.args = (f"{err.args[0]} (after {attempt} attempts)",)
                raise
            if err.retry_after is not None:
                delay = min(err.retry_after, RETRY_AFTER_CAP_S)
            else:
                delay = min(BACKOFF_CAP_S, BACKOFF_S * 2 ** (attempt - 1)) * (0.5 + jitter() / 2)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _error_detail(body: str) -> str:
    """The server's own message (``{"error": {"message": ...}}``), else the start of its body."""
    try:
        data = json.loads(body)
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str) and message.strip():
            return message.strip().splitlines()[0][:_ERROR_TEXT]
    except (json.JSONDecodeError, AttributeError):
        pass
    return " ".join(body.split())[:_ERROR_TEXT]


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
