"""The page at ``/`` in a real browser: Playwright driving the system's Chromium against a
``serve`` process over a copy of the example projects."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_serve import EXAMPLES, server

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is required under CI=true (.ci/run installs the Debian package)")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "projects"
    shutil.copytree(EXAMPLES, root)
    return root.resolve()


def test_the_page_lists_searches_shows_and_follows_changes(browser: Any, tree: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with server(str(tmp_path / "c.db"), str(tree), home=tmp_path / "home") as base:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + "/")
        rows = page.get_by_test_id("project-row")
        expect(rows).to_have_count(4)
        web = rows.filter(has_text="web-app")
        expect(web.get_by_test_id("artifact-count")).to_have_text("7")
        expect(page.get_by_test_id("summary")).to_contain_text("4 projects · 20 artifacts")

        # A project's artifacts, with versions and badges.
        web.click()
        detail = page.get_by_test_id("detail")
        expect(detail.get_by_test_id("detail-name")).to_have_text("web-app")
        expect(detail.get_by_test_id("artifact-row")).to_have_count(7)
        expect(detail.get_by_test_id("artifact-row").filter(has_text="pdf-tools")).to_contain_text("1.2.0")

        # Search, best match first; a hit opens its project.
        page.get_by_test_id("search").fill("csv")
        hits = page.get_by_test_id("search-hit")
        expect(hits.first).to_contain_text("csv-cleaner")
        hits.first.click()
        expect(detail.get_by_test_id("detail-name")).to_have_text("data-pipeline")

        # A file written on disk reaches the page by itself (watcher -> project_updated).
        skill = tree / "docs-site" / ".claude" / "skills" / "from-the-disk" / "SKILL.md"
        skill.parent.mkdir(parents=True)
        skill.write_text("---\nname: from-the-disk\ndescription: <b>not bold</b>\n---\nbody\n")
        docs = rows.filter(has_text="docs-site")
        expect(docs.get_by_test_id("artifact-count")).to_have_text("6", timeout=5000)
        page.get_by_test_id("search").fill("from-the-disk")
        expect(hits.first).to_contain_text("from-the-disk")
        docs.click()
        expect(detail).to_contain_text("<b>not bold</b>")  # shown as text, not markup
        assert detail.locator("b").count() == 0

        # The Refresh button reports the finished refresh.
        page.get_by_test_id("refresh").click()
        expect(page.get_by_test_id("progress")).to_contain_text("Refreshed 4 projects", timeout=10000)
        expect(page.get_by_test_id("refresh")).to_be_enabled()
        assert errors == []
        page.close()


def test_the_page_tells_of_a_cache_rebuilt_while_it_is_open(browser: Any, tree: Path, tmp_path: Path) -> None:
    import sys

    from playwright.sync_api import expect

    from benchmarks.api import free_port
    from benchmarks.server_faults import damage_pages
    from tests.conftest import server_process
    from tests.e2e.test_serve import _env

    home = tmp_path / "home"
    port = free_port()
    cmd = [sys.executable, "-m", "skillmeat_cache", "serve", "--port", str(port), "--no-watch", str(tree)]
    with server_process(cmd, port, env=_env(home)) as srv:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(srv.base + "/")
        rows = page.get_by_test_id("project-row")
        expect(rows).to_have_count(4)
        damage_pages(home / ".skillmeat" / "cache" / "cache.db")
        # Opening a project reads its artifacts' damaged pages: the server says so and heals.
        rows.filter(has_text="web-app").click()
        detail = page.get_by_test_id("detail")
        expect(detail.get_by_test_id("detail-error")).to_contain_text(
            "Could not read this project: database file is damaged or not a database (SQLITE_CORRUPT")
        progress = page.get_by_test_id("progress")
        expect(progress).to_contain_text("The cache was damaged and is rebuilt; the damaged file is kept as ",
                                          timeout=30000)
        expect(progress).to_contain_text(str(home / ".skillmeat" / "cache" / "cache.db.corrupt-"))
        expect(rows).to_have_count(4)
        expect(rows.filter(has_text="web-app").get_by_test_id("artifact-count")).to_have_text("7")
        expect(page.get_by_test_id("summary")).to_contain_text("4 projects · 20 artifacts")
        expect(detail.get_by_test_id("artifact-row")).to_have_count(7)  # read again once rebuilt
        page.screenshot(path=str(tmp_path / "page-rebuilt.png"))
        assert errors == []
