"""API baselines against a real chat-completions server on 127.0.0.1 (tests/chat_server.py):
one request per example, none on a rerun, retries on 429 / 5xx / timeouts, failed rows that
say why, the key kept out of every file, and the row paired in the perspective table."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from lorasweep.baselines import client as client_module
from lorasweep.baselines.client import ApiError, ChatReply, retry_after, with_retries
from lorasweep.cli.main import main
from lorasweep.config.load import load_sweep
from lorasweep.metrics.health import generation_health
from tests.chat_server import KEY, ChatServer, answer_for
from tests.conftest import sweep_dict, write_yaml

ENV = "LORASWEEP_TEST_API_KEY"


@pytest.fixture(scope="module")
def server():
    with ChatServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch):
    monkeypatch.setattr(client_module, "BACKOFF_S", 0.01)


def _config(tmp_path, micro_model, dialogue_dir, server, **baseline) -> Path:
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["experiments"] = []
    entry = {"name": "chat", "model": "local-chat", "base_url": server.url, "api_key_env": ENV,
             "concurrency": 3, "max_attempts": 3, "timeout": 5, "max_tokens": 40,
             "price_per_million": {"input": 0.15, "output": 0.6}}  # fmt: skip
    raw["baselines"] = [{**entry, **baseline}]
    return write_yaml(tmp_path / "sweep.yaml", raw)


def _result(out: Path, name: str = "chat") -> dict:
    return json.loads((out / "baselines" / name / "result.json").read_text())


def test_one_request_per_example_then_none_and_the_rouge_its_answers_earn(
    server, micro_model, dialogue_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv(ENV, KEY)
    behaviour = server.reset()
    config = _config(tmp_path, micro_model, dialogue_dir, server)
    out = tmp_path / "out"
    assert main(["baselines", str(config), "--out", str(out)]) == 0
    predictions = [json.loads(line) for line in
                   (out / "baselines/chat/predictions.jsonl").read_text().splitlines()]  # fmt: skip
    assert len(behaviour.requests) == len(predictions) == 8  # evaluation.size
    # The sweep's prompt as the user message, greedy, capped, seeded.
    first = behaviour.requests[0]
    assert first["model"] == "local-chat" and first["temperature"] == 0
    assert first["max_tokens"] == 40 and first["seed"] == 42
    assert first["messages"][-1]["role"] == "user"
    assert first["messages"][-1]["content"].startswith("Summarize.\n")
    # Its ROUGE-L is what the server's answers earn against the references.
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    expected = (
        100
        * sum(
            scorer.score(p["reference"], answer_for(f"Summarize.\n{p['input']}"))["rougeL"].fmeasure
            for p in predictions
        )
        / len(predictions)
    )
    result = _result(out)
    assert result["status"] == "done"
    assert result["metrics"]["rougeL"] == pytest.approx(expected, abs=1e-6)
    assert result["requests"] == {"sent": 8, "cached": 0}
    tokens = result["usage"]
    assert tokens["prompt_tokens"] > 0 and tokens["completion_tokens"] > 0
    assert result["cost_usd"] == pytest.approx(
        (tokens["prompt_tokens"] * 0.15 + tokens["completion_tokens"] * 0.6) / 1e6
    )
    report = (out / "report" / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| chat |"))
    assert "API model" in row and f"{expected:.2f}" in row and "`local-chat`" in row
    assert "8 examples, no finished LoRA baseline yet: not paired" in row  # nothing trained

    # Second run: every answer from the cache, nothing sent, same numbers.
    assert main(["baselines", str(config), "--out", str(out)]) == 0
    assert len(behaviour.requests) == 8
    assert _result(out)["requests"] == {"sent": 0, "cached": 8}
    assert _result(out)["metrics"] == result["metrics"]
    # --refresh-baselines asks again.
    assert main(["baselines", str(config), "--out", str(out), "--refresh-baselines"]) == 0
    assert len(behaviour.requests) == 16
    assert all(h["Authorization"] == f"Bearer {KEY}" for h in behaviour.headers)
    next((out / "api_cache").rglob("*.json")).write_text('{"reply": {"te')  # cut short
    assert main(["baselines", str(config), "--out", str(out)]) == 0
    assert len(behaviour.requests) == 17  # a damaged answer is asked again, and only it
    assert main(["status", str(out)]) == 0
    printed = capsys.readouterr()
    assert f"chat  done      API baseline (local-chat)  ROUGE-L {expected:.2f}" in printed.out
    leaks = [str(p) for p in out.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert not leaks and KEY not in printed.out + printed.err

    # A damaged record: the report stops in one line; the next `baselines` writes it again.
    (out / "baselines/chat/result.json").write_text('{"name": "chat", "sta')
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "baselines/chat/result.json: damaged" in err[0]
    assert "rerun `lorasweep baselines`" in err[0]
    assert main(["baselines", str(config), "--out", str(out)]) == 0
    assert len(behaviour.requests) == 17 and _result(out)["status"] == "done"


def test_a_429_is_retried_after_its_retry_after(
    server, micro_model, dialogue_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv(ENV, KEY)
    behaviour = server.reset(rate_limit_first=1, retry_after="1")
    config = _config(tmp_path, micro_model, dialogue_dir, server, concurrency=1)
    out = tmp_path / "out"
    assert main(["baselines", str(config), "--out", str(out)]) == 0
    assert len(behaviour.requests) == 9  # 8 examples, the first asked twice
    first, second = behaviour.requests[0], behaviour.requests[1]
    assert first["messages"] == second["messages"]
    assert second["_at"] - first["_at"] >= 0.95  # Retry-After: 1 honoured, not the 10 ms backoff
    assert _result(out)["status"] == "done"


def test_a_500_fails_the_row_the_sweep_goes_on_and_a_rerun_resumes(
    server, micro_model, dialogue_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv(ENV, KEY)
    config = _config(tmp_path, micro_model, dialogue_dir, server, concurrency=1)
    out = tmp_path / "out"
    server.reset(fail_500=True)
    assert main(["baselines", str(config), "--out", str(out)]) == 1
    result = _result(out)
    assert result["status"] == "failed"
    assert "HTTP 500" in result["error"] and "after 3 attempts" in result["error"]
    assert not (out / "baselines/chat/predictions.jsonl").exists()
    report = (out / "report" / "report.md").read_text()
    assert "failed: 8 of 8 requests failed; first: HTTP 500" in report
    # Half the answers come in, then the server fails again: the rerun sends only the rest.
    behaviour = server.reset()
    cache = sorted((out / "api_cache").rglob("*.json")) if (out / "api_cache").exists() else []
    assert not cache  # failures are not cached
    assert main(["baselines", str(config), "--out", str(out)]) == 0
    assert len(behaviour.requests) == 8
    for path in sorted((out / "api_cache").rglob("*.json"))[:3]:
        path.unlink()  # as if the process had been killed before these three
    behaviour = server.reset()
    assert main(["baselines", str(config), "--out", str(out)]) == 0
    assert len(behaviour.requests) == 3
    assert _result(out)["requests"] == {"sent": 3, "cached": 5}


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_a_run_killed_midway_resumes_with_the_requests_it_had_not_finished(
    server, micro_model, dialogue_dir, tmp_path, monkeypatch, stop
):
    monkeypatch.setenv(ENV, KEY)
    behaviour = server.reset(slow_s=0.3, slow_count=100)
    config = _config(tmp_path, micro_model, dialogue_dir, server, concurrency=1)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "lorasweep.cli.main", "baselines", str(config)]
    process = subprocess.Popen([*command, "--out", str(out)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(behaviour.requests) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(stop)
    assert process.wait() == (130 if stop == signal.SIGINT else -signal.SIGKILL)
    sent = len(behaviour.requests)
    time.sleep(0.5)
    assert len(behaviour.requests) == sent  # Ctrl-C: nothing more is sent once it has exited
    cached = list((out / "api_cache").rglob("*.json"))
    assert 2 <= len(cached) < 8
    assert all(json.loads(p.read_text())["reply"]["text"] for p in cached)  # whole files only
    assert not (out / "baselines" / "chat" / "result.json").exists()
    behaviour = server.reset()
    assert main(["baselines", str(config), "--out", str(out)]) == 0
    assert len(behaviour.requests) == 8 - len(cached)
    assert _result(out)["requests"] == {"sent": 8 - len(cached), "cached": len(cached)}


def test_malformed_json_is_retried_then_a_failed_row(
    server, micro_model, dialogue_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv(ENV, KEY)
    behaviour = server.reset(malformed=True)
    config = _config(tmp_path, micro_model, dialogue_dir, server, concurrency=1, max_attempts=2)
    out = tmp_path / "out"
    assert main(["baselines", str(config), "--out", str(out)]) == 1
    assert "malformed reply (not JSON)" in _result(out)["error"]
    assert len(behaviour.requests) == 16  # two attempts per example


def test_a_slow_answer_times_out_and_is_asked_again(
    server, micro_model, dialogue_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv(ENV, KEY)
    behaviour = server.reset(slow_s=1.5, slow_count=1)
    config = _config(tmp_path, micro_model, dialogue_dir, server, concurrency=1, timeout=0.4)
    out = tmp_path / "out"
    assert main(["baselines", str(config), "--out", str(out)]) == 0
    assert len(behaviour.requests) == 9  # the slow one asked again
    assert _result(out)["status"] == "done"
    # Always slow: a failed row naming the timeout.
    behaviour = server.reset(slow_s=1.0, slow_count=100)
    config = _config(tmp_path, micro_model, dialogue_dir, server, concurrency=4, timeout=0.2,
                     max_attempts=2, model="other-model")  # fmt: skip
    assert main(["baselines", str(config), "--out", str(out)]) == 1
    assert "no reply within 0.2s (timeout) (after 2 attempts)" in _result(out)["error"]


def test_concurrency_requests_are_in_flight_at_once(
    server, micro_model, dialogue_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv(ENV, KEY)
    behaviour = server.reset(slow_s=0.3, slow_count=100)
    config = _config(tmp_path, micro_model, dialogue_dir, server, concurrency=4)
    assert main(["baselines", str(config), "--out", str(tmp_path / "out")]) == 0
    assert len(behaviour.requests) == 8 and behaviour.most_in_flight == 4


def test_a_wrong_key_is_a_failed_row_with_a_clear_message_and_no_retries(
    server, micro_model, dialogue_dir, tmp_path, monkeypatch, capsys
):
    wrong = "sk-WRONGplantedKEY987"
    monkeypatch.setenv(ENV, wrong)
    behaviour = server.reset()
    config = _config(tmp_path, micro_model, dialogue_dir, server, concurrency=1)
    out = tmp_path / "out"
    assert main(["baselines", str(config), "--out", str(out)]) == 1
    error = _result(out)["error"]
    assert "HTTP 401" in error and "(check the key)" in error
    assert error.startswith("1 of 8 requests failed") and error.endswith("; 7 not sent after it")
    assert len(behaviour.requests) == 1  # a 401 is not retried, and stops the rest
    assert _result(out)["requests"] == {"sent": 1, "cached": 0}
    printed = capsys.readouterr()
    leaks = [str(p) for p in out.rglob("*") if p.is_file() and wrong.encode() in p.read_bytes()]
    assert not leaks and wrong not in printed.out + printed.err  # the server echoed it: removed


def test_a_missing_key_is_one_line_before_training_unless_the_cache_answers(
    server, micro_model, dialogue_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv(ENV, raising=False)
    config = _config(tmp_path, micro_model, dialogue_dir, server)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"lorasweep: error: baselines[0].api_key_env: ${ENV} is not set; baseline 'chat' needs "
        "it for 8 of 8 requests not in the cache (export it, or remove the baseline)"
    ]
    assert not (out / "adapters").exists() and not (out / "plan.json").exists()
    # Answered once with the key, the cache answers every request: no key needed.
    monkeypatch.setenv(ENV, KEY)
    behaviour = server.reset()
    assert main(["baselines", str(config), "--out", str(out)]) == 0
    monkeypatch.delenv(ENV)
    assert main(["baselines", str(config), "--out", str(out)]) == 0
    assert len(behaviour.requests) == 8
    assert main(["baselines", str(config), "--out", str(out), "--refresh-baselines"]) == 2


def test_the_row_is_paired_with_the_lora_baseline_and_truncation_counts_in_health(
    server, micro_model, dialogue_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv(ENV, KEY)
    behaviour = server.reset(finish_reason="length")
    config = _config(tmp_path, micro_model, dialogue_dir, server, few_shot=2)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 0
    assert len(behaviour.requests) == 8
    messages = behaviour.requests[0]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    from lorasweep.report.tables import build_tables
    from lorasweep.store.store import open_sweep

    tables = build_tables(open_sweep(out))
    row = next(r for r in tables.perspective if r.name == "chat")
    assert row.kind == "api" and row.vs_baseline is not None  # a paired interval and verdict
    assert row.vs_baseline.low <= row.vs_baseline.delta <= row.vs_baseline.high
    assert "paired by id on the sweep's 8 examples" in row.note
    health = next(h for h in tables.health if h.name.startswith("chat"))
    assert health.health.hit_limit == 8 and any("max_new_tokens" in f for f in health.health.flags)
    assert main(["run", str(config), "--out", str(out)]) == 0  # all done, all cached
    assert len(behaviour.requests) == 8


def test_a_server_without_keys_behind_a_proxy_setting_and_a_wrong_base_url(
    server, micro_model, dialogue_dir, tmp_path, monkeypatch
):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens: never used here
    behaviour = server.reset(key=None)
    config = _config(tmp_path, micro_model, dialogue_dir, server, api_key_env=None)
    out = tmp_path / "out"
    assert main(["baselines", str(config), "--out", str(out)]) == 0
    assert len(behaviour.requests) == 8
    assert not any("Authorization" in h for h in behaviour.headers)
    root = server.url.removesuffix("/v1")
    config = _config(tmp_path, micro_model, dialogue_dir, server, api_key_env=None, base_url=root)
    assert main(["baselines", str(config), "--out", str(out)]) == 1
    error = _result(out)["error"]
    assert "HTTP 404" in error and "is base_url the API root" in error


def test_retries_back_off_exponentially_and_honour_retry_after():
    waits: list[float] = []
    calls = iter([ApiError("429", True), ApiError("503", True, retry_after=2.5), "ok"])

    def call():
        step = next(calls)
        if isinstance(step, ApiError):
            raise step
        return ChatReply(step, "stop", 1, 1)

    reply, attempts = with_retries(call, 5, sleep=waits.append, jitter=lambda: 1.0)
    assert reply.text == "ok" and attempts == 3
    assert waits == [client_module.BACKOFF_S, 2.5]
    with pytest.raises(ApiError, match="after 2 attempts"):
        with_retries(lambda: (_ for _ in ()).throw(ApiError("500", True)), 2, sleep=waits.append)
    with pytest.raises(ApiError, match="^401$"):
        with_retries(lambda: (_ for _ in ()).throw(ApiError("401", False)), 5, sleep=waits.append)
    assert retry_after("7") == 7 and retry_after(None) is None and retry_after("soon") is None
    assert 0 <= retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0  # a past date: now


def test_finish_reason_length_counts_as_hitting_the_cap():
    rows = [{"prediction": "a b", "reference": "a b", "finish_reason": reason}
            for reason in ("length", "stop", "stop")]  # fmt: skip
    assert generation_health(rows).hit_limit == 1


def test_baseline_config_errors_name_the_field(micro_model, dialogue_dir, tmp_path, capsys):
    raw = sweep_dict(micro_model, dialogue_dir)
    raw["baselines"] = [
        {"name": "a", "model": "m", "api_key_env": "sk-pastedTHEkeyITSELF", "base_url": "x"},
        {"name": "a", "model": "m", "concurency": 2},
    ]
    config = write_yaml(tmp_path / "sweep.yaml", raw)
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "baselines[0].api_key_env: name the environment variable" in err
    assert "sk-pastedTHEkeyITSELF" not in err
    assert "baselines[0].base_url: must start with http:// or https://" in err
    assert "baselines[1].concurency: unknown key; did you mean 'concurrency'?" in err
    raw["baselines"] = [{"name": "a", "model": "m"}, {"name": "a", "model": "n"}]
    with pytest.raises(Exception, match="baselines: name 'a' is used twice"):
        load_sweep(write_yaml(tmp_path / "sweep.yaml", raw))
