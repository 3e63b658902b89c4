"""The repository's own Markdown outside the site (README, changelog, benchmark notes): short
enough to read, and every relative link names a file that is in the repository. The site
under docs/ is checked by `mkdocs build --strict` (`make docs`)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", "CHANGELOG.md", "bench/results/README.md", "packaging/jobbox/README.md"]
# The README is the entry point: what you get, the set-up commands, a map, links into docs/.
README_MAX_LINES = 300
LINK = re.compile(r"\]\((?P<target>[^)#\s]+)(?:#[^)]*)?\)")


def relative_links(page: Path) -> list[str]:
    return [m["target"] for m in LINK.finditer(page.read_text())
            if not m["target"].startswith(("http://", "https://", "mailto:"))]


def test_the_readme_is_at_most_300_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) <= README_MAX_LINES


@pytest.mark.parametrize("name", PAGES)
def test_every_relative_link_names_a_file_of_the_repository(name):
    page = ROOT / name
    missing = [target for target in relative_links(page)
               if not (page.parent / target).resolve().exists()]
    assert missing == []


def test_a_broken_link_is_seen(tmp_path):
    page = tmp_path / "PAGE.md"
    page.write_text("[gone](docs/gone.md) and [site](https://example.org/x)\n")
    assert relative_links(page) == ["docs/gone.md"]
