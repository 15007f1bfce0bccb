"""The study file of ``lorasweep analyze``: a one-factor-at-a-time study mapped onto files.

Each configuration is a predictions file (JSONL, one example a line) made by any tool; paths are
relative to the study file. Validated like a sweep config: every problem in one pass, each
naming its field, unknown keys refused::

    name: published-study
    fields: {input: dialogue, reference: reference, prediction: prediction}  # id: optional
    baseline: {label: "r=8, lr 2e-4, q+v", predictions: runs/baseline/predictions.jsonl}
    zero_shot: {predictions: runs/base/predictions.jsonl}                    # optional
    experiments:
      - name: rank
        factor: lora.r
        values:
          - {value: 4, predictions: runs/r4/predictions.jsonl, cost: {trainable_params: 4e5}}
          - {value: 8, baseline: true}
          - {value: 16, predictions: runs/r16/predictions.jsonl}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator

from lorasweep.config.load import format_errors, read_yaml
from lorasweep.config.plan import value_label
from lorasweep.config.schema import (
    EvaluationConfig,
    Number,
    ReportedRow,
    SafeName,
    Section,
)
from lorasweep.errors import ConfigError

# What analyze takes from ``evaluation``: the examples are the files', not a split's.
EVALUATION_KEYS = ("metrics", "primary", "use_stemmer")
Count = Annotated[int, Number, Field(gt=0)]
Seconds = Annotated[float, Number, Field(ge=0)]


class StudyFields(Section):
    """The JSON fields of the predictions files; ``id`` and ``input`` pair the examples."""

    prediction: str = Field(default="prediction", min_length=1)
    reference: str = Field(default="reference", min_length=1)
    input: str = Field(default="input", min_length=1)
    id: str = Field(default="id", min_length=1)


class StudyCost(Section):
    """What a configuration cost, for the report's cost columns and Pareto front."""

    trainable_params: Count | None = None
    train_s: Seconds | None = None
    train_tokens: Count | None = None
    adapter_bytes: Count | None = None
    peak_memory_bytes: Count | None = None
    eval_s: Seconds | None = None


class StudyRun(Section):
    """One configuration's predictions file."""

    predictions: str = Field(min_length=1)
    cost: StudyCost = Field(default_factory=StudyCost)


class StudyBaseline(StudyRun):
    label: str = Field(default="baseline", min_length=1)  # its settings, in a few words


class StudyValue(Section):
    """One value of an experiment: its predictions, or ``baseline: true`` for the baseline's."""

    value: str | int | float | bool | list[str | int | float]
    predictions: str | None = Field(default=None, min_length=1)
    baseline: bool = False
    cost: StudyCost = Field(default_factory=StudyCost)

    @model_validator(mode="after")
    def _one_source(self) -> StudyValue:
        if self.baseline and self.predictions is not None:
            raise ValueError("give predictions or baseline: true, not both")
        if not self.baseline and self.predictions is None:
            raise ValueError("predictions is required (or baseline: true for the baseline's value)")
        return self

    @property
    def label(self) -> str:
        return value_label(self.value)


class StudyExperiment(Section):
    name: SafeName
    factor: str = Field(min_length=1)  # the field it varies, as a sweep names it: lora.r
    values: list[StudyValue] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: list[StudyValue]) -> list[StudyValue]:
        labels = [v.label for v in values]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"value {twice[0]} is listed twice")
        if sum(v.baseline for v in values) > 1:
            raise ValueError("more than one value is the baseline's")
        return values


class StudyConfirmation(StudyRun):
    """The recommended values trained together, if the study has that run: experiment name ->
    value. The report treats it as the confirmation only when these are its recommendations."""

    values: dict[str, str | int | float | bool | list[str | int | float]] = Field(min_length=1)


class Study(Section):
    """A study of runs made elsewhere: the baseline, experiments, optional zero-shot."""

    name: SafeName = "study"
    model: str = ""  # what was fine-tuned, for the report's first lines
    data: str = ""  # what it was evaluated on
    fields: StudyFields = Field(default_factory=StudyFields)
    baseline: StudyBaseline
    zero_shot: StudyRun | None = None
    experiments: list[StudyExperiment] = Field(default_factory=list)
    confirmation: StudyConfirmation | None = None
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    reported: list[ReportedRow] = Field(default_factory=list)

    @field_validator("evaluation")
    @classmethod
    def _metrics_only(cls, value: EvaluationConfig) -> EvaluationConfig:
        unused = sorted(value.model_fields_set - set(EVALUATION_KEYS))
        if unused:
            raise ValueError(
                f"{unused[0]} does not apply: the prediction files decide the examples; "
                f"give only {', '.join(EVALUATION_KEYS)}"
            )
        return value

    @model_validator(mode="after")
    def _names(self) -> Study:
        names = [e.name for e in self.experiments]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"experiments: {twice[0]!r} is named twice")
        if self.confirmation is not None:
            unknown = sorted(set(self.confirmation.values) - set(names))
            if unknown:
                raise ValueError(f"confirmation.values: {unknown[0]!r} is no experiment's name")
        return self

    def files(self) -> dict[str, str]:
        """Field -> predictions path as written, for every file the study names."""
        files = {"baseline.predictions": self.baseline.predictions}
        if self.zero_shot is not None:
            files["zero_shot.predictions"] = self.zero_shot.predictions
        for i, experiment in enumerate(self.experiments):
            for j, value in enumerate(experiment.values):
                if value.predictions is not None:
                    files[f"experiments[{i}].values[{j}].predictions"] = value.predictions
        if self.confirmation is not None:
            files["confirmation.predictions"] = self.confirmation.predictions
        return files


def load_study(path: Path) -> Study:
    """Read and validate a study file; every problem in one ``ConfigError``, naming its field,
    and every file it names must exist (relative paths are the study file's)."""
    raw = read_yaml(path)
    try:
        study = Study.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(*[f"{path}: {p}" for p in format_errors(err, Study)]) from None
    missing = [
        f"{path}: {field}: no such file: {resolve(path, file)}"
        for field, file in study.files().items()
        if not resolve(path, file).is_file()
    ]
    if missing:
        raise ConfigError(*missing)
    return study


def resolve(study_file: Path, file: str) -> Path:
    """A path as the study writes it: relative to the study file's folder."""
    candidate = Path(file).expanduser()
    return candidate if candidate.is_absolute() else study_file.parent / candidate
