"""The README and the docs pages: every relative link resolves (file and heading anchor), every
page is reachable from the README, and the README stays a five-minute read."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_BYTES = 10_000
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def markdown_pages():
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def prose(text):
    """The text outside fenced code blocks (links in code are commands, not links)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def heading_anchors(text):
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to
    hyphens, a repeated heading numbered -1, -2, ..."""
    anchors, seen = set(), {}
    for line in prose(text).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower().replace("`", "")).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def relative_links(page):
    for target in LINK.findall(prose(page.read_text())):
        if not re.match(r"^[a-z]+:", target):  # http:, https:, mailto:, file:
            yield target


def broken_links(page):
    problems = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            problems.append(f"{page.name}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(
                resolved.read_text()):
            problems.append(f"{page.name}: {target} (no heading with that anchor)")
    return problems


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda p: p.name)
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_a_broken_link_is_reported(tmp_path):
    (tmp_path / "other.md").write_text("# Real heading\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#real-heading) [gone](missing.md) [bad](other.md#nope)\n"
                    "```\n[in code](ignored.md)\n```\n")
    assert broken_links(page) == ["page.md: missing.md (no such file)",
                                  "page.md: other.md#nope (no heading with that anchor)"]


def test_every_docs_page_is_reachable_from_the_readme():
    reached, todo = set(), [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached:
            continue
        reached.add(page)
        for target in relative_links(page):
            path = (page.parent / target.partition("#")[0]).resolve()
            if path.suffix == ".md" and path.exists():
                todo.append(path)
    unreachable = [p.name for p in markdown_pages() if p.resolve() not in reached]
    assert unreachable == []


def test_readme_is_short():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, f"README.md has {size} bytes; move details to docs/"
