"""The sweep config: typed sections (``schema``), loading (``load``), the plan (``plan``)."""

# schema first: baselines.py and search.py build on its Section, and schema.py imports them.
from lorasweep.config import schema as schema  # noqa: F401
