"""lorasweep: config-driven LoRA hyperparameter sweeps, from YAML to evidence."""

import logging


class _NoKernelsHubNotice(logging.Filter):
    """bitsandbytes warns at import, on CPUs with AVX512-BF16, that the optional ``kernels``
    package is missing; lorasweep never takes the path that would use it
    (``training.model.keep_cpu_4bit_layout``), so the notice only confuses."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "kernels-community" not in record.getMessage()


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_NoKernelsHubNotice())

__version__ = "0.1.0"
