"""Rows of an output that jump to a cell (`resmagic:jump`), in JupyterLab and Notebook 7.

A notebook of 30 cells, so the third is far off screen when the last one shows its table.
The third cell learns its own id in the kernel (``running_cell_id``), so the row names the id
the frontend really sent. A click on a row scrolls the notebook to that cell and makes it the
active, selected cell; a row that names only the cell's number does the same, and so does a
row naming a cell JupyterLab's "full" windowing has not put in the page yet. A saved,
untrusted output (sanitised: no ``data-*`` attributes, no scripts) still jumps, and an
nbconvert HTML export scrolls to the cell through its own ``id="cell-id=..."``. Screenshots
go to docs/ (Notebook 7's prefixed ``notebook7-``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Lab
from tests.browser.pages import KERNELSPEC, open_notebook, run_cell

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
VIEWPORT = (1200, 700)
ACTIVE = re.compile(r"\bjp-mod-active\b")
SELECTED = re.compile(r"\bjp-mod-selected\b")
TARGET = 2  # "cell 3"
LAST = 29

TABLE = """<table class="rm-top">
<tr><th>cell</th><th>peak</th></tr>
<tr class="rm-jump"><td><a href="#cell-id={id}">In [{number}]</a></td><td>by id: 1.2 GiB</td></tr>
<tr class="rm-jump"><td><a href="#execution-count={number}">In [{number}]</a></td>
<td>by number: 1.2 GiB</td></tr>
</table>"""

SHOW_TABLE = f"""from IPython.display import HTML
HTML({TABLE!r}.format(id=html.escape(target), number=number))"""


def _filler(index: int) -> str:
    return f"# cell {index + 1}\n" + "\n".join(f"v{index}_{k} = {k}" for k in range(6))


def _notebook(root: Path, name: str, last: str, output: str | None = None) -> str:
    """30 code cells with ids ``c00``..``c29``; cell 3 (index 2) records its id and number."""
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(_filler(i)) for i in range(LAST + 1)]
    book.cells[0].source = "import html\nfrom resmagic.ipython.which_cell import running_cell_id"
    book.cells[TARGET].source = (
        "# cell 3: the one the rows name\n"
        "from resmagic.ipython.which_cell import running_cell\n"
        "target, number = running_cell_id(get_ipython()), running_cell(get_ipython())"
    )
    book.cells[LAST].source = last
    for i, cell in enumerate(book.cells):
        cell.id = f"c{i:02d}"
    if output is not None:  # a saved output: sanitised when the notebook is opened
        book.cells[TARGET].execution_count = 2
        book.cells[LAST].outputs = [
            nbformat.v4.new_output("display_data", data={"text/html": output})
        ]
    book.metadata["kernelspec"] = dict(KERNELSPEC)
    nbformat.write(book, root / name)
    return name


def _cell(page: Any, index: int) -> Any:
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def _wait_for_prompt(page: Any, index: int, number: int) -> None:
    _cell(page, index).locator(".jp-InputPrompt").filter(has_text=f"[{number}]").wait_for()


def _prefix(lab: Lab) -> str:
    return "" if lab.frontend == "jupyterlab" else "notebook7-"


def _click_row_and_check(page: Any, row: Any, on_link: bool = False) -> None:
    """Bring ``row`` into view (cell 3 leaves it), click its link or the row, check the jump."""
    target = _cell(page, TARGET)
    row.scroll_into_view_if_needed()
    expect(target).not_to_be_in_viewport()
    url = page.url
    row.locator("a" if on_link else "td:nth-child(2)").click()
    expect(target).to_be_in_viewport(ratio=0.9)
    expect(page.locator(".jp-Notebook .jp-Cell.jp-mod-active")).to_have_count(1)
    expect(target).to_have_class(ACTIVE)
    expect(page.locator(".jp-Notebook .jp-Cell.jp-mod-selected")).to_have_count(1)
    expect(target).to_have_class(SELECTED)
    expect(page.locator(".jp-Notebook.jp-mod-commandMode")).to_have_count(1)  # not editing
    assert page.url == url, "the jump changed the page's URL"


def test_a_row_jumps_to_its_cell_by_id_and_by_number(lab: Lab, browser: Any) -> None:
    name = _notebook(lab.root, "top.ipynb", SHOW_TABLE)
    page = open_notebook(lab, browser, name, VIEWPORT)
    run_cell(page, 0)
    _wait_for_prompt(page, 0, 1)
    run_cell(page, TARGET)
    _wait_for_prompt(page, TARGET, 2)
    run_cell(page, LAST)
    table = page.locator(".jp-OutputArea-output table.rm-top")
    table.wait_for()
    by_id, by_number = table.locator("tr.rm-jump").nth(0), table.locator("tr.rm-jump").nth(1)
    assert by_id.locator("a").get_attribute("href") == "#cell-id=c02"  # what the kernel saw
    assert by_number.locator("a").get_attribute("href") == "#execution-count=2"
    table.screenshot(path=str(DOCS / f"{_prefix(lab)}jump-table.png"))

    _click_row_and_check(page, by_id, on_link=True)
    page.screenshot(path=str(DOCS / f"{_prefix(lab)}jump-done.png"))
    _click_row_and_check(page, by_number)


def test_a_saved_untrusted_output_still_jumps(lab: Lab, browser: Any) -> None:
    saved = TABLE.format(id="c02", number=2)
    name = _notebook(lab.root, "saved.ipynb", "# the saved table", output=saved)
    page = open_notebook(lab, browser, name, VIEWPORT)
    row = page.locator(".jp-OutputArea-output table.rm-top tr.rm-jump").first
    row.wait_for(state="attached")
    _click_row_and_check(page, row)


def test_a_row_jumps_to_a_cell_the_page_has_not_rendered_yet(lab: Lab, browser: Any) -> None:
    # "full" windowing: cells off screen are not in the page at all until scrolled to
    settings = lab.root.parent / "jupyter" / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True, exist_ok=True)  # JUPYTERLAB_SETTINGS_DIR (conftest), read per page
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "full"}))
    name = _notebook(lab.root, "far.ipynb", "# the last", output=TABLE.format(id="c27", number=0))
    book = nbformat.read(lab.root / name, as_version=4)
    book.cells[0].outputs, book.cells[LAST].outputs = book.cells[LAST].outputs, []  # at the top
    book.cells[27].source = "# cell 28: far below the table"
    nbformat.write(book, lab.root / name)
    page = open_notebook(lab, browser, name, VIEWPORT)
    far = page.locator(".jp-Notebook .jp-Cell").filter(has_text="cell 28: far below")
    row = page.locator(".jp-OutputArea-output table.rm-top tr.rm-jump").first
    row.wait_for()
    expect(far).to_have_count(0)
    row.locator("td:nth-child(2)").click()
    expect(far).to_be_in_viewport(ratio=0.9)
    expect(far).to_have_class(ACTIVE)


def test_a_row_naming_no_cell_says_so_and_moves_nothing(lab: Lab, browser: Any) -> None:
    stale = TABLE.format(id="deleted-cell", number=2)  # an id no cell of it has
    name = _notebook(lab.root, "stale.ipynb", "# the saved table", output=stale)
    page = open_notebook(lab, browser, name, VIEWPORT)
    row = page.locator(".jp-OutputArea-output table.rm-top tr.rm-jump").first
    row.scroll_into_view_if_needed()
    url = page.url
    row.locator("td:nth-child(2)").click()
    expect(page.get_by_text("no cell of this notebook has the id deleted-cell")).to_be_visible()
    expect(row).to_be_in_viewport()  # nothing moved
    expect(_cell(page, LAST)).to_have_class(ACTIVE)
    assert page.url == url


def test_an_html_export_scrolls_to_the_cell_by_its_own_anchor(browser: Any, tmp_path: Path) -> None:
    name = _notebook(tmp_path, "saved.ipynb", "# the table", TABLE.format(id="c02", number=2))
    convert = [sys.executable, "-m", "nbconvert", "--to", "html", "--template", "lab", name]
    subprocess.run(convert, cwd=tmp_path, check=True, capture_output=True)
    export = tmp_path / "saved.html"
    page = browser.new_page(viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]})
    page.goto(export.as_uri(), wait_until="domcontentloaded")  # offline: no CDN scripts
    target = page.locator("[id='cell-id=c02']")  # nbconvert's anchor on the cell
    link = page.locator("a[href='#cell-id=c02']")
    link.scroll_into_view_if_needed()
    expect(target).not_to_be_in_viewport()
    link.click()
    expect(target).to_be_in_viewport()


def _top_notebook(root: Path, store: Path) -> str:
    """Cells 2 and 3 grow the host by 16 and 64 MiB; the last one shows ``%resmagic top``."""
    name = _notebook(root, "ranked.ipynb", "%resmagic top --session this")
    book = nbformat.read(root / name, as_version=4)
    book.cells[0].source = f"%load_ext resmagic\n%resmagic config store={store}"
    book.cells[1].source = (
        "%%gpu_scope -q host\nsmall = bytearray(16 << 20)\n"
        "for i in range(0, len(small), 4096): small[i] = 1"
    )
    book.cells[TARGET].source = (
        "%%gpu_scope -q host\n# cell 3: the one that used the most\n"
        "big = bytearray(64 << 20)\nfor i in range(0, len(big), 4096): big[i] = 1"
    )
    nbformat.write(book, root / name)
    return name


def test_a_row_of_resmagic_top_jumps_to_the_cell_that_used_the_most(lab: Lab, browser: Any) -> None:
    name = _top_notebook(lab.root, lab.root.parent / "runs.sqlite")
    page = open_notebook(lab, browser, name, VIEWPORT)
    run_cell(page, 0)
    _wait_for_prompt(page, 0, 1)
    run_cell(page, 1)
    _wait_for_prompt(page, 1, 2)
    run_cell(page, TARGET)
    _wait_for_prompt(page, TARGET, 3)
    run_cell(page, LAST)
    table = page.locator(".jp-OutputArea-output table.rm-top")
    table.wait_for()
    expect(table.locator("tr.rm-jump")).to_have_count(2)
    first = table.locator("tr.rm-jump").first
    assert first.locator("a").get_attribute("href") == "#cell-id=c02"  # the id the frontend sent
    expect(first).to_contain_text("In [3]")
    expect(first).to_contain_text("MiB host")
    table.screenshot(path=str(DOCS / f"{_prefix(lab)}top-table.png"))
    _click_row_and_check(page, first, on_link=True)
