"""What a result was computed with: package versions and the device."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

import torch

PACKAGES = (
    "lorasweep", "torch", "transformers", "peft", "accelerate", "datasets", "tokenizers",
    "rouge-score", "sacrebleu", "numpy",
)  # fmt: skip


def environment() -> dict[str, Any]:
    """A JSON-ready record of the software and hardware a run used."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    if torch.cuda.is_available():
        device = {
            "type": "cuda",
            "name": torch.cuda.get_device_name(0),
            "count": torch.cuda.device_count(),
        }
    else:
        device = {"type": "cpu", "name": platform.processor() or platform.machine(),
                  "threads": torch.get_num_threads()}  # fmt: skip
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "device": device,
        "packages": versions,
    }
