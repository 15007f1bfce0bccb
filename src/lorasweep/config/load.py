"""Read a sweep YAML file into a validated ``SweepConfig``, reporting every problem at once."""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from lorasweep.config.schema import BaselineConfig, Section, SweepConfig
from lorasweep.errors import ConfigError

# Pydantic names the branch of a union in an error's location ("constrained-int", "literal['all']",
# "function-after[...]" for a branch with validators).
_UNION_BRANCH = re.compile(
    r"^(int|float|str|bool|constrained-\w+|literal\[.*\]|list\[.*\]|function-\w+\[.*\])$"
)
_TYPE_MISMATCH = ("_type", "literal_error")

# What a sweep config never needs; each bound stops a document that would hang or crash the
# loader. A real config is a few KB, a few hundred values and integers of a few digits.
MAX_BYTES = 1 << 20
MAX_VALUES = 100_000  # values with aliases expanded
MAX_DIGITS = 100  # an integer literal's length (Python refuses to read more than 4,300)


def load_sweep(path: str | Path) -> SweepConfig:
    """Load and validate a sweep config file.

    Args:
        path: The YAML file.

    Returns:
        The validated config; every experiment value has been checked against the baseline too.

    Raises:
        ConfigError: With one line per problem, each naming the file, the field and the value.
    """
    path = Path(path)
    raw = read_yaml(path)
    return validate_sweep(raw, source=str(path))


