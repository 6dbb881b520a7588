"""Sections of pytest's terminal summary that tests fill (scores, latencies), xdist or not.

Under pytest-xdist the tests run in worker processes and only the controller prints the
summary, so a line a test records would stay in its worker. Each worker therefore hands its
sections to the controller when it finishes (tests/conftest.py), which prints them all.
"""

from __future__ import annotations

SECTIONS: dict[str, list[str]] = {}


def section(title: str) -> list[str]:
    """The lines shown under `title` at the end of the run; append to (or replace) them."""
    return SECTIONS.setdefault(title, [])
