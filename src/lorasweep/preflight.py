"""Checks of a sweep against its data, made before the model loads or anything is written.

``lorasweep run`` makes them before its first run, ``run --dry-run`` makes them instead of
running: a mistake found here costs seconds, not a training run.
"""

from __future__ import annotations

from rich.console import Console

from lorasweep.config.schema import SweepConfig
from lorasweep.data.prompts import check_template
from lorasweep.data.sources import is_hub_source, load_eval, load_train


def check_data(sweep: SweepConfig, console: Console, dry_run: bool) -> None:
    """Read every split the sweep uses and fill the prompt template once with a real example.

    A dry run does not download a hub dataset (the run does, and checks it then).

    Raises:
        UserError: A split cannot be read or used, or the template cannot be filled.
    """
    data = sweep.data
    if dry_run and is_hub_source(data.source):
        console.print(
            f"Data {data.source!r} is on the hub: a dry run does not download it; the data and "
            "the prompt are checked against it when the run starts."
        )
        return
    load_train(data)
    examples = load_eval(data, sweep.evaluation)
    if sweep.test is not None:
        load_eval(data, sweep.test, field="test")
    check_template(sweep.prompt, data.input_column, examples[0])
    if dry_run:
        console.print(
            f"Data read; the prompt filled with a {sweep.evaluation.split!r} example: "
            f"{examples[0].key!r}."
        )
