"""The documentation site builds strictly, offline, with no broken link, and covers the code.

``mkdocs build --strict`` turns every warning (a page missing from the nav, a link to a page or
anchor that does not exist) into a failure. The built HTML is then checked again, link by link
and anchor by anchor, since generated pages and theme templates are outside MkDocs' own check.
"""

from __future__ import annotations

import html
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from docs_reference import command_anchor, method_anchor  # noqa: E402


class _Page(HTMLParser):
    """The ids and the link targets of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if attrs.get("name") and tag == "a":
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and attrs.get("rel") == "canonical"):
                self.links.append(attrs[key])


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-4000:]}"
    return out


def test_every_link_and_anchor_resolves(site):
    pages = {path: _parse(path) for path in site.rglob("*.html")}
    assert len(pages) >= 5
    broken = []
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith(("//", "mailto:", "data:", "javascript:")):
                continue
            # The 404 page links from the site's root, as a server would serve it.
            base = site if parts.path.startswith("/") else path.parent
            target = (base / unquote(parts.path).lstrip("/")).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{path.relative_to(site)} -> {link} (no such file)")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{path.relative_to(site)} -> {link} (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken[:40])


def test_the_site_reads_offline(site):
    """No page loads a script, font or style sheet from another host."""
    remote = []
    for path in site.rglob("*.html"):
        page = _parse(path)
        remote += [f"{path.name}: {link}" for link in page.links
                   if link.startswith(("http://", "https://", "//"))
                   and any(link.split("?")[0].endswith(ext) for ext in (".js", ".css", ".woff2"))]
    assert not remote, remote


def _subcommand_paths(parser, prefix=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield [*prefix, name]
                yield from _subcommand_paths(sub, (*prefix, name))


def test_every_command_has_its_reference_section(site):
    from engine.cli import COMMANDS, build_parser

    ids = _parse(site / "reference" / "cli.html").ids
    paths = list(_subcommand_paths(build_parser()))
    assert {p[0] for p in paths} == set(COMMANDS)
    missing = [" ".join(p) for p in paths if command_anchor(p) not in ids]
    assert not missing, f"commands without a reference section: {missing}"


def test_every_method_has_its_reference_section(site):
    from engine.explain.registry import registry

    page = site / "reference" / "methods.html"
    ids = _parse(page).ids
    text = page.read_text(encoding="utf-8")
    missing = [name for name in registry().names() if method_anchor(name) not in ids]
    assert not missing, f"methods without a reference section: {missing}"
    for name in registry().names():
        # The plugin's own citation is on its page, as Help ▸ What am I looking at? shows it.
        citation = registry().get(name).citation
        assert citation.split()[0] in text, f"{name}: citation missing"


def test_every_page_an_error_links_to_is_built(site):
    """The window's error lines link into the site (engine.core.user_guide.GUIDE_PAGES)."""
    from engine.core.user_guide import GUIDE_PAGES

    missing = [page for _phrase, page in GUIDE_PAGES if not (site / page).is_file()]
    assert not missing, f"error lines link to pages the site lacks: {missing}"


def test_the_benchmark_page_includes_every_recorded_output(site):
    """Each bench/results/NAME.txt appears on the benchmarks page, as make bench wrote it."""
    text = (site / "benchmarks.html").read_text(encoding="utf-8")
    recorded = sorted((ROOT / "bench" / "results").glob("bench_*.txt"))
    assert recorded
    for path in recorded:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        missing = [line for line in lines if line and html.escape(line, quote=False) not in text]
        assert not missing, f"{path.name}: lines missing from the benchmarks page: {missing[:3]}"


def test_every_benchmark_has_its_section_with_its_command():
    """The benchmarks page names every bench/bench_*.py and the command that runs it."""
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    scripts = sorted((ROOT / "bench").glob("bench_*.py"))
    assert scripts
    missing = [s.stem for s in scripts
               if f"python bench/run_all.py {s.stem.removeprefix('bench_')}" not in page
               or f"<!-- bench: {s.stem} -->" not in page]
    assert not missing, f"benchmarks without their section: {missing}"
