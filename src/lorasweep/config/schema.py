"""Typed sweep configuration, one class per concern; each class checks its own fields.

Unknown keys are errors (a typo must never silently become a default). Cross-section rules live
on ``SweepConfig``, next to the sections they connect.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:
    from lorasweep.config.search import SearchConfig

BUILTIN_PREFIX = "builtin:"

# Presets name the projection modules of Llama-family models (Llama, Mistral, Qwen, Gemma, ...).
# Other architectures (GPT-2's c_attn, ...) take explicit module names instead.
TARGET_PRESETS: dict[str, tuple[str, ...]] = {
    "qv": ("q_proj", "v_proj"),
    "attention": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "attention+mlp": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
}
ALL_LINEAR = "all-linear"  # PEFT's own preset: every linear layer except the output head

_ALPHA_MULTIPLE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*r\s*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _safe_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("use letters, digits and _ . + - only (it names files)")
    return value


def _not_bool(value: Any) -> Any:
    # Pydantic's lax mode reads true as 1: ``r: true`` would silently train with r=1.
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


SafeName = Annotated[str, AfterValidator(_safe_name)]  # becomes a file or folder name
Number = BeforeValidator(_not_bool)  # on every numeric field

# Upper bounds, generous but finite, so a typo (an extra 000, 1e12) is refused before anything
# runs instead of failing while allocating, after training. Token counts are also checked
# against the model's context length once its config is read (preflight.check_model).
MAX_STEPS = 10_000_000  # optimizer steps (and warmup, checkpoint interval)
MAX_ROWS = 100_000_000  # examples in a split
MAX_BATCH = 65_536  # examples per batch
MAX_TOKENS = 1_048_576  # tokens in one sequence
MAX_SEED = 2**32 - 1  # numpy's seed range (training seeds numpy too)
Seed = Annotated[int, Number, Field(ge=0, le=MAX_SEED)]
Points = Annotated[float, Number, Field(ge=0, le=100)]  # a ROUGE score x100


class Section(BaseModel):
    """Base of every config section: unknown keys are errors.

    Numbers written as strings are accepted (PyYAML reads ``2e-4`` as a string; ``2.0e-4`` is a
    float), but a fractional value for an integer field is an error, and so is ``true`` or
    ``false`` for any number (annotate numeric fields with ``Number``).
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


class ModelConfig(Section):
    """The base model: a Hugging Face hub id, a local directory, or ``builtin:tiny-llama``."""

    name: str = Field(min_length=1)
    revision: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False  # runs code from the model repo: off unless asked for
    # 4-bit weights through bitsandbytes (QLoRA): nf4 is the QLoRA paper's data type. Every run
    # trains and is evaluated on the same quantized base; `dtype` is then the dtype of the layers
    # left unquantized (embeddings, norms, output head), which training keeps in float32.
    quantization: Literal["none", "nf4", "fp4"] = "none"
    double_quant: bool = True  # quantize the quantization constants too: ~0.4 bits/weight less
    # The dtype 4-bit layers compute in. auto: bfloat16 on a GPU that has it, float32 otherwise.
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"

    @property
    def is_builtin(self) -> bool:
        return self.name.startswith(BUILTIN_PREFIX)

    @property
    def is_quantized(self) -> bool:
        return self.quantization != "none"

    def resolved(self) -> dict[str, Any]:
        """The fields that shape the numbers: the 4-bit options only for a 4-bit model, so a
        full-precision model keeps the run ids it had before quantization existed."""
        if self.is_quantized:
            return self.model_dump()
        return self.model_dump(exclude={"quantization", "double_quant", "compute_dtype"})


class DataConfig(Section):
    """Where the examples come from and which columns hold the input and the reference."""

    source: str = Field(min_length=1)  # hub dataset id, local file or directory, or builtin:...
    input_column: str = "dialogue"
    # A column of texts (or of lists of texts), or a list of columns, one reference each
    # ([summary1, summary2, summary3]): several references are scored best-of, and training
    # learns the first non-empty one.
    target_column: str | list[str] = "summary"
    train_split: str = "train"
    # The first N training rows, in file order; more than the split has means all of them.
    train_size: Annotated[int, Number, Field(gt=0, le=MAX_ROWS)] | Literal["all"] = "all"

    @field_validator("target_column")
    @classmethod
    def _columns(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str):
            return value
        if not value:
            raise ValueError("an empty list; name at least one column")
        if any(not c for c in value):
            raise ValueError("a column name is empty")
        if len(set(value)) != len(value):
            raise ValueError(f"{value}: a column is named twice")
        return value

    @property
    def is_builtin(self) -> bool:
        return self.source.startswith(BUILTIN_PREFIX)

    @property
    def target_columns(self) -> list[str]:
        """The columns that hold the references."""
        return [self.target_column] if isinstance(self.target_column, str) else self.target_column