def read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping, or a ``ConfigError`` saying why it cannot be one."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes; a sweep config is at most {MAX_BYTES:,}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
    try:
        raw = yaml.load(text, Loader=_SweepLoader)  # safe: a config never constructs objects
    except _Refused as err:
        raise ConfigError(f"{path}: {err}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{line}: {problem}") from None
    if raw is None:
        raise ConfigError(f"{path}: the file is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return raw


class _Refused(Exception):
    """A document that is valid YAML but no sweep config: ``field: problem (line N)``."""


class _SweepLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing what a config never needs before anything is built.

    Aliases are shared, not copied, while loading, but validation and error messages walk them
    in full: a few lines of nested aliases ("billion laughs") would hang and take gigabytes.
    """

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        _check_node(node, "", {}, set())
        return node


_MERGE = "tag:yaml.org,2002:merge"  # ``<<: *defaults`` overrides on purpose: not a duplicate
_INT = "tag:yaml.org,2002:int"


def _check_node(node: yaml.Node, where: str, sizes: dict[int, int], open_: set[int]) -> int:
    """The number of values ``node`` holds with its aliases expanded (each node counted once
    however often it is shared, so the walk itself stays linear in the file)."""
    if id(node) in sizes:
        return sizes[id(node)]
    line = node.start_mark.line + 1
    name = where or "the document"
    if id(node) in open_:
        raise _Refused(f"{name}: an alias refers to a value that contains it (line {line})")
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _INT and len(node.value) > MAX_DIGITS:
            raise _Refused(
                f"{name}: an integer of {len(node.value):,} digits (line {line}); "
                f"at most {MAX_DIGITS}"
            )
        sizes[id(node)] = 1
        return 1
    open_.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        children = [(f"{where}[{i}]", child) for i, child in enumerate(node.value)]
    else:
        children = _mapping_children(node, where)
    size = 1
    for child_where, child in children:
        size += _check_node(child, child_where, sizes, open_)
        if size > MAX_VALUES:
            raise _Refused(f"{name}: aliases expand to more than {MAX_VALUES:,} values")
    open_.discard(id(node))
    sizes[id(node)] = size
    return size


def _mapping_children(node: yaml.MappingNode, where: str) -> list[tuple[str, yaml.Node]]:
    """A mapping's keys and values with their dotted names; a key given twice is refused."""
    children, first_line = [], {}
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE:
            name = f"{where}.{key.value}".lstrip(".")
            line = key.start_mark.line + 1
            if (key.tag, key.value) in first_line:
                first = first_line[(key.tag, key.value)]
                raise _Refused(f"{name}: given twice (lines {first} and {line})")
            first_line[(key.tag, key.value)] = line
        else:
            name = f"{where}.<key>".lstrip(".")
        children += [(name, key), (name, value)]
    return children


def validate_sweep(raw: dict[str, Any], source: str = "config") -> SweepConfig:
    """Validate a raw mapping; see ``load_sweep``."""
    problems: list[str] = []
    config = None
    try:
        config = SweepConfig.model_validate(raw)
    except ValidationError as err:
        problems += format_errors(err, SweepConfig)
    problems += _check_experiment_values(raw)
    if problems:
        raise ConfigError(*[f"{source}: {p}" for p in dict.fromkeys(problems)])
    assert config is not None
    return config


def apply_factor(baseline: dict[str, Any], factor: str, value: Any) -> dict[str, Any]:
    """A copy of the raw baseline mapping with one dotted factor (``lora.r``) set to ``value``."""
    section, key = factor.split(".", 1)
    merged = copy.deepcopy(baseline)
    if not isinstance(merged.get(section), dict):
        merged[section] = {}
    merged[section][key] = value
    return merged


def _check_experiment_values(raw: dict[str, Any]) -> list[str]:
    """Each experiment value, applied to the baseline, must give a valid configuration."""
    baseline, experiments = raw.get("baseline"), raw.get("experiments")
    if not isinstance(baseline, dict) or not isinstance(experiments, list):
        return []
    problems = []
    for i, experiment in enumerate(experiments):
        if not isinstance(experiment, dict) or not isinstance(experiment.get("values"), list):
            continue
        factor = experiment.get("factor")
        section, _, key = factor.partition(".") if isinstance(factor, str) else ("", "", "")
        if (
            key
            not in getattr(
                BaselineConfig.model_fields.get(section), "annotation", Section
            ).model_fields
        ):
            continue  # an unknown factor is reported once, by the schema
        for j, value in enumerate(experiment["values"]):
            try:
                BaselineConfig.model_validate(apply_factor(baseline, factor, value))
            except ValidationError as err:
                for error in err.errors():
                    # Errors elsewhere in the baseline are reported once, against the baseline.
                    if ".".join(str(p) for p in error["loc"][:2]) == factor:
                        value_error = {**error, "loc": error["loc"][2:]}
                        line = _format_one(value_error, prefix=f"experiments[{i}].values[{j}]")
                        problems.append(line.replace(": ", f" ({factor}): ", 1))
    return problems


def format_errors(err: ValidationError, model: type[BaseModel]) -> list[str]:
    """One readable line per invalid field: ``baseline.lora.r: must be greater than 0 (got 0)``."""
    grouped: dict[tuple, list[dict]] = {}
    for error in err.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and _UNION_BRANCH.match(p)))
        grouped.setdefault(loc, []).append({**error, "loc": loc})
    lines = []
    for errors in grouped.values():
        # For a union (``r: int | 'all'``) keep the branch that matched the value's type.
        specific = [e for e in errors if not e["type"].endswith(_TYPE_MISMATCH)] or errors
        if len(specific) == 1:
            lines.append(_format_one(specific[0], known=_field_names(model)))
        else:
            expected = " or ".join(_message(e).removeprefix("must be ") for e in specific)
            lines.append(_format_one({**specific[0], "msg": f"must be {expected}"}))
    return lines


def _format_one(error: dict, prefix: str = "", known: set[str] | None = None) -> str:
    where = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
    where = where.lstrip(".")
    if not where:  # a rule across sections: its message names the fields itself
        return _message(error)
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1])
        hint = difflib.get_close_matches(key, sorted(known or ()), n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"{where}: unknown key{suggestion}"
    got = error.get("input")
    shown = "" if isinstance(got, dict) else f" (got {_short(got)})"
    return f"{where}: {_message(error)}{shown}"


def _message(error: dict) -> str:
    msg = error["msg"].removeprefix("Value error, ")
    msg = msg.replace("Input should be", "must be").replace("Field required", "is required")
    return msg


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _field_names(model: type[BaseModel]) -> set[str]:
    """Every field name in the config tree, for did-you-mean hints on unknown keys."""
    names: set[str] = set()
    pending: list[type[BaseModel]] = [model]
    while pending:
        current = pending.pop()
        for name, field in current.model_fields.items():
            names.add(name)
            annotation = field.annotation
            candidates = getattr(annotation, "__args__", ()) + (annotation,)
            pending += [a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)]
    return names
