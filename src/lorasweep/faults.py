"""Named points where a test can SIGKILL lorasweep itself, to prove crash safety.

``LORASWEEP_KILL_AT=<point>`` (set only by the crash tests) makes the process kill itself with
SIGKILL the first time it reaches that point: no cleanup, no flush, exactly like a preempted
machine. Without the variable a fault point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = ("checkpoint-saved", "evaluation", "writing-result")


def fault_point(name: str) -> None:
    if os.environ.get("LORASWEEP_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
