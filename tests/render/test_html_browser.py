"""The HTML report as a reader sees it: opened in headless Chromium through Playwright.

`make test` installs Chromium (Debian's package) and Playwright (the `test` extra);
with the environment variable ``CI`` set a missing browser fails the test instead of
skipping it.
"""

from __future__ import annotations

import os
import shutil

import pytest

from keras_relu_doctor.render import render_html
from keras_relu_doctor.report import build_report

from .test_html_report import DYING_RUN, HEALTHY_RUN, trained_runs

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1280, "height": 1400}
DEAD_FILL = "rgb(198, 40, 40)"  # html_report.DEAD_COLOUR, as the browser computes it


def _missing(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must run the browser test (`make test` installs Chromium and Playwright)")
    pytest.skip(f"{why}: run `make test`, which installs Chromium and Playwright")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's ``/usr/bin/chromium``), driven by Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        _missing(f"Chromium is not installed at {CHROMIUM}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                              args=CHROMIUM_ARGS)  # fmt: skip
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    """The HTML report of a logdir holding one dying and one healthy run, written to a file."""
    target = tmp_path_factory.mktemp("html_browser") / "report.html"
    target.write_text(render_html(build_report(trained_runs(tmp_path_factory))), encoding="utf-8")
    return target


def test_the_reader_sees_the_dying_run_first_open_with_its_heatmap(browser, report_file):
    page = browser.new_page(viewport=VIEWPORT)
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(report_file.as_uri())

    first = page.locator("table.overview tr").nth(1)  # row 0 is the header
    assert first.locator("td").nth(0).inner_text() == DYING_RUN
    verdict = first.locator(".verdict")
    assert verdict.inner_text() == "dying_relu" and verdict.evaluate("el => getComputedStyle(el).backgroundColor") != "rgba(0, 0, 0, 0)"
    assert page.locator("table.overview tr").nth(2).locator("td").nth(0).inner_text() == HEALTHY_RUN

    dying, healthy = page.locator("details.run").nth(0), page.locator("details.run").nth(1)
    assert dying.locator("summary h2").inner_text() == DYING_RUN and dying.evaluate("el => el.open")
    heatmap = dying.locator("svg.hm").first
    heatmap.scroll_into_view_if_needed()
    assert heatmap.is_visible()
    box = heatmap.bounding_box()
    assert box["width"] > 100 and box["height"] > 50
    red = heatmap.locator("rect.d")
    assert red.count() > 0 and red.first.is_visible()
    assert red.first.evaluate("el => getComputedStyle(el).fill") == DEAD_FILL
    cell = red.first.bounding_box()
    assert cell["width"] > 0 and cell["height"] > 0

    assert healthy.locator("summary h2").inner_text() == HEALTHY_RUN and not healthy.evaluate("el => el.open")
    assert not healthy.locator("svg").first.is_visible()  # folded: only its summary line shows

    page.evaluate("window.scrollTo(0, 0)")
    screenshot = report_file.with_suffix(".png")
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000
    assert all(url.startswith("file://") for url in requests), requests  # nothing fetched from the network
    page.close()
