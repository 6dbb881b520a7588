"""Session hooks shared by every test folder."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import summary


def pytest_sessionfinish(session: pytest.Session) -> None:
    # On an xdist worker: send the summary sections to the controller, which prints them.
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["summary_sections"] = {
            title: list(lines) for title, lines in summary.SECTIONS.items() if lines
        }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    # On the xdist controller: a worker finished; keep what it recorded.
    sections = getattr(node, "workeroutput", {}).get("summary_sections", {})
    for title, lines in sections.items():
        summary.section(title).extend(lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for title, lines in summary.SECTIONS.items():
        if lines:
            terminalreporter.section(title)
            for line in lines:
                terminalreporter.write_line(line)
