"""The sweep config: typed sections (``schema``), loading (``load``), the plan (``plan``)."""

# schema first: baselines.py builds on its Section, and schema.py imports baselines.py.
from lorasweep.config import schema as schema  # noqa: F401
