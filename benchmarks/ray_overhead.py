"""Per-run scheduling overhead of the Ray executor against the local executor, in seconds.

The same sweep (a micro Llama built here, synthetic dialogues, ``--runs`` training runs plus the
zero-shot evaluation) runs twice into fresh folders: with the local executor, and with the Ray
executor on a local Ray instance started for the purpose, one task at a time (``cpus_per_run``
equal to this machine's torch threads), so that both sides do the same arithmetic. Both sides
must give the same metrics. The overhead per unit is (Ray wall time - local wall time) / units:
what a unit costs in task start, worker process start (torch import, model and data loading in
the worker), shipping files back and writing them. Ray's own start-up is reported apart.

Usage::

    python benchmarks/ray_overhead.py [--runs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local instance, this script only

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])

import torch  # noqa: E402
from rich.console import Console  # noqa: E402

from lorasweep.builtin.corpus import generate_dialogues  # noqa: E402
from lorasweep.builtin.tiny_model import TinyRecipe, build_tiny_model  # noqa: E402
from lorasweep.config.load import validate_sweep  # noqa: E402
from lorasweep.config.plan import build_plan  # noqa: E402
from lorasweep.executors.base import build_executor  # noqa: E402
from lorasweep.executors.driver import run_sweep  # noqa: E402
from lorasweep.store.store import RunStore  # noqa: E402


def sweep_config(model: Path, data: Path, runs: int, executor: str) -> dict:
    threads = torch.get_num_threads()
    return {
        "name": "overhead",
        "model": {"name": str(model)},
        "data": {"source": str(data)},
        "prompt": {"instruction": "Summarize.", "template": "{instruction}\n{input}\nSummary:"},
        "baseline": {
            "lora": {"r": 4, "alpha": "2r", "dropout": 0.0},
            "training": {
                "learning_rate": 5e-3,
                "max_steps": 6,
                "batch_size": 4,
                "max_length": 192,
                "seed": 0,
            },
        },  # fmt: skip
        "evaluation": {"size": 8},
        "generation": {"max_new_tokens": 12, "batch_size": 4},
        "confirmation": False,
        "experiments": [
            {"name": "rank", "factor": "lora.r", "values": [4, *range(8, 8 * runs, 8)]}
        ],
        "execution": {"executor": executor, "gpus_per_run": 0, "cpus_per_run": threads},
    }


def timed_sweep(model: Path, data: Path, out: Path, runs: int, executor: str):
    sweep = validate_sweep(sweep_config(model, data, runs, executor))
    plan = build_plan(sweep)
    started = time.perf_counter()
    outcome = run_sweep(plan, RunStore(out), Console(quiet=True),
                        build_executor(executor, sweep.execution))  # fmt: skip
    seconds = time.perf_counter() - started
    assert not outcome.failed, outcome.failed
    metrics = {
        p.parent.name: json.loads(p.read_text())["metrics"] for p in out.glob("runs/*/result.json")
    }
    return seconds, len(outcome.done), metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4, help="training runs in the sweep")
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["LORASWEEP_CACHE"] = str(tmp / "cache")
        model, data = tmp / "model", tmp / "data"
        build_tiny_model(TinyRecipe.micro(), model, log=lambda line: None)
        data.mkdir()
        for name, n, seed in (("train", 60, 11), ("validation", 12, 12)):
            rows = generate_dialogues(n, seed)
            (data / f"{name}.jsonl").write_text("".join(
                json.dumps({k: r[k] for k in ("id", "dialogue", "summary")}) + "\n" for r in rows
            ))  # fmt: skip
        local_s, units, local = timed_sweep(model, data, tmp / "local", args.runs, "local")
        started = time.perf_counter()
        ray.init(address="local", num_cpus=torch.get_num_threads(), include_dashboard=False,
                 log_to_driver=False)  # fmt: skip
        ray_start_s = time.perf_counter() - started
        try:
            ray_s, ray_units, remote = timed_sweep(model, data, tmp / "ray", args.runs, "ray")
        finally:
            ray.shutdown()
    same = local == remote
    print(f"units: {units} ({args.runs} training runs + zero-shot), one at a time on each side")
    print(f"local executor: {local_s:.1f} s; Ray executor: {ray_s:.1f} s "
          f"(+ {ray_start_s:.1f} s to start the local Ray instance)")  # fmt: skip
    print(f"overhead per unit: {(ray_s - local_s) / units:.2f} s")
    print(f"metrics identical: {same}")
    return 0 if same and ray_units == units else 1


if __name__ == "__main__":
    sys.exit(main())
