"""A6: the page in Chromium until the project list is rendered, against the same HTML
saved once rendered and served as a static file; and the page's screenshots.
"""

from __future__ import annotations

import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RUNS = 10
_STATIC_APP = '''
import sys
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
import uvicorn
html, page_dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = Starlette(routes=[Route("/", lambda r: FileResponse(html)), Mount("/static", StaticFiles(directory=page_dir))])
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
'''


def _render_ms(page: Any, url: str, done: str) -> float:
    """Navigation start to ``done`` (a JS expression giving a time in ms since then)."""
    page.goto(url, wait_until="load")
    page.wait_for_function("document.body.dataset.rendered !== undefined || window.__static === true")
    return float(page.evaluate(done))


def a6_page(base: str, _floor: str, line: Callable[..., None], screenshots: Path | None) -> bool:
    """A6, and the screenshots when ``screenshots`` names a folder."""
    from playwright.sync_api import sync_playwright

    from skillmeat_cache.api.app import PAGE

    from .api import free_port, process

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    ours_mark = "performance.getEntriesByName('projects-rendered')[0].startTime"
    static_mark = "performance.getEntriesByType('navigation')[0].loadEventEnd"
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(base + "/")
        page.wait_for_function("Number(document.body.dataset.rendered) > 0")
        rows = page.evaluate("document.body.dataset.rendered")
        # The rendered page as a static file: its script removed, the rows already there.
        html = re.sub(r"<script[^>]*></script>", "<script>window.__static = true</script>", page.content())
        saved = Path(tmp) / "rendered.html"
        saved.write_text(html)
        if screenshots is not None:
            _screenshots(page, screenshots)
        port = free_port()
        static = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-c", _STATIC_APP, str(saved), str(PAGE), str(port)]
        with process(cmd, static):
            ours, flat = [], []
            for _ in range(RUNS):
                ours.append(_render_ms(page, base + "/", ours_mark))
                flat.append(_render_ms(page, static + "/", static_mark))
        browser.close()
    ratio = statistics.median(ours) / statistics.median(flat)
    ok = ratio <= 1.5
    line("A6", f"Chromium: / with {rows} projects until rendered", f"p50 {statistics.median(ours):6.0f}",
         f"static p50 {statistics.median(flat):6.0f}", ratio, "<= 1.5x the static page", ok)
    return ok


def _screenshots(page: Any, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / "page-projects.png"))
    page.get_by_test_id("project-row").nth(3).click()
    page.get_by_test_id("detail-name").wait_for()
    time.sleep(0.3)
    page.screenshot(path=str(folder / "page-project-detail.png"))
    page.get_by_test_id("search").fill("review")
    page.get_by_test_id("search-hit").first.wait_for()
    page.screenshot(path=str(folder / "page-search.png"))
