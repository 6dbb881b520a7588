"""What a hostile or broken sender cannot do to the webhook: freeze it with text the scrubber
chokes on, slip a secret into the store or a notification, or store what the payload contract
refuses (huge labels, NUL, numbers as times, duplicate keys)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.service.apptools import (
    AUTH,
    WEBHOOK,
    delivery_row,
    make_settings,
    payload,
    running_app,
    wait_until,
)
from tests.service.loopback import LoopbackServer, Reply, always

JWT_PREFIX = "eyJ" + "-"  # the old JWT rule rescanned the whole run from every "eyJ"


def _with_annotations(fill: str, count: int, size: int) -> dict[str, Any]:
    body = payload()
    body["alerts"][0]["annotations"] = {f"note{n}": (fill * size)[:size] for n in range(count)}
    return body


async def _post_seconds(client: Any, body: dict[str, Any]) -> float:
    started = time.perf_counter()
    response = await client.post(WEBHOOK, json=body, headers=AUTH)
    assert response.status_code == 202, response.text
    return time.perf_counter() - started


async def test_adversarial_megabyte_costs_about_what_plain_text_costs(tmp_path: Path) -> None:
    """15 annotations of 64 KB made of a scrubber rule's prefix, against the same bytes of
    plain letters, in one run: the webhook answers within a small multiple (the old
    scrubber took ~10 s here, ~100x the plain payload)."""
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        plain = _with_annotations("abcd", 15, 64_000)
        hostile = _with_annotations(JWT_PREFIX, 15, 64_000)
        hostile["alerts"][0]["fingerprint"] = "aaaabbbbccccdddd"
        plain_seconds = min([await _post_seconds(client, plain) for _ in range(2)])
        hostile_seconds = await _post_seconds(client, hostile)
    assert hostile_seconds < 20 * plain_seconds + 0.5, (hostile_seconds, plain_seconds)


async def test_group_key_receiver_and_labels_are_scrubbed_before_storing(tmp_path: Path) -> None:
    body = payload()
    body["groupKey"] = '{}:{alertname="DbDown", password="Tr0ub4dorGK"}'
    body["receiver"] = "analyzer token=Tr0ub4dorRX"
    body["alerts"][0]["labels"]["db_pass"] = "Tr0ub4dorLB"
    body["alerts"][0]["generatorURL"] = "http://prometheus:9090/graph?g0.expr=up&sig=Tr0ub4dorGU"
    async with running_app(make_settings(tmp_path), start_workers=False) as (app, client):
        response = await client.post(WEBHOOK, json=body, headers=AUTH)
        assert response.status_code == 202
        delivery = delivery_row(app.state.store, response.json()["delivery_id"])
        stored = app.state.store.analyses.get(response.json()["analysis_ids"][0])
    everything = json.dumps([delivery._asdict(), stored.alert.model_dump()], default=str)
    assert "Tr0ub4dor" not in everything
    assert delivery.group_key == '{}:{alertname="DbDown", password="[REDACTED:secret]"}'


async def test_notification_carries_what_was_masked_at_the_door(tmp_path: Path) -> None:
    """Scrubbed once where it entered; the channel receives the masked alert."""
    body = payload()
    body["alerts"][0]["labels"]["connection_string"] = "Server=db;Password=Tr0ub4dorCS"
    body["alerts"][0]["annotations"]["summary"] = "login with glpat-" + "xK9mP2qL7wR4tY8uZ3vB"
    with LoopbackServer(always(Reply(200, {"ok": True}))) as hook:
        settings = make_settings(tmp_path, notify_webhook_url=f"{hook.url}/hook")
        async with running_app(settings) as (_, client):
            response = await client.post(WEBHOOK, json=body, headers=AUTH)
            assert response.status_code == 202
            await wait_until(lambda: hook.requests)
    sent = hook.requests[0].json()
    assert sent["alert"]["labels"]["connection_string"] == "[REDACTED:secret]"
    assert "xK9mP2qL7wR4tY8uZ3vB" not in hook.requests[0].body.decode()


def _alert(**fields: Any) -> dict[str, Any]:
    body = payload()
    body["alerts"][0].update(fields)
    return body


REFUSED = [
    (
        "label value over 16 KiB",
        _alert(labels={"alertname": "X", "big": "v" * 16_385}),
        "alerts.0.labels.big",
    ),
    (
        "annotation over 64 KiB",
        _alert(annotations={"description": "d" * 65_537}),
        "alerts.0.annotations.description",
    ),
    (
        "too many labels",
        _alert(labels={f"l{n}": "v" for n in range(257)}),
        "alerts.0.labels",
    ),
    ("NUL in a label", _alert(labels={"alertname": "X\u0000Y"}), "alerts.0.labels.alertname"),
    ("NUL in a label name", _alert(labels={"a\u0000b": "v"}), "alerts.0.labels"),
    ("NUL in the groupKey", {**payload(), "groupKey": "{}:\u0000"}, "groupKey"),
    ("numeric startsAt", _alert(startsAt=1764324000), "alerts.0.startsAt"),
    ("numeric string startsAt", _alert(startsAt="1764324000"), "alerts.0.startsAt"),
    ("date without time", _alert(startsAt="2026-11-28"), "alerts.0.startsAt"),
    ("time without offset", _alert(startsAt="2026-11-28T10:00:00"), "alerts.0.startsAt"),
    ("numeric endsAt", _alert(endsAt=0.5), "alerts.0.endsAt"),
]


@pytest.mark.parametrize(("case", "body", "field"), REFUSED, ids=[c[0] for c in REFUSED])
async def test_422_names_the_refused_field(
    tmp_path: Path, case: str, body: dict[str, Any], field: str
) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (app, client):
        response = await client.post(WEBHOOK, json=body, headers=AUTH)
        assert response.status_code == 422, case
        errors = response.json()["errors"]
        assert any(e["field"].startswith(field) for e in errors), errors
        assert app.state.store.analyses.count_active() == 0


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(payload()).replace("{", '{"status": "resolved", ', 1).encode(),
        json.dumps(payload()).replace('"alertname"', '"alertname": "A", "alertname"', 1).encode(),
        # The same key spelt with an escape is still the same key once decoded.
        json.dumps(payload())
        .replace('"alertname"', '"alertname": "A", "\\u0061lertname"', 1)
        .encode(),
    ],
    ids=["top level", "in labels", "escaped spelling"],
)
async def test_duplicate_json_keys_are_refused(tmp_path: Path, raw: bytes) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    async with running_app(make_settings(tmp_path), start_workers=False) as (app, client):
        response = await client.post(WEBHOOK, content=raw, headers=headers)
        assert response.status_code == 422
        assert "duplicate key" in response.json()["detail"]
        assert app.state.store.analyses.count_active() == 0


async def test_rfc3339_times_with_offsets_are_still_accepted(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        for starts in ("2026-11-28T10:00:00Z", "2026-11-28T11:00:00.123+01:00"):
            response = await client.post(WEBHOOK, json=payload(starts_at=starts), headers=AUTH)
            assert response.status_code == 202, response.text
