"""Pulumi's synchronous runner needs a current event loop; async tests elsewhere leave none."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.infra.harness import ensure_event_loop


@pytest.fixture(autouse=True)
def event_loop_for_pulumi() -> Iterator[None]:
    ensure_event_loop()
    yield
