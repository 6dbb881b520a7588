"""Every analyzer test starts from an environment without AIOPS_* settings or an OpenAI key."""

from __future__ import annotations

import pytest

from tests.service.loopback import clear_analyzer_environment
from tests.support.postgres import database_url, each_store, postgres_server

__all__ = ["database_url", "each_store", "postgres_server"]


@pytest.fixture(autouse=True)
def _no_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_analyzer_environment(monkeypatch)
