"""Drain-style log template mining: lines that differ only in their variables share a template.

Drain (He et al., ICWS 2017) parses a line in three steps: mask the obvious variables (numbers,
addresses, ids), route the line by its token count and first token, then join the most similar
template of that group when enough tokens agree, turning the differing tokens into ``<*>``.
The ``drain3`` package implements it with persistence and a configuration layer this service
does not need (and its last release is from 2022); the core fits in this module, bounded in
groups and templates so a log flood cannot make it grow without end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

WILDCARD = "<*>"
# Masks applied before tokenising, most specific first.
_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<ID>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<TS>"),
    (re.compile(r"\b\d\d:\d\d:\d\d(?:[.,]\d+)?\b"), "<TIME>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<IP>"),
    (re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{12,}\b", re.I), "<HEX>"),
    (
        re.compile(
            r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:ms|us|µs|s|m|h|b|kb|mb|gb|kib|mib|gib|%)?\b", re.I
        ),
        "<NUM>",
    ),
)
_KEEP_DIGITS = re.compile(r"\d")
MAX_TOKENS = 40
MAX_GROUPS = 200
MAX_TEMPLATES_PER_GROUP = 50
MAX_REMEMBERED_LINES = 5000


def mask(line: str) -> str:
    for pattern, replacement in _MASKS:
        line = pattern.sub(replacement, line)
    return line


@dataclass
class Template:
    tokens: list[str]
    id: int
    lines: list[int] = field(default_factory=list)  # indexes into the miner's input order

    @property
    def text(self) -> str:
        return " ".join(self.tokens)


class TemplateMiner:
    """Assigns each line a template; ``similarity`` is the share of equal tokens to join one."""

    def __init__(self, similarity: float = 0.5) -> None:
        self.similarity = similarity
        self._groups: dict[tuple[int, str], list[Template]] = {}
        self.templates: list[Template] = []
        self._count = 0
        # Repeated lines (health checks, heartbeats) skip masking and the search.
        self._seen: dict[str, Template] = {}

    def add(self, line: str) -> Template:
        known = self._seen.get(line)
        if known is not None:
            known.lines.append(self._count)
            self._count += 1
            return known
        template = self._add(line)
        if len(self._seen) < MAX_REMEMBERED_LINES:
            self._seen[line] = template
        return template

    def _add(self, line: str) -> Template:
        tokens = mask(line).split()[:MAX_TOKENS] or [""]
        first = tokens[0]
        key = (len(tokens), WILDCARD if _KEEP_DIGITS.search(first) or "<" in first else first)
        if key not in self._groups and len(self._groups) >= MAX_GROUPS:
            key = (len(tokens), WILDCARD)  # out of groups: share one per length
        group = self._groups.setdefault(key, [])
        best, best_score = None, -1.0
        for template in group:
            score = _similarity(template.tokens, tokens)
            if score > best_score:
                best, best_score = template, score
        if best is not None and (
            best_score >= self.similarity or len(group) >= MAX_TEMPLATES_PER_GROUP
        ):
            best.tokens = [
                a if a == b else WILDCARD for a, b in zip(best.tokens, tokens, strict=True)
            ]
        else:
            best = Template(tokens=tokens, id=len(self.templates))
            group.append(best)
            self.templates.append(best)
        best.lines.append(self._count)
        self._count += 1
        return best


def _similarity(template: list[str], tokens: list[str]) -> float:
    same = sum(1 for a, b in zip(template, tokens, strict=True) if a == b and a != WILDCARD)
    return same / len(tokens)
