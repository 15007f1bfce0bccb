"""Secrets never leak into the store, logs, reports or trackers' files; names never escape."""

from __future__ import annotations

import pytest

from lorasweep.cli.main import main
from tests.chat_server import ChatServer
from tests.conftest import sweep_dict, write_yaml

SECRETS = {
    "HF_TOKEN": "hf_PLANTEDfakeTOKEN1234567890abcdef",
    "HUGGING_FACE_HUB_TOKEN": "hf_PLANTEDsecondTOKEN0987654321",
    "WANDB_API_KEY": "PLANTEDwandbKEY0123456789abcdef0123456789",
    "OPENAI_API_KEY": "sk-PLANTEDopenaiKEY0123456789",
    "MLFLOW_TRACKING_PASSWORD": "PLANTEDmlflowPASSWORD",
}


def test_planted_keys_appear_in_no_output(micro_model, dialogue_dir, tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WANDB_SILENT", "true")
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["experiments"] = [{"name": "rank", "factor": "lora.r", "values": [2, 4]}]
    raw["tracking"] = {"wandb": {"project": "secrets", "mode": "offline"}, "mlflow": {}}
    out = tmp_path / "out"
    with ChatServer() as server:  # an API baseline sends OPENAI_API_KEY: only in its header
        server.reset(key=SECRETS["OPENAI_API_KEY"])
        raw["baselines"] = [{"name": "api", "model": "m", "base_url": server.url}]
        config = write_yaml(tmp_path / "sweep.yaml", raw)
        assert main(["run", str(config), "--out", str(out)]) == 0
        assert len(server.behaviour.requests) == 8
    assert (out / "baselines" / "api" / "predictions.jsonl").is_file()
    assert main(["export", str(out), "--format", "json"]) == 0
    printed = capsys.readouterr()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 20  # store, report, W&B offline files, MLflow database and artifacts
    for value in SECRETS.values():
        needle = value.encode()
        leaks = [str(p) for p in files if needle in p.read_bytes()]
        assert not leaks, f"a planted secret was written to {leaks}"
        assert value not in printed.out and value not in printed.err


@pytest.mark.parametrize("field", ["name", "experiment"])
def test_names_that_would_escape_the_sweep_folder_are_rejected(
    micro_model, dialogue_dir, tmp_path, capsys, field
):
    raw = sweep_dict(micro_model, dialogue_dir)
    if field == "name":
        raw["name"] = "../escape"
    else:
        raw["experiments"][0]["name"] = "../../escape"
    config = write_yaml(tmp_path / "sweep.yaml", raw)
    assert main(["run", str(config)]) == 2
    assert "use letters, digits and _ . + - only" in capsys.readouterr().err
    assert not (tmp_path.parent / "escape").exists()
