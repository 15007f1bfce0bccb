"""Every API reply kept under the sweep folder, one file per request, keyed by what was asked.

A rerun, a report rebuild or a run killed halfway asks again only what has no file yet. The key
is a sha256 of the endpoint and the request's JSON body (model, messages, temperature, cap,
seed): change any of them and the request is new. The key to the API is in neither.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lorasweep.baselines.client import ChatReply, ChatRequest
from lorasweep.store.store import write_json

CACHE_DIR = "api_cache"


def request_key(endpoint: str, request: ChatRequest) -> str:
    """The hash of a request: same endpoint and body, same key (JSON key order ignored)."""
    canonical = json.dumps({"endpoint": endpoint, "body": request.body()}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)  # fmt: skip
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """Replies by request key, in ``SWEEP_DIR/api_cache/<k[:2]>/<key>.json``.

    Each file is written atomically once its reply is in, so a killed process leaves whole
    files or none. A damaged file is a miss: the request is asked again and the file replaced.
    """

    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / CACHE_DIR

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> ChatReply | None:
        path = self.path(key)
        try:
            return ChatReply.from_json(json.loads(path.read_text(encoding="utf-8"))["reply"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, endpoint: str, request: ChatRequest, reply: ChatReply) -> None:
        write_json(self.path(key), {"endpoint": endpoint, "request": request.body(),
                                    "reply": reply.to_json()})  # fmt: skip