class PromptConfig(Section):
    """How an example becomes a prompt: ``template`` fills ``{instruction}`` and the input."""

    instruction: str = ""
    template: str = "{instruction}\n\n{input}"
    # auto: the tokenizer's chat template when it has one (one user message, the target as the
    # assistant reply), else the plain template followed directly by the target.
    chat_template: Literal["auto"] | bool = "auto"

    @field_validator("chat_template", mode="before")
    @classmethod
    def _auto_or_bool(cls, value: Any) -> Any:
        if value == "auto" or isinstance(value, bool):
            return value
        raise ValueError("must be auto, true or false")

    @field_validator("template")
    @classmethod
    def _fillable(cls, value: str) -> str:
        """Only named placeholders: the template is filled with ``str.format(**values)``, so
        anything else would pass here and raise on the first example."""
        try:
            fields = list(string.Formatter().parse(value))
        except ValueError as err:  # "Single '}' encountered in format string", ...
            problem = str(err)[:1].lower() + str(err)[1:]
            raise ValueError(
                f"unbalanced braces ({problem}); write {{{{ or }}}} for a literal brace"
            ) from None
        for _, name, spec, conversion in fields:
            if name is None:
                continue
            if name == "" or name.isdigit():
                raise ValueError(
                    f"positional placeholder {{{name}}}; name it: {{instruction}} or {{input}}"
                )
            if "." in name or "[" in name:
                raise ValueError(
                    f"placeholder {{{name}}} reads an attribute or index of a value; "
                    "use {instruction} and {input} as they are"
                )
            if spec or conversion:
                raise ValueError(
                    f"placeholder {{{name}}} has a format spec (:...) or conversion (!...); "
                    f"write {{{name}}} alone"
                )
        return value

    def placeholders(self) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.template) if name}


class LoraConfig(Section):
    """LoRA adapter settings. ``alpha`` is a number or a multiple of r written like ``2r``."""

    r: Annotated[int, Number, Field(gt=0, le=65_536)] = 8
    alpha: Annotated[float, Number, Field(le=1_000_000)] | str = 16
    dropout: Annotated[float, Number, Field(ge=0, lt=1)] = 0.05
    target_modules: str | list[str] = "qv"
    # rsLoRA scales the update by alpha/sqrt(r) instead of alpha/r, so that higher ranks learn
    # as fast as low ones; DoRA trains a magnitude per output and LoRA for the direction.
    use_rslora: bool = False
    use_dora: bool = False

    @field_validator("alpha")
    @classmethod
    def _alpha_form(cls, value: float | str) -> float | str:
        if isinstance(value, str):
            match = _ALPHA_MULTIPLE.match(value)
            if not match:
                raise ValueError("must be a number or a multiple of r such as '2r'")
            if float(match.group(1)) > 1_000:
                raise ValueError("must be at most 1000r")
        elif value <= 0:
            raise ValueError("must be > 0")
        return value

    @field_validator("target_modules")
    @classmethod
    def _known_preset(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str) and value not in TARGET_PRESETS and value != ALL_LINEAR:
            presets = ", ".join([*TARGET_PRESETS, ALL_LINEAR])
            raise ValueError(f"unknown preset; use one of {presets} or a list of module names")
        if isinstance(value, list) and not value:
            raise ValueError("must name at least one module")
        return value

    @property
    def lora_alpha(self) -> float:
        """Alpha as a number, the multiple (if any) applied to this config's r."""
        if isinstance(self.alpha, str):
            return float(_ALPHA_MULTIPLE.match(self.alpha).group(1)) * self.r
        return float(self.alpha)

    @property
    def scaling(self) -> float:
        """The factor the low-rank update is multiplied by: alpha/r, or alpha/sqrt(r) (rsLoRA)."""
        return lora_scaling(self.r, self.lora_alpha, self.use_rslora)

    @property
    def modules(self) -> list[str] | str:
        """Explicit module names, or PEFT's ``all-linear``."""
        if isinstance(self.target_modules, list):
            return sorted(set(self.target_modules))
        return (
            self.target_modules
            if self.target_modules == ALL_LINEAR
            else list(TARGET_PRESETS[self.target_modules])
        )


def lora_scaling(r: int, alpha: float, use_rslora: bool = False) -> float:
    """The effective LoRA scaling PEFT applies: alpha/r, or alpha/sqrt(r) with rsLoRA."""
    return alpha / (r**0.5 if use_rslora else r)


