"""Every documentation link a learner can see names a page that exists.

The chapters (their text, stubs, hints and FAQ), the generated notebooks and the checker's diagnoses
link to PyTorch's and Python's documentation. ``test_chapters.py`` checks that a link's Python name
exists in torch; a name can exist and still have no page (``torch.relu`` has none). Here each link is
compared with ``tests/data/doc_pages.txt``, the list of pages checked against the documentation's own
source (CI has no network to ask the live site).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from checks.diagnoses import DIAGNOSES

ROOT = Path(__file__).resolve().parents[1]
PAGES_FILE = Path(__file__).parent / "data" / "doc_pages.txt"
DOC_URL = re.compile(r"https?://docs\.(?:pytorch|python)\.org/[^\s)>\]`'\"<]*")


def known_pages(path: Path = PAGES_FILE) -> set[str]:
    """The full URLs listed in ``doc_pages.txt`` (``[base]`` sections, one page per line)."""
    pages, base = set(), None
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            base = line[1:-1]
            continue
        assert base, f"{path.name}: {line!r} comes before any [base URL] line"
        pages.add(base + line)
    return pages


def is_base(url: str) -> bool:
    """A bare site root (``https://docs.pytorch.org/docs/stable/``) is a fine link, not a page."""
    return url.endswith("/") and "#" not in url


def links_in_text(text: str) -> set[str]:
    return {url.rstrip(".,;:") for url in DOC_URL.findall(text)}


def learner_visible_links() -> dict[str, set[str]]:
    """Where each link comes from -> the links there."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "workbook" / "content").glob("*.md")):
        if path.name != "FORMAT.md":  # FORMAT.md is for authors; its example links are still checked below
            found[f"workbook/content/{path.name}"] = links_in_text(path.read_text(encoding="utf-8"))
    found["workbook/content/FORMAT.md"] = links_in_text((ROOT / "workbook/content/FORMAT.md").read_text("utf-8"))
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        found[f"chapters/{path.name}"] = links_in_text("\n".join(cell.source for cell in nb.cells))
    for package in ("checks", "workbook"):
        for path in sorted((ROOT / package).rglob("*.py")):
            found[str(path.relative_to(ROOT))] = links_in_text(path.read_text(encoding="utf-8"))
    found["checks.diagnoses.DIAGNOSES"] = {d.doc for d in DIAGNOSES.values() if DOC_URL.fullmatch(d.doc)}
    return found


def unknown_links(found: dict[str, set[str]], pages: set[str]) -> list[str]:
    return sorted(
        f"{where}: {url}"
        for where, urls in found.items()
        for url in urls
        if url not in pages and not is_base(url) and "<" not in url and "{" not in url
    )


def test_every_documentation_link_names_a_page_that_exists():
    found = learner_visible_links()
    assert sum(len(urls) for urls in found.values()) > 40, "the link scan found almost nothing: is it broken?"
    missing = unknown_links(found, known_pages())
    assert not missing, (
        "these links name no page in tests/data/doc_pages.txt (find the page in the documentation's "
        "source, then add it there, or fix the link):\n  " + "\n  ".join(missing)
    )


def test_the_checker_catches_a_page_that_does_not_exist():
    pages = known_pages()
    found = {"chapter": {"https://docs.pytorch.org/docs/stable/generated/torch.relu.html"}}
    assert unknown_links(found, pages) == ["chapter: https://docs.pytorch.org/docs/stable/generated/torch.relu.html"]
    wrong_anchor = {"x": {"https://docs.pytorch.org/docs/stable/nn.init.html#torch.nn.init.xavier_normal"}}
    assert unknown_links(wrong_anchor, pages), "an anchor that is not listed must be caught too"
    assert not unknown_links({"x": {"https://docs.pytorch.org/docs/stable/generated/torch.nn.Linear.html"}}, pages)


@pytest.mark.parametrize("where", ["workbook/content/05_feed_forward.md", "checks.diagnoses.DIAGNOSES"])
def test_the_scan_sees_links_in_sources_and_messages(where):
    assert learner_visible_links()[where], f"no documentation link found in {where}"
