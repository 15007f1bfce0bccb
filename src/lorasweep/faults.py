"""Named points where a test can SIGKILL lorasweep itself, to prove crash safety.

``LORASWEEP_KILL_AT=<point>`` (set only by the crash tests) makes the process kill itself with
SIGKILL the first time it reaches that point: no cleanup, no flush, exactly like a preempted
machine. With ``LORASWEEP_KILL_MARK=<file>`` as well, only the first process to get there dies
(it creates the file first): a retried Ray task then runs through. Without the variables a fault
point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

POINTS = ("checkpoint-saved", "evaluation", "writing-result", "search-batch")
VARIABLES = ("LORASWEEP_KILL_AT", "LORASWEEP_KILL_MARK")  # forwarded to remote workers


def fault_point(name: str) -> None:
    if os.environ.get("LORASWEEP_KILL_AT") != name:
        return
    mark = os.environ.get("LORASWEEP_KILL_MARK")
    if mark:
        try:
            Path(mark).touch(exist_ok=False)
        except FileExistsError:
            return
    os.kill(os.getpid(), signal.SIGKILL)


def environment() -> dict[str, str]:
    """The fault variables set in this process, for a worker to apply (tests only)."""
    return {name: os.environ[name] for name in VARIABLES if name in os.environ}
