"""Property-based fuzzing of the webhook: thousands of generated requests, zero 5xx.

Three families: arbitrary bytes, arbitrary JSON documents, and near-valid Alertmanager
payloads whose every field may take a wrong type or an extreme value; each with generated
Content-Type and Authorization headers. Workers run the whole time: nothing a client sends
may stop one.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiops_analyzer.main import create_app
from aiops_analyzer.store import JobState
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service.apptools import TOKEN, WEBHOOK, make_settings

EXAMPLES = 1000
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

header_text = st.text(alphabet=string.printable.strip("\r\n\x0b\x0c"), max_size=60)
content_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/vnd.alertmanager+json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
        ]
    ),
    header_text,
)
authorizations = st.one_of(
    st.just(f"Bearer {TOKEN}"),
    st.just(f"bearer {TOKEN}"),
    st.just(f"Bearer {TOKEN}x"),
    st.just("Bearer"),
    st.none(),
    header_text,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=30,
)

timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-11-28T10:00:00.123456789Z",
            "not a date",
            "",
        ]
    ),
    json_values,
)
label_maps = st.one_of(
    st.dictionaries(st.text(max_size=30), st.text(max_size=200), max_size=6),
    json_values,
)


@st.composite
def near_valid_payloads(draw: st.DrawFn) -> dict[str, Any]:
    def field(valid: st.SearchStrategy[Any]) -> Any:
        return draw(st.one_of(valid, json_values) if draw(st.booleans()) else valid)

    alerts = []
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        alert: dict[str, Any] = {
            "status": field(st.sampled_from(["firing", "resolved"])),
            "labels": draw(label_maps),
            "annotations": draw(label_maps),
            "startsAt": draw(timestamps),
            "endsAt": draw(timestamps),
            "generatorURL": field(st.text(max_size=300)),
            "fingerprint": field(st.text(min_size=0, max_size=140)),
        }
        for key in draw(st.lists(st.sampled_from(sorted(alert)), max_size=2, unique=True)):
            del alert[key]
        alert.update(draw(st.dictionaries(st.text(max_size=10), json_values, max_size=2)))
        alerts.append(alert)
    body: dict[str, Any] = {
        "version": field(st.just("4")),
        "status": field(st.sampled_from(["firing", "resolved"])),
        "receiver": field(st.text(max_size=300)),
        "groupKey": field(st.text(max_size=100)),
        "truncatedAlerts": field(st.integers()),
        "groupLabels": draw(label_maps),
        "commonLabels": draw(label_maps),
        "commonAnnotations": draw(label_maps),
        "externalURL": field(st.text(max_size=100)),
        "alerts": alerts if draw(st.integers(0, 9)) else draw(json_values),
    }
    body.update(draw(st.dictionaries(st.text(max_size=10), json_values, max_size=2)))
    return body


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    app = create_app(make_settings(data_dir, max_body_bytes=64 * 1024, workers=2))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
        # Nothing sent stopped a worker, and no job failed on what a client sent.
        assert app.state.workers.alive == 2
        assert app.state.store.analyses.list(state=JobState.FAILED)[1] == 0


def send(client: TestClient, body: bytes, content_type: str, authorization: str | None) -> None:
    headers = {"Content-Type": content_type}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = client.post(WEBHOOK, content=body, headers=headers)
    assert response.status_code < 500, (response.status_code, response.text, body[:300])
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    if response.status_code == 202:
        document = json.loads(body)
        assert len(response.json()["analysis_ids"]) == len(document["alerts"])


@FUZZ_SETTINGS
@given(body=st.binary(max_size=2048), content_type=content_types, authorization=authorizations)
def test_arbitrary_bytes(
    client: TestClient, body: bytes, content_type: str, authorization: str | None
) -> None:
    send(client, body, content_type, authorization)


@FUZZ_SETTINGS
@given(document=json_values, content_type=content_types, authorization=authorizations)
def test_arbitrary_json(
    client: TestClient, document: Any, content_type: str, authorization: str | None
) -> None:
    send(client, json.dumps(document).encode(), content_type, authorization)


@FUZZ_SETTINGS
@given(document=near_valid_payloads(), authorization=authorizations)
def test_near_valid_payloads(
    client: TestClient, document: dict[str, Any], authorization: str | None
) -> None:
    send(client, json.dumps(document).encode(), "application/json", authorization)


@settings(max_examples=300, deadline=None, database=None)
@given(document=near_valid_payloads())
def test_near_valid_payloads_with_the_token(client: TestClient, document: dict[str, Any]) -> None:
    """Authenticated, so every example reaches parsing, validation and the store."""
    send(client, json.dumps(document).encode(), "application/json", f"Bearer {TOKEN}")
