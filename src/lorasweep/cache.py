"""lorasweep's cache folder: built models and tokenized data, safe to delete at any time."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$LORASWEEP_CACHE``, else ``lorasweep`` in the XDG cache folder (``~/.cache``)."""
    if os.environ.get("LORASWEEP_CACHE"):
        return Path(os.environ["LORASWEEP_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lorasweep"
