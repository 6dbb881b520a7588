"""JSON log lines, and the safety net that masks configured secrets in them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiops_analyzer.core.logging import configure_logging, secret_values

from tests.service.apptools import TOKEN, make_settings

SLACK = "https://hooks.slack.com/services/T0001/B0001/s3cretPathPart0123"


@pytest.fixture
def log_stream(tmp_path: Path) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging(make_settings(tmp_path, slack_webhook_url=SLACK), stream=stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_event(log_stream: io.StringIO) -> None:
    logger = logging.getLogger("aiops_analyzer.test")
    logger.info("job done", extra={"event": "job_done", "analysis_id": 7})
    logger.warning("multi\nline message")
    first, second = lines(log_stream)
    assert first["message"] == "job done" and first["event"] == "job_done"
    assert first["analysis_id"] == 7 and first["level"] == "INFO" and "time" in first
    assert second["message"] == "multi\nline message"


def test_configured_secrets_are_masked_wherever_they_appear(log_stream: io.StringIO) -> None:
    logger = logging.getLogger("aiops_analyzer.test")
    logger.error("posting to %s failed", SLACK)
    logger.info("token check", extra={"detail": f"got {TOKEN}"})
    try:
        raise RuntimeError(f"connect to {SLACK} refused")
    except RuntimeError:
        logger.exception("notify failed")
    text = log_stream.getvalue()
    assert TOKEN not in text and "s3cretPathPart0123" not in text
    assert text.count("[REDACTED]") >= 3
    assert len(lines(log_stream)) == 3  # The traceback stays inside its JSON line.


def test_webhook_urls_mask_their_secret_path_alone_too(tmp_path: Path) -> None:
    values = secret_values(make_settings(tmp_path, slack_webhook_url=SLACK))
    assert TOKEN in values and SLACK in values
    assert "/services/T0001/B0001/s3cretPathPart0123" in values
