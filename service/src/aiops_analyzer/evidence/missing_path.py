"""A path a process could not find, and the lines that removed it.

``No such file or directory`` names what is missing; what removed it (a release prune, a
clean-up job, an operator's ``rm``) logged the path, or a directory above it, earlier: often
hours before, in another unit's journal. The Loki evidence reads those lines
(``loki.missing_path_selector``) and the rules engine quotes the one that removed it.
"""

from __future__ import annotations

import re

# "/opt/app/bin/x: No such file or directory", "No such file or directory: '/srv/x'".
_MISSING_PATH = re.compile(
    r"(/[\w.@+-]+(?:/[\w.@+-]+)+)[^\n]{0,40}?(?:No such file|not found|ENOENT)"
    r"|(?:No such file or directory|ENOENT)[^/\n]{0,40}(/[\w.@+-]+(?:/[\w.@+-]+)+)",
    re.I,
)
REMOVAL_WORDS = re.compile(
    r"\b(?:remov(?:e|ed|ing)|delet(?:e|ed|ing)|prun(?:e|ed|ing)|rm -|unlink)", re.I
)
# The same words for Loki's line filter (RE2, case-insensitive).
REMOVAL_FILTER = ' |~ "(?i)remov|delet|prun|rm -|unlink"'


def missing_path(line: str) -> str | None:
    """The path a line says could not be found, if it says so."""
    found = _MISSING_PATH.search(line)
    return (found.group(1) or found.group(2)) if found else None


def ancestors(path: str) -> list[str]:
    """The path itself and up to two directories above it, nearest first (a sibling
    release's removal says nothing about this one)."""
    return [path.rsplit("/", n)[0] for n in range(min(3, path.count("/") - 1))]
