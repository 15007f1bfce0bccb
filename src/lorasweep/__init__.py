"""lorasweep: config-driven LoRA hyperparameter sweeps, from YAML to evidence."""

__version__ = "0.1.0"
