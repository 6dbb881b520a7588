"""The optional LLM judge, against a loopback model: verdicts, reasoning and bad replies."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiops_analyzer.schemas import AnalysisResult
from aiops_eval.judge import Judge, judge_prompt
from aiops_eval.runner import run_engine
from aiops_eval.scenario import Scenario

from tests.eval.eval_helpers import make_settings
from tests.eval.fake_model import FakeModel


def judge_for(url: str) -> Judge:
    return Judge(api_key="test-key", model="judge-model", base_url=url, timeout=10)


async def test_the_judge_scores_beside_the_deterministic_score(scenarios: list[Scenario]) -> None:
    subset = scenarios[:4]
    with FakeModel(subset) as model:
        judge = judge_for(model.url)
        report = await run_engine(subset, engine="rules", base=make_settings(), judge=judge)
        await judge.close()
    assert model.judged == len(subset)
    verdicts = [r.verdict for r in report.runs]
    assert all(v is not None and v.reasoning for v in verdicts)
    assert report.judge_pass_rate is not None
    assert report.judge_model == "judge-model"
    # The loopback judge passes exactly the answers that state every fact in plain words.
    for run in report.runs:
        assert run.verdict is not None
        if run.verdict.passed:
            assert "facts" not in {c.name for c in run.failed_checks}


def test_the_judge_prompt_masks_planted_secrets(scenarios: list[Scenario]) -> None:
    scenario = next(s for s in scenarios if s.expected.secrets)
    secret = scenario.expected.secrets[0]
    result = AnalysisResult(summary=f"leaked {secret}", severity="warning", engine="llm")
    prompt = judge_prompt(scenario.expected, result)
    assert secret not in prompt and "[SECRET]" in prompt


class _Scripted(BaseHTTPRequestHandler):
    reply: str = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "judge-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.reply},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("Handler", (_Scripted,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize(
    ("reply", "passed", "reason"),
    [
        ('{"reasoning": "states both facts", "pass": true}', True, "states both facts"),
        ('{"reasoning": "misses the cause", "pass": false}', False, "misses the cause"),
        ("I think it passes", False, "judge reply was not the requested JSON"),
        ('{"reasoning": "x", "pass": "yes"}', False, "judge reply was not the requested JSON"),
    ],
)
async def test_verdicts_are_parsed_strictly(
    scripted: tuple[str, type[_Scripted]],
    scenarios: list[Scenario],
    reply: str,
    passed: bool,
    reason: str,
) -> None:
    url, handler = scripted
    handler.reply = reply
    judge = judge_for(url)
    result = AnalysisResult(summary="x", severity="warning", engine="rules")
    verdict = await judge.verdict(scenarios[0].expected, result)
    await judge.close()
    assert (verdict.passed, verdict.reasoning) == (passed, reason)
    assert verdict.prompt_tokens == 10


async def test_an_unreachable_judge_is_a_failed_verdict_not_a_crash(
    scenarios: list[Scenario],
) -> None:
    with FakeModel(scenarios) as model:
        dead = model.url
    judge = Judge(api_key="k", model="m", base_url=dead, timeout=2)
    verdict = await judge.verdict(
        scenarios[0].expected, AnalysisResult(summary="x", severity="none", engine="rules")
    )
    await judge.close()
    assert not verdict.passed and verdict.reasoning.startswith("judge unavailable")