class TrainingConfig(Section):
    """Optimisation settings. Give ``max_steps`` or ``epochs``; max_steps wins when both are set."""

    learning_rate: Annotated[float, Number, Field(gt=0, le=1)] = 2e-4  # AdamW: above 1 is a typo
    max_steps: Annotated[int, Number, Field(gt=0, le=MAX_STEPS)] | None = None
    epochs: Annotated[float, Number, Field(gt=0, le=10_000)] | None = None
    batch_size: Annotated[int, Number, Field(gt=0, le=MAX_BATCH)] = 4
    gradient_accumulation_steps: Annotated[int, Number, Field(gt=0, le=MAX_BATCH)] = 1
    # Prompt + target tokens; longer examples are cut at the end (README). At most the model's
    # context length (preflight.check_model).
    max_length: Annotated[int, Number, Field(gt=0, le=MAX_TOKENS)] = 512
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_steps: Annotated[int, Number, Field(ge=0, le=MAX_STEPS)] = 0
    weight_decay: Annotated[float, Number, Field(ge=0, le=10)] = 0.0
    max_grad_norm: Annotated[float, Number, Field(gt=0, le=1_000_000)] | None = 1.0
    # Batches of similar-length examples waste less compute on padding; the order stays seeded.
    group_by_length: bool = True
    # Recompute each layer's activations in the backward pass instead of keeping them: less
    # memory, about a third more compute. The same numbers bit for bit (a test checks it), so it
    # is not part of a run's identity and not an experiment factor.
    gradient_checkpointing: bool = False
    # Each micro-batch's examples in one row, attending only within each example: no padding, but
    # on a CPU the mask is dense over the row, so it is slower there (BENCHMARKS.md). The same
    # loss up to float rounding; part of a run's identity only when on.
    packing: bool = False
    seed: Seed = 42

    @model_validator(mode="after")
    def _has_length(self) -> TrainingConfig:
        if self.max_steps is None and self.epochs is None:
            raise ValueError("set max_steps or epochs")
        return self


def _metric_entry(value: Any) -> Any:
    from lorasweep.metrics.registry import check_options, parse_entry

    name, options = parse_entry(value)
    check_options(name, options)
    if isinstance(value, str) and ":" in value:  # file.py:function, found from any folder later
        file, _, function = value.rpartition(":")
        return f"{Path(file).expanduser().resolve()}:{function}"
    return value


MetricEntry = Annotated[str | dict[str, dict[str, Any] | None], AfterValidator(_metric_entry)]


class EvaluationConfig(Section):
    """The fixed evaluation subset: ``split.shuffle(seed=seed).select(range(size))``, and the
    metrics that score it."""

    split: str = "validation"
    # More than the split holds is refused, not cut: the report would claim examples it lacks.
    size: Annotated[int, Number, Field(gt=0, le=MAX_ROWS)] = 200
    seed: Seed = 42  # numpy seeds the shuffle
    use_stemmer: bool = False  # rouge-score's Porter stemmer; off matches most published numbers
    # Built-in names (rouge, chrf, bleu, exact_match, f1, bertscore), {name: {options}}, or
    # file.py:function. Not part of a run's identity: a change re-scores the stored predictions.
    metrics: list[MetricEntry] = Field(default_factory=lambda: ["rouge"], min_length=1)
    # The key verdicts, recommendations, the confirmation run and the Pareto front rest on.
    primary: str = Field(default="rougeL", min_length=1)

    @field_validator("metrics")
    @classmethod
    def _each_once(cls, value: list[str | dict]) -> list[str | dict]:
        from lorasweep.metrics.registry import declared_keys, parse_entry

        names = [parse_entry(entry)[0] for entry in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"{twice[0]!r} is listed twice")
        keys = [k.name for k in declared_keys(value) or []]
        if len(set(keys)) != len(keys):
            raise ValueError("two metrics write the same key")
        return value

    @field_validator("primary")
    @classmethod
    def _scored(cls, value: str, info: ValidationInfo) -> str:
        from lorasweep.metrics.registry import declared_keys

        if "metrics" not in info.data:  # the metrics are wrong: reported once, there
            return value
        keys = declared_keys(info.data["metrics"])
        if keys is not None and value not in [k.name for k in keys]:  # None: custom, preflight
            raise ValueError(
                f"not a key of the metrics; choose one of {', '.join(k.name for k in keys)}"
            )
        return value

    @property
    def identity(self) -> dict[str, Any]:
        """What shapes the generated predictions: everything but the metrics that score them."""
        return self.model_dump(exclude={"metrics", "primary"})


