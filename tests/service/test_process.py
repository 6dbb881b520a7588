"""The analyzer as a real process (uvicorn): serving, start-up errors, logs, and a SIGKILL
with jobs pending followed by a restart that analyses every job once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from aiops_analyzer.store import JobState, Store

from tests.service.apptools import (
    AUTH,
    TOKEN,
    WEBHOOK,
    AnalyzerProcess,
    analyzer_env,
    analyzer_process,
    free_port,
    payload,
    sample,
)
from tests.service.loopback import LoopbackServer, Recorded, Reply
from tests.service.test_engine_llm import GOOD, completion


def wait_all_finished(url: str, ids: list[int], within: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        analyses = [httpx.get(f"{url}/analyses/{i}", headers=AUTH).json() for i in ids]
        if all(a["job"]["state"] in {"done", "failed"} for a in analyses):
            return analyses
        if time.monotonic() > deadline:
            raise AssertionError(f"not finished: {[a['job'] for a in analyses]}")
        time.sleep(0.1)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_serves_the_webhook_over_real_http(tmp_path: Path) -> None:
    with analyzer_process(tmp_path) as analyzer:
        response = httpx.post(
            analyzer.url + WEBHOOK, json=sample("01-nginx-down-firing.json"), headers=AUTH
        )
        assert response.status_code == 202
        [analysis] = wait_all_finished(analyzer.url, response.json()["analysis_ids"])
        assert analysis["result"]["engine"] == "rules"
        assert httpx.post(analyzer.url + WEBHOOK, json=payload()).status_code == 401
        assert httpx.get(analyzer.url + "/healthz").json() == {"status": "ok"}
        assert "aiops_webhook_requests_total" in httpx.get(analyzer.url + "/metrics").text
        process = analyzer.proc
    # SIGTERM: uvicorn shuts down cleanly, then re-raises the signal as its exit status.
    assert process is not None and process.returncode in {0, -15}
    log = analyzer.log()
    assert "Application shutdown complete" in log
    records = json_lines(log)  # Every line is one JSON event.
    events = {record.get("event") for record in records}
    assert {"starting", "delivery_stored", "job_done"} <= events
    assert TOKEN not in log


def test_missing_token_stops_serve_with_one_line(tmp_path: Path) -> None:
    env = analyzer_env(tmp_path, free_port())
    del env["AIOPS_WEBHOOK_TOKEN"]
    result = subprocess.run(
        [sys.executable, "-m", "aiops_analyzer.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "AIOPS_WEBHOOK_TOKEN" in line and "Traceback" not in result.stderr


def test_auth_disabled_warns_in_one_log_line(tmp_path: Path) -> None:
    with analyzer_process(tmp_path, AIOPS_AUTH_DISABLED="true") as analyzer:
        assert httpx.post(analyzer.url + WEBHOOK, json=payload()).status_code == 202
    warnings = [r for r in json_lines(analyzer.log()) if r.get("event") == "auth_disabled"]
    assert len(warnings) == 1 and warnings[0]["level"] == "WARNING"
    assert "AIOPS_AUTH_DISABLED" in warnings[0]["message"]


def test_secrets_never_reach_the_log(tmp_path: Path) -> None:
    slack = "https://hooks.slack.com/services/T000/B000/XXXXsecretpathXXXX"
    with (
        LoopbackServer(lambda _: Reply(500, "nope")) as webhook_receiver,
        analyzer_process(
            tmp_path,
            AIOPS_OPENAI_API_KEY="sk-proj-loopbackonlykey0123456789abcdef",
            AIOPS_ENGINE="rules",
            AIOPS_SLACK_WEBHOOK_URL=slack,
            AIOPS_NOTIFY_WEBHOOK_URL=f"{webhook_receiver.url}/hook/other-secret-path",
            AIOPS_NOTIFY_MAX_ATTEMPTS="1",
            AIOPS_LOG_LEVEL="DEBUG",
        ) as analyzer,
    ):
        httpx.post(analyzer.url + WEBHOOK, json=payload(), headers={"Authorization": "Bearer x"})
        response = httpx.post(analyzer.url + WEBHOOK, json=payload(), headers=AUTH)
        wait_all_finished(analyzer.url, response.json()["analysis_ids"])
    log = analyzer.log()
    for secret in (
        TOKEN,
        "loopbackonlykey0123456789abcdef",
        "XXXXsecretpathXXXX",
        "other-secret-path",
    ):
        assert secret not in log


def test_sigkill_with_jobs_pending_then_restart_analyses_every_job_once(tmp_path: Path) -> None:
    delay = {"seconds": 0.6}

    def slow_llm(_: Recorded) -> Reply:
        return Reply(body=completion(json.dumps(GOOD)), delay=delay["seconds"])

    with LoopbackServer(slow_llm) as llm:
        env = {
            "AIOPS_ENGINE": "llm",
            "AIOPS_OPENAI_API_KEY": "sk-test-loopback-only-0123456789abcdef",
            "AIOPS_LLM_BASE_URL": f"{llm.url}/v1",
            "AIOPS_LLM_MAX_RETRIES": "0",
            "AIOPS_WORKERS": "1",
            "AIOPS_JOB_LEASE_SECONDS": "1",
        }
        first = AnalyzerProcess(tmp_path, **env).start()
        try:
            response = httpx.post(first.url + WEBHOOK, json=payload(count=6), headers=AUTH)
            ids = response.json()["analysis_ids"]
            deadline = time.monotonic() + 30
            while not llm.requests and time.monotonic() < deadline:
                time.sleep(0.02)
            assert llm.requests, "no LLM call started"
        finally:
            first.kill()  # SIGKILL mid-job: no shutdown code runs.

        store = Store(f"sqlite:///{tmp_path / 'analyzer.db'}")
        before = {state: store.analyses.list(state=state)[1] for state in JobState}
        done_before = before[JobState.DONE]
        calls_before = len(llm.requests)
        store.dispose()
        assert before[JobState.PENDING] + before[JobState.RUNNING] >= 5, (
            before
        )  # Work really was pending.

        delay["seconds"] = 0.0
        with analyzer_process(tmp_path, **env) as second:
            analyses = wait_all_finished(second.url, ids)
            listed = httpx.get(second.url + "/analyses", headers=AUTH).json()
    assert [a["job"]["state"] for a in analyses] == ["done"] * 6
    assert all(a["result"]["engine"] == "llm" for a in analyses)
    assert listed["total"] == 6  # No duplicate rows.
    # After the restart the LLM was asked once per job that had no stored result.
    assert len(llm.requests) - calls_before == 6 - done_before
    # The dead process's job came back when its lease expired.
    assert "leases_expired" in second.log() or before[JobState.RUNNING] == 0
