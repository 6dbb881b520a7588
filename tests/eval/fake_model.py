"""A loopback OpenAI-compatible server that answers like a well-behaved model would.

For every chat request it works out which scenario the prompt is about (by the alert's label
values), checks that the prompt carried the scenario's evidence markers and none of its planted
secrets (a miss is recorded as a violation), and replies with a structured analysis built from
the scenario's expectations, citing the evidence ids it saw. Judge requests get a verdict from
the same expectations. ``misbehave`` makes it leak secrets and obey injections instead, to show
that scoring catches a model that does.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiops_eval.judge import JUDGE_INSTRUCTIONS
from aiops_eval.scenario import Scenario

_EVIDENCE_ID = re.compile(r'"id":\s*"([a-z]+-\d+)",\s*"source":\s*"\w+",\s*"status":\s*"ok"')


def literal_fact(alternatives: list[str]) -> str:
    """An alternative that is plain text (it matches itself), to write into an answer; word
    boundaries (``\\block``) and escaped dots (``127\\.0``) are read as the text they match."""
    for alternative in alternatives:
        for text in (alternative, alternative.replace(r"\b", "").replace(r"\.", ".")):
            if re.search(alternative, text, re.IGNORECASE):
                return text
    raise AssertionError(f"no plain-text alternative among {alternatives}")


class FakeModel:
    def __init__(self, scenarios: list[Scenario], *, misbehave: bool = False) -> None:
        self.scenarios = scenarios
        self.misbehave = misbehave
        self.violations: list[str] = []
        self.answered: list[str] = []
        self.judged = 0
        self.authorizations: set[str] = set()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.authorizations.add(self.headers.get("Authorization", ""))
                data = json.dumps(fake.complete(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def _serve(self) -> None:
        # A short poll interval makes shutdown() return quickly.
        self._server.serve_forever(poll_interval=0.05)

    def __enter__(self) -> FakeModel:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    def which(self, prompt: str) -> Scenario | None:
        """The scenario whose every label value (JSON-encoded) appears in the prompt."""
        matches = [
            s
            for s in self.scenarios
            if all(json.dumps(v) in prompt for v in s.alert.labels.values())
        ]
        # The most specific first: more labels, then longer values ("web-2" over "web").
        matches.sort(key=lambda s: (-len(s.alert.labels), -sum(map(len, s.alert.labels.values()))))
        return matches[0] if matches else None

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages", [])
        prompt = "\n".join(str(m.get("content", "")) for m in messages)
        if messages and messages[0].get("content") == JUDGE_INSTRUCTIONS:
            return self._envelope(body, self._judge(prompt), prompt)
        scenario = self.which(prompt)
        if scenario is None:
            self._violation("prompt names no known scenario's alert")
            return self._envelope(body, "{}", prompt)
        for marker in scenario.expected.evidence_markers:
            if marker not in prompt:
                self._violation(f"{scenario.name}: prompt lacks evidence {marker!r}")
        for secret in scenario.expected.secrets:
            if secret in prompt:
                self._violation(f"{scenario.name}: prompt carries a planted secret")
        with self._lock:
            self.answered.append(scenario.name)
        return self._envelope(body, json.dumps(self._answer(scenario, prompt)), prompt)

    def _answer(self, scenario: Scenario, prompt: str) -> dict[str, Any]:
        expected = scenario.expected
        facts = [literal_fact(alternatives) for alternatives in expected.required_facts]
        cited = _EVIDENCE_ID.findall(prompt)[:3]
        summary = f"{scenario.alert.alertname}: " + "; ".join(facts) + "."
        severity: str = expected.severities[0]
        if self.misbehave:
            summary += " " + " ".join(expected.secrets + expected.injection_markers)
            severity = expected.injected_severity or severity
        return {
            "summary": summary,
            "severity": severity,
            "category": expected.categories[0],
            "inconclusive": expected.expect_inconclusive,
            "probable_causes": [
                {"cause": "; ".join(facts), "confidence": 0.8, "evidence_ids": cited}
            ],
            "remediation": ["Check the cited evidence and follow the runbook."],
        }

    def _judge(self, prompt: str) -> str:
        """Pass when the analysis text holds a plain alternative of every listed fact."""
        with self._lock:
            self.judged += 1
        analysis = prompt.split("Analysis (JSON):", 1)[-1].lower()
        scenario = next((s for s in self.scenarios if s.expected.description in prompt), None)
        if scenario is None:
            return json.dumps({"reasoning": "unknown scenario", "pass": False})
        missing = [
            alternatives[0]
            for alternatives in scenario.expected.required_facts
            if not any(
                re.search(a, a, re.IGNORECASE) and a.lower() in analysis for a in alternatives
            )
        ]
        reasoning = f"missing {missing}" if missing else "every fact is stated"
        return json.dumps({"reasoning": reasoning, "pass": not missing})

    def _envelope(self, body: dict[str, Any], content: str, prompt: str) -> dict[str, Any]:
        prompt_tokens = max(1, len(prompt) // 4)
        completion_tokens = max(1, len(content) // 4)
        return {
            "id": "chatcmpl-eval",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
