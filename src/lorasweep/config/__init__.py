"""Typed sweep configuration."""

# schema defines the classes config.search builds on, then imports it: load it first.
from lorasweep.config import schema  # noqa: F401
