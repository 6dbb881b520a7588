"""JSON log lines, and the safety net that masks configured secrets in them."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiops_analyzer.core.logging import configure_logging, secret_values

from tests.service.apptools import TOKEN, analyzer_process, make_settings

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


ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_times_are_utc_iso_8601_whatever_the_local_zone(
    log_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Pacific/Chatham")  # +12:45 / +13:45: any local time would show
    time.tzset()
    try:
        logging.getLogger("aiops_analyzer.test").info("tick")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    [line] = lines(log_stream)
    stamp = str(line["time"])
    assert ISO_UTC.match(stamp), stamp
    logged = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - logged).total_seconds()) < 60


def test_uvicorn_colour_duplicates_and_alembic_chatter_are_dropped(
    log_stream: io.StringIO,
) -> None:
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]",
        42,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
    )
    migration = logging.getLogger("alembic.runtime.migration")
    migration.info("Context impl SQLiteImpl.")
    migration.info("Will assume non-transactional DDL.")
    migration.info("Running upgrade  -> 0001, Initial schema")
    records = lines(log_stream)
    assert [r["message"] for r in records] == [
        "Started server process [42]",
        "Running upgrade  -> 0001, Initial schema",
    ]
    assert "color_message" not in records[0] and "\x1b" not in log_stream.getvalue()


def test_text_format_is_one_readable_line_per_event(tmp_path: Path) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    settings = make_settings(tmp_path, slack_webhook_url=SLACK, log_format="TEXT")
    try:
        configure_logging(settings, stream=stream)
        logger = logging.getLogger("aiops_analyzer.worker")
        logger.warning("notify failed", extra={"event": "notify_failed", "channel": "slack"})
        logger.info("posting to %s", SLACK)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    first, second = stream.getvalue().splitlines()
    stamp, level, name, rest = first.split(" ", 3)
    assert ISO_UTC.match(stamp) and level == "WARNING" and name == "aiops_analyzer.worker:"
    assert rest.strip() == "notify failed  [event=notify_failed channel=slack]"
    assert "{" not in first and "s3cretPathPart0123" not in second and "[REDACTED]" in second


def test_a_real_server_logs_clean_lines_and_each_migration_once(tmp_path: Path) -> None:
    with analyzer_process(tmp_path, AIOPS_LOG_FORMAT="json") as analyzer:
        pass
    records = [json.loads(line) for line in analyzer.log().splitlines() if line.startswith("{")]
    assert records and all(ISO_UTC.match(r["time"]) for r in records)
    assert not any("color_message" in r for r in records)
    assert "\x1b" not in analyzer.log()
    migrations = [r["message"] for r in records if r["logger"].startswith("alembic")]
    assert migrations and all(m.startswith("Running upgrade") for m in migrations)
    assert len(migrations) == len(set(migrations))
