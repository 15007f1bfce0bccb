"""Read a sweep YAML file into a validated ``SweepConfig``, reporting every problem at once."""

from __future__ import annotations

import copy
import difflib
import os
import re
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from lorasweep.config.schema import BaselineConfig, Section, SweepConfig
from lorasweep.config.search import check_space_values
from lorasweep.errors import ConfigError

# Pydantic names the branch of a union in an error's location ("constrained-int", "literal['all']",
# "function-after[...]" for a branch with validators).
# "[key]" marks a mapping's key (``search.space``): the key itself names the place.
_UNION_BRANCH = re.compile(
    r"^(int|float|str|bool|constrained-\w+|literal\[.*\]|list\[.*\]|function-\w+\[.*\]|\[key\])$"
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
    problems += check_space_values(raw)
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


# Fields whose wrong value may be a secret pasted in the wrong place: never printed back.
NOT_ECHOED = frozenset({"api_key_env"})


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
            lines.append(_format_one(specific[0], root=model))
        else:
            expected = " or ".join(_message(e).removeprefix("must be ") for e in specific)
            lines.append(_format_one({**specific[0], "msg": f"must be {expected}"}))
    return lines


def _format_one(error: dict, prefix: str = "", root: type[BaseModel] | None = None) -> str:
    where = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
    where = where.lstrip(".")
    if not where or _message(error).startswith(f"{where}."):
        return _message(error)  # a rule across fields: its message names the fields itself
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key{_suggestion(error['loc'], root)}"
    got = error.get("input")
    secret = bool(error["loc"]) and error["loc"][-1] in NOT_ECHOED
    shown = "" if isinstance(got, dict) or secret else f" (got {_short(got)})"
    return f"{where}: {_message(error)}{shown}"


def _message(error: dict) -> str:
    msg = error["msg"].removeprefix("Value error, ")
    msg = msg.replace("Input should be", "must be").replace("Field required", "is required")
    return msg


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggestion(loc: tuple, root: type[BaseModel] | None) -> str:
    """A did-you-mean for an unknown key, from keys valid somewhere, most likely first: the
    same key in another section (``training`` at the top level is ``baseline.training``), a
    close key of this section (``lerning_rate``, ``lr``), a close key of another section."""
    if root is None:
        return ""
    key, place = str(loc[-1]), ".".join(str(p) for p in loc[:-1] if isinstance(p, str))
    here = _section_at(root, loc[:-1])
    names = sorted(here.model_fields) if here else []
    elsewhere = [
        (f"{where}.{name}".lstrip("."), name)
        for where, section in _sections(root)
        if section is not here
        for name in section.model_fields
    ]
    # The nearest place first: baseline.lora.seed suggests baseline.training.seed first.
    # Whole sections, not characters: baselines[] is no nearer to baseline.lora than evaluation.
    parts = place.split(".")
    elsewhere.sort(key=lambda item: -len(os.path.commonprefix([item[0].split("."), parts])))
    if key in {name for _, name in elsewhere}:
        return _did_you_mean([dotted for dotted, name in elsewhere if name == key])
    close = difflib.get_close_matches(key, names, n=1) or [
        name for name in names if len(key) > 1 and key == "".join(w[0] for w in name.split("_"))
    ]  # initials: lr -> learning_rate
    if close:
        return f"; did you mean {close[0]!r}?"
    match = difflib.get_close_matches(key, [name for _, name in elsewhere], n=1, cutoff=0.8)
    return _did_you_mean([dotted for dotted, name in elsewhere if match and name == match[0]])


def _did_you_mean(places: list[str]) -> str:
    return f"; did you mean {' or '.join(places[:2])}?" if places else ""


def _section_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The config class of the mapping at ``loc`` (list indexes step into the list's items)."""
    current = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        sections = _sections_in(field.annotation) if field else []
        if not sections:
            return None
        current = sections[0]
    return current


def _sections(root: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    """Every config class in the tree, with its place: ``baseline.lora``, ``experiments[]``."""
    found, pending = [], [("", root)]
    while pending:
        place, section = pending.pop(0)
        found.append((place, section))
        for name, field in section.model_fields.items():
            many = get_origin(field.annotation) is list
            for child in _sections_in(field.annotation):
                pending.append((f"{place}.{name}{'[]' if many else ''}".lstrip("."), child))
    return found


def _sections_in(annotation: Any) -> list[type[BaseModel]]:
    """Config classes an annotation holds: ``LoraConfig``, ``X | None``, ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [s for arg in get_args(annotation) for s in _sections_in(arg)]
