"""Build the trackers a sweep config asks for; a missing optional extra is a clear user error."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lorasweep.config.schema import TrackingConfig
from lorasweep.errors import UserError
from lorasweep.tracking.base import Tracker, TrackerGroup


def build_trackers(tracking: TrackingConfig, root: Path) -> TrackerGroup:
    """The configured trackers for a sweep stored in ``root``."""
    trackers: list[Tracker] = []
    if tracking.wandb is not None:
        _require("wandb", "tracking.wandb", "lorasweep[wandb]")
        from lorasweep.tracking.wandb_tracker import WandbTracker

        trackers.append(WandbTracker(tracking.wandb, root))
    if tracking.mlflow is not None:
        _require("mlflow", "tracking.mlflow", "lorasweep[mlflow]")
        from lorasweep.tracking.mlflow_tracker import MlflowTracker

        trackers.append(MlflowTracker(tracking.mlflow, root))
    return TrackerGroup(trackers)


def _require(module: str, field: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise UserError(f"{field}: the {module} package is not installed; pip install '{extra}'")
