"""What every browser test does with a notebook: write it, open it connected, run a cell."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat

from tests.browser.conftest import Lab

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def write_notebook(root: Path, name: str, cells: list[str]) -> str:
    """``cells`` as the code cells of ``root/name``, for this venv's ``python3`` kernel."""
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    book.metadata["kernelspec"] = dict(KERNELSPEC)
    nbformat.write(book, root / name)
    return name


def open_notebook(
    lab: Lab, browser: Any, name: str, viewport: tuple[int, int], scale: float = 1
) -> Any:
    """A page with ``name`` open and its kernel connected and idle."""
    width, height = viewport
    page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=scale)
    page.set_default_timeout(60_000)
    page.goto(lab.open_url(name))
    page.locator(".jp-Notebook .jp-Cell .cm-content").first.wait_for()
    # A cell run before the page is connected to its kernel is dropped, not queued: wait
    # until the server has the kernel idle, then until the page says it is connected.
    lab.wait_for_idle_kernel(name)
    if lab.frontend == "jupyterlab":
        # "Python 3 (ipykernel) | Idle", or "Python 3 | Idle": the name depends on which
        # kernelspec the server found first, which differs between root and other users.
        page.get_by_text(re.compile(r"^Python 3.* \| Idle$")).wait_for()
        no_news = page.get_by_role("button", name="No", exact=True)
        if no_news.count():  # the news toast would cover outputs
            no_news.click()
    else:
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
    return page


def run_cell(page: Any, index: int) -> None:
    """Put the cursor in cell ``index`` and run it (Shift+Enter), without waiting."""
    page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