class TestSplitConfig(Section):
    """Held-out examples for the final claim: the baseline, the confirmation run and the best
    single-factor run are re-evaluated here, on data not used to choose between them."""

    split: str = "test"
    size: Annotated[int, Number, Field(gt=0, le=MAX_ROWS)] = 200  # at most the split's rows
    seed: Seed = 42


class GenerationConfig(Section):
    """Greedy decoding settings for evaluation."""

    # auto: 1.5 x the 99th percentile of the training references' token lengths + 4: room for
    # any normal summary, without decoding far past the references; a number sets it directly.
    # At most the model's context length (preflight.check_model).
    max_new_tokens: Annotated[int, Number, Field(gt=0, le=MAX_TOKENS)] | Literal["auto"] = "auto"
    batch_size: Annotated[int, Number, Field(gt=0, le=MAX_BATCH)] = 16
    # hf: transformers in this process. vllm: vLLM's multi-LoRA engine in its own process, one
    # engine per sweep (GPU; `vllm_python`: an interpreter with vllm installed, default this one).
    backend: Literal["hf", "vllm"] = "hf"
    vllm_python: str | None = None
    # The share of the GPU's memory the vLLM engine takes (weights, KV cache); the rest stays
    # for training in this process. More: larger batches for vLLM, less room to train.
    vllm_gpu_memory: Annotated[float, Number, Field(gt=0, lt=1)] = 0.4

    @property
    def identity(self) -> dict[str, Any]:
        """What shapes the predictions: the backend only when it is not hf (so runs keep the ids
        they had before backends existed); never how or where it runs."""
        exclude = {"vllm_python", "vllm_gpu_memory"} | (
            {"backend"} if self.backend == "hf" else set()
        )
        return self.model_dump(exclude=exclude)


class BaselineConfig(Section):
    """The configuration every experiment varies one factor of."""

    lora: LoraConfig = LoraConfig()
    training: TrainingConfig


# Fields that cannot be an experiment's factor, and why.
NOT_FACTORS = {
    "training.gradient_checkpointing": "does not change a run's numbers, only its memory and time",
}


class ExperimentConfig(Section):
    """One factor varied around the baseline: ``factor: lora.r`` with ``values: [4, 8, 16]``."""

    name: SafeName
    factor: str
    values: list[Any] = Field(min_length=1)

    @field_validator("factor")
    @classmethod
    def _known_factor(cls, value: str) -> str:
        return check_factor(value)


def check_factor(value: str) -> str:
    """A dotted field of the baseline that an experiment or a search may vary (``lora.r``)."""
    section, _, key = value.partition(".")
    fields = {"lora": LoraConfig.model_fields, "training": TrainingConfig.model_fields}
    if value in NOT_FACTORS:
        raise ValueError(f"{value} {NOT_FACTORS[value]}; set it in baseline.{value}")
    if section not in fields or key not in fields[section]:
        choices = [
            f"{s}.{k}" for s, f in fields.items() for k in f if f"{s}.{k}" not in NOT_FACTORS
        ]
        raise ValueError(f"unknown factor; choose one of {', '.join(choices)}")
    return value


class ExecutionConfig(Section):
    """How runs are executed; none of it changes a run's numbers, so none of it is in its hash.

    ``executor: local`` runs every unit in this process, one after another. ``executor: ray``
    runs each unit as a Ray task with ``gpus_per_run`` GPUs and ``cpus_per_run`` CPUs, as many
    at once as the cluster holds; the run store on the driver stays the only state.
    """

    executor: Literal["local", "ray"] = "local"
    # null: start a Ray instance on this machine; "auto": join the cluster this machine is part
    # of (`ray start`); "ray://host:10001" or "host:6379": join that cluster.
    ray_address: str | None = None
    gpus_per_run: Annotated[float, Number, Field(ge=0, le=64)] = 1  # 0: CPU-only tasks
    cpus_per_run: Annotated[float, Number, Field(gt=0, le=1024)] = 1  # also its torch threads
    # Retries of a task whose worker died; an exception in a run is never retried.
    max_retries: Annotated[int, Number, Field(ge=0, le=100)] = 2
    # Optimizer steps; 0: no checkpoints.
    checkpoint_every: Annotated[int, Number, Field(ge=0, le=MAX_STEPS)] = 50


class WandbConfig(Section):
    """Mirror the sweep into Weights & Biases."""

    project: str = "lorasweep"
    entity: str | None = None
    # auto: online when an API key is configured, else offline run files for `wandb sync`.
    mode: Literal["auto", "online", "offline", "disabled"] = "auto"


