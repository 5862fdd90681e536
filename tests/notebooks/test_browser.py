"""Notebook 01 in a real browser: JupyterLab on 127.0.0.1 with a token, Debian's headless chromium
driven by Playwright (no browser download: `executable_path=/usr/bin/chromium`). The test runs all
cells through the menus, moves the γ slider with the keyboard, and checks that the rendered
parameter count becomes the one `keras_csp.profile` gives. Screenshots go to tests/artifacts/.

`KERAS_CSP_NOTEBOOK_SCREENSHOT=path` also saves the explorer panel there (tools/
notebook_screenshot.py makes notebooks/screenshot_01.png that way); `KERAS_CSP_NOTEBOOK_QUICK=0`
runs the notebook with its full settings (every γ profiled).
"""

import os
import re
import time
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("KERAS_CSP_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing: the browser test drives Debian's chromium (`apt-get install "
        "chromium`; .ci/run installs it)",
        allow_module_level=True,
    )
pytest.importorskip("playwright", reason="the browser test needs `pip install -e .[notebooks]`")

import notebook_helpers as nbh  # noqa: E402

NAME = nbh.NAMES[0]
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def _quick():
    return os.environ.get("KERAS_CSP_NOTEBOOK_QUICK", "1") != "0"


def _wait_until(predicate, timeout, what, page=None, step=0.25):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    if page is not None:
        page.screenshot(path=str(nbh.ARTIFACTS / "notebook01_timeout.png"))
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _menu(page, menu, item):
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{menu}$")).click()
    label = page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{item}$"))
    page.locator(".lm-Menu-item", has=label).first.click()


def _kernel_idle(page):
    status = " ".join(page.locator(".jp-StatusBar-Widget").all_inner_texts())
    return re.search(r"\(ipykernel\)\s*\|\s*Idle", status) is not None


def _all_cells_ran(page):
    """Every non-empty code cell shows an execution count, and the kernel is idle."""
    prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
    counts = [p.strip() for p in prompts]
    done = counts and all(re.fullmatch(r"\[\d+\]:", c) for c in counts)
    return done and _kernel_idle(page)


def test_notebook_01_in_chromium_the_slider_changes_the_parameter_count(tmp_path):
    import keras_csp
    from playwright.sync_api import sync_playwright

    nbh.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    served = tmp_path / "served"
    nbh.copy_notebook(NAME, served)
    quick = _quick()
    budget = 240 if quick else 900
    with nbh.JupyterLab(served, tmp_path / "home", quick=quick) as lab, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            env=lab.env,
            viewport={"width": 1280, "height": 1100},
        )
        page = context.pages[0] if context.pages else context.new_page()
        try:
            page.set_default_timeout(60_000)
            page.goto(f"{lab.url}/lab/tree/{NAME}?token={lab.token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            # The kernel is up when the status bar says so (the toolbar's indicator is idle
            # before a kernel is even connected, and Run All then runs nothing).
            _wait_until(lambda: _kernel_idle(page), 120, "the kernel to start", page)
            # A fresh copy has no outputs; clear anyway so old counts cannot pass for new ones.
            _menu(page, "Edit", "Clear Outputs of All Cells")
            _menu(page, "Run", "Run All Cells")
            params = page.locator("td.csp-params")
            _wait_until(lambda: params.count() > 0, budget, "the explorer's table", page)
            _wait_until(lambda: _all_cells_ran(page), budget, "all cells to run", page)
            time.sleep(1.0)
            assert _all_cells_ran(page), "the kernel went busy again after the run"
            # What the notebook shows for its start point, against the package.
            before = params.inner_text().strip()
            expected_before = keras_csp.profile(
                "csppeleenet", (224, 224, 3), part_ratio=0.5, fusion="full"
            ).params
            assert before == f"{expected_before:,}"

            slider = page.locator(".widget-slider", has=page.locator("label", has_text="γ"))
            handle = slider.locator(".noUi-handle[role=slider]")
            readout = slider.locator(".widget-readout")
            assert readout.inner_text().strip() == "0.50"
            handle.focus()
            page.keyboard.press("ArrowRight")  # one step of 0.05
            _wait_until(
                lambda: readout.inner_text().strip() == "0.55", 30, "the slider to show 0.55", page
            )
            expected_after = keras_csp.profile(
                "csppeleenet", (224, 224, 3), part_ratio=0.55, fusion="full"
            ).params
            assert expected_after != expected_before
            after = _wait_until(
                lambda: (t := params.inner_text().strip()) != before and t, 120,
                "the parameter count to change", page,
            )
            assert after == f"{expected_after:,}"
            # Latency is measured on demand: the button fills the table's latency cell.
            latency = page.locator("td.csp-latency")
            assert latency.inner_text().strip() == "not measured"
            page.get_by_role("button", name="measure latency", exact=True).click()
            _wait_until(
                lambda: re.fullmatch(r"\d+\.\d", latency.inner_text().strip()), 120,
                "a measured latency", page,
            )
            target = os.environ.get("KERAS_CSP_NOTEBOOK_SCREENSHOT")
            if target:  # the README's picture: latency along γ too
                page.get_by_role("button", name="measure latency along γ").click()
                status = page.locator(".widget-html", has_text="measured")
                _wait_until(
                    lambda: "latencies" in " ".join(status.all_inner_texts()), 900,
                    "the latency sweep", page, step=1.0,
                )
            # The plot was redrawn for the new point too (a PNG in the plot area).
            panel = page.locator(".jp-OutputArea-output", has=page.locator("table.csp-table"))
            panel.locator("img").first.wait_for(state="visible", timeout=60_000)
            time.sleep(1.0)  # let the new image paint
            page.screenshot(path=str(nbh.ARTIFACTS / "notebook01_browser.png"))
            panel.screenshot(path=str(nbh.ARTIFACTS / "notebook01_panel.png"))
            if target:
                panel.screenshot(path=target)
            assert not page.locator(".jp-OutputArea-output[data-mime-type*='error']").count()
        except BaseException:
            page.screenshot(path=str(nbh.ARTIFACTS / "notebook01_failure.png"))
            raise
        finally:
            context.close()
