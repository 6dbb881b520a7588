"""A store that cannot take writes: the data directory on a 4 MB tmpfs, filled up.

The webhook answers 503 with Retry-After (Alertmanager retries), the log says it once with
its cause, /readyz is red until a write succeeds again, and nothing acknowledged is lost.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.apptools import AUTH, WEBHOOK, make_settings, payload, running_app


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (make test runs as root)")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def _big_alert(n: int) -> dict[str, object]:
    body = payload(fingerprint=f"full{n:012d}")
    body["alerts"][0]["annotations"]["description"] = f"{n} " + "x" * 60_000
    return body


async def test_full_disk_answers_503_once_logged_and_recovers(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(small_disk)
    async with running_app(settings) as (app, client):
        first = await client.post(WEBHOOK, json=payload(), headers=AUTH)
        assert first.status_code == 202
        filler = _fill(small_disk)

        caplog.set_level(logging.ERROR, logger="aiops_analyzer.core.storage_health")
        answers = [await client.post(WEBHOOK, json=_big_alert(n), headers=AUTH) for n in range(8)]
        refused = [r for r in answers if r.status_code == 503]
        assert refused, [r.status_code for r in answers]
        assert all(r.status_code in (202, 503) for r in answers)  # never a 500
        assert refused[0].headers["retry-after"].isdigit()
        assert "full" in refused[0].json()["detail"]  # the cause, not a traceback
        lines = [r for r in caplog.records if "store cannot take writes" in r.getMessage()]
        assert len(lines) == 1, [r.getMessage() for r in caplog.records]

        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "writes failing" in ready.json()["store"]

        filler.unlink()
        again = await client.post(WEBHOOK, json=_big_alert(99), headers=AUTH)
        assert again.status_code == 202
        assert (await client.get("/readyz")).status_code == 200
        # What was acknowledged before the disk filled is still there.
        listed = await client.get("/analyses", headers=AUTH)
        ids = {item["id"] for item in listed.json()["items"]}
        assert first.json()["analysis_ids"][0] in ids
        del app
