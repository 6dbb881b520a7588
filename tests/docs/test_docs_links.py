"""The documentation holds together: README stays short, and every relative link resolves."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[2]
README_MAX_LINES = 300

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`+[^`]*`+")
# [text](target) and ![alt](target); the target ends at whitespace (a title may follow) or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^)]*)?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
EXPLICIT_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")


def documents() -> list[Path]:
    """README, the community files, service/README and everything under docs/."""
    roots = [REPO / name for name in ("README.md", "CONTRIBUTING.md", "SECURITY.md")]
    roots.append(REPO / "service" / "README.md")
    return [p for p in roots if p.exists()] + sorted((REPO / "docs").rglob("*.md"))


def prose_lines(text: str, keep_code: bool = False) -> list[str]:
    """Lines outside fenced code blocks; inline code is removed (links there are examples)."""
    lines, in_fence = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            lines.append(line if keep_code else INLINE_CODE.sub("", line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a Markdown file, numbered as GitHub numbers repeated headings."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    text = path.read_text(encoding="utf-8")
    for line in prose_lines(text, keep_code=True):
        match = HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    found.update(EXPLICIT_ANCHOR.findall(text))
    return found


def relative_links(path: Path) -> list[str]:
    targets = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                continue  # http:, https:, mailto: ...
            targets.append(target)
    return targets


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    problems = []
    for target in relative_links(path):
        file_part, _, fragment = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not resolved.exists():
            problems.append(f"{target}: {os.path.relpath(resolved, root)} does not exist")
        elif not resolved.is_relative_to(root):
            problems.append(f"{target}: points outside the repository")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            problems.append(f"{target}: no heading with anchor #{fragment}")
    return problems


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_readme_stays_short() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail to docs/"
    )


def test_readme_links_every_docs_file() -> None:
    linked = {
        (REPO / target.partition("#")[0]).resolve() for target in relative_links(REPO / "README.md")
    }
    unlinked = [
        str(p.relative_to(REPO)) for p in sorted((REPO / "docs").rglob("*.md")) if p not in linked
    ]
    assert unlinked == [], "README.md links no docs file of these: " + ", ".join(unlinked)


def test_link_checker_catches_a_broken_link_and_anchor(tmp_path: Path) -> None:
    # The checker itself: a missing file and a missing anchor are reported, good ones are not.
    (tmp_path / "other.md").write_text("# A `code` Title: yes\n\n## Twice\n\n## Twice\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[ok](other.md#a-code-title-yes) [ok2](other.md#twice-1) [web](https://x.invalid/)\n"
        "`[example](nowhere.md)`\n```\n[in code](nowhere.md)\n```\n"
        "[gone](missing.md) [bad anchor](other.md#nope)\n"
    )
    problems = [p.replace(str(tmp_path), "") for p in broken_links(doc, root=tmp_path)]
    assert len(problems) == 2, problems
    assert problems[0].startswith("missing.md") and "#nope" in problems[1]