class MlflowConfig(Section):
    """Mirror the sweep into MLflow."""

    tracking_uri: str | None = None  # default: a local store inside the sweep folder
    experiment: str | None = None  # default: the sweep's name


class TrackingConfig(Section):
    """Optional experiment trackers; the run store stays the source of truth."""

    wandb: WandbConfig | None = None
    mlflow: MlflowConfig | None = None


class ReportedRow(Section):
    """Published numbers shown in the report's perspective table, marked as reported, not measured.

    Scores are in points (x100), as the report prints its own; keys other than ROUGE's go under
    ``scores`` (``scores: {chrf: 48.2}``).
    """

    label: str = Field(min_length=1)
    rouge1: Points | None = None
    rouge2: Points | None = None
    rougeL: Points | None = None
    rougeLsum: Points | None = None
    scores: dict[str, Annotated[float, Number]] = Field(default_factory=dict)
    source: str = Field(min_length=1)  # where the numbers come from: a paper, a model card, a URL

    @model_validator(mode="after")
    def _has_a_score(self) -> ReportedRow:
        if not self.numbers():
            raise ValueError("give at least one of rouge1, rouge2, rougeL, rougeLsum or scores")
        return self

    def numbers(self) -> dict[str, float]:
        """Every score given, by key."""
        rouge = {"rouge1": self.rouge1, "rouge2": self.rouge2, "rougeL": self.rougeL,
                 "rougeLsum": self.rougeLsum}  # fmt: skip
        return {**{k: v for k, v in rouge.items() if v is not None}, **self.scores}


from lorasweep.config.baselines import ApiBaseline  # noqa: E402  (builds on Section above)


class SweepConfig(Section):
    """A whole study: shared model, data, prompt and evaluation; a baseline; experiments."""

    name: SafeName = "sweep"
    model: ModelConfig
    data: DataConfig
    prompt: PromptConfig = PromptConfig()
    baseline: BaselineConfig
    evaluation: EvaluationConfig = EvaluationConfig()
    generation: GenerationConfig = GenerationConfig()
    experiments: list[ExperimentConfig] = Field(default_factory=list)
    search: SearchConfig | None = None  # a grid, random or TPE search (config/search.py)
    tracking: TrackingConfig = TrackingConfig()
    reported: list[ReportedRow] = Field(default_factory=list)  # published numbers, for perspective
    execution: ExecutionConfig = ExecutionConfig()
    # Training seeds: every configuration is trained once per seed (empty: the baseline's seed).
    seeds: list[Seed] = Field(default_factory=list)
    # Train the combination of every experiment's recommended value once more, to check the
    # one-factor-at-a-time assumption that the factors do not interact.
    confirmation: bool = True
    test: TestSplitConfig | None = None
    baselines: list[ApiBaseline] = Field(default_factory=list)  # API models asked the prompts

    @model_validator(mode="after")
    def _quantization_options(self) -> SweepConfig:
        # Here rather than on ModelConfig, so that the line names the field: model.compute_dtype.
        # A default value written out (as sweep.yaml writes every field) is no mistake.
        fields = ModelConfig.model_fields
        stray = sorted(
            name
            for name in ("double_quant", "compute_dtype")
            if getattr(self.model, name) != fields[name].default
        )
        if stray and not self.model.is_quantized:
            raise ValueError(
                f"model.{stray[0]}: applies to a 4-bit model only; set model.quantization to "
                "nf4 or fp4, or remove it"
            )
        return self

    @model_validator(mode="after")
    def _prompt_fits_data(self) -> SweepConfig:
        inputs = {"input", self.data.input_column}
        unknown = sorted(self.prompt.placeholders() - inputs - {"instruction"})
        if unknown:
            raise ValueError(
                f"prompt.template: unknown placeholder {{{unknown[0]}}}; "
                f"use {{instruction}} and {{{self.data.input_column}}} (or {{input}})"
            )
        if not self.prompt.placeholders() & inputs:
            raise ValueError(
                "prompt.template: never shows the model its input; put {input} (or "
                f"{{{self.data.input_column}}}) where the example goes"
            )
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: each seed once, got {self.seeds}")
        names = [e.name for e in self.experiments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"experiments: name {duplicates[0]!r} is used twice")
        names = [b.name for b in self.baselines]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"baselines: name {duplicates[0]!r} is used twice")
        return self


# The search section builds on the classes above (config/__init__.py imports this module first).
from lorasweep.config.search import SearchConfig  # noqa: E402

SweepConfig.model_rebuild()
