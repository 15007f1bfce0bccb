"""A real chat-completions server on 127.0.0.1 for tests: ``http.server`` in a thread.

It answers ``POST /v1/chat/completions`` with the first line of the last user message's input
(the text after the prompt's instruction line), so its answers earn a ROUGE a test can compute,
and it can be told to misbehave: a 429 with ``Retry-After`` first, a 500, malformed JSON, a
slow answer, or a 401 for any key but the expected one.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY = "sk-test-PLANTEDlocalKEY123"


def answer_for(user_message: str) -> str:
    """The server's answer: the first dialogue line of the message (the line after the first)."""
    lines = [line for line in user_message.splitlines() if line.strip()]
    return lines[1] if len(lines) > 1 else lines[0]


@dataclass
class Behaviour:
    """What the server does; tests set it, the handler reads it."""

    key: str | None = KEY  # None: no authentication
    rate_limit_first: int = 0  # this many requests get 429 + Retry-After first
    retry_after: str = "1"
    fail_500: bool = False
    malformed: bool = False
    slow_s: float = 0.0  # sleep before answering the first ``slow_count`` requests
    slow_count: int = 0
    finish_reason: str = "stop"
    in_flight: int = 0
    most_in_flight: int = 0  # requests being answered at once, at most
    requests: list[dict[str, Any]] = field(default_factory=list)  # bodies, with arrival times
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ChatServer:
    """Start with ``with ChatServer() as server:``; ``server.url`` is the API root (``/v1``)."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        behaviour = lambda: self.behaviour  # noqa: E731  (the handler reads the current one)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                b = behaviour()
                with b.lock:
                    b.in_flight += 1
                    b.most_in_flight = max(b.most_in_flight, b.in_flight)
                try:
                    self._answer(b)
                finally:
                    with b.lock:
                        b.in_flight -= 1

            def _answer(self, b: Behaviour) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with b.lock:
                    b.requests.append({**body, "_at": time.monotonic()})
                    b.headers.append(dict(self.headers))
                    number = len(b.requests)
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if b.key is not None and self.headers.get("Authorization") != f"Bearer {b.key}":
                    given = self.headers.get("Authorization", "")
                    return self._send(
                        401, {"error": {"message": f"Incorrect API key provided: {given[7:]}"}}
                    )
                if number <= b.rate_limit_first:
                    return self._send(429, {"error": {"message": "Rate limit reached"}},
                                      {"Retry-After": b.retry_after})  # fmt: skip
                if b.fail_500:
                    return self._send(500, {"error": {"message": "The server had an error"}})
                if number <= b.slow_count:
                    time.sleep(b.slow_s)
                if b.malformed:
                    return self._raw(200, b'{"choices": [{"message": ')
                user = body["messages"][-1]["content"]
                text = answer_for(user)
                reply = {
                    "id": f"chatcmpl-{number}",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": b.finish_reason,
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": len(user.split()),
                              "completion_tokens": len(text.split()),
                              "total_tokens": len(user.split()) + len(text.split())},
                }  # fmt: skip
                self._send(200, reply)

            def _send(self, status: int, value: dict, headers: dict | None = None) -> None:
                self._raw(status, json.dumps(value).encode(), headers)

            def _raw(self, status: int, data: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # timed out
                    self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def reset(self, **changes: Any) -> Behaviour:
        self.behaviour = Behaviour(**changes)
        return self.behaviour

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
